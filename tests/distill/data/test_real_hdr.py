"""Real HDR views: the panorama-to-pinhole reprojection, the split by panorama, the manifest and the source,
on synthetic panoramas written to a temporary folder (no download)."""
import json
import math

import numpy as np
import pytest

from distill.core.io import read_image, write_image
from distill.data import real_hdr
from distill.data.real_hdr import (Panorama, RealHDRViews, ViewSpec, cut_views, equirect_coords, focal_px,
                                   gather_panoramas, is_complete, perspective_view, view_directions, view_grid)

PH, PW = 360, 720  # 0.5 degree per panorama pixel


def _unit(lon, lat):
    """World direction of (lon, lat) in radians, as in view_directions: x east, y up, z at lon 0."""
    return np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), np.cos(lat) * np.cos(lon)], axis=-1)


def _pano_grid(h=PH, w=PW):
    """(lon, lat) of every panorama pixel centre."""
    lon = ((np.arange(w) + 0.5) / w * 2 - 1) * math.pi
    lat = (0.5 - (np.arange(h) + 0.5) / h) * math.pi
    return np.meshgrid(lon, lat)


def dot_panorama(lon_deg, lat_deg, sigma_deg=1.0, h=PH, w=PW):
    """A black panorama with a Gaussian dot (in angle on the sphere) centred at (lon, lat)."""
    lon, lat = _pano_grid(h, w)
    c = _unit(math.radians(lon_deg), math.radians(lat_deg))
    cos_angle = np.clip(_unit(lon, lat) @ c, -1, 1)
    angle = np.arccos(cos_angle)
    dot = 1000.0 * np.exp(-0.5 * (angle / math.radians(sigma_deg)) ** 2)
    return np.repeat(dot[..., None], 3, axis=2).astype(np.float32)


def centroid(view):
    """(x, y) intensity centroid of channel 0, in pixel-index coordinates (pixel j's centre at x = j)."""
    w = view[..., 0].astype(np.float64)
    w = np.where(w > 1e-3 * w.max(), w, 0.0)
    ys, xs = np.mgrid[0:view.shape[0], 0:view.shape[1]]
    return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())


@pytest.mark.parametrize("yaw, pitch", [(0, 0), (37, 12), (-120, -25), (180, 0), (250, 60)])
def test_a_dot_where_the_view_looks_lands_at_its_centre(yaw, pitch):
    width, height = 160, 120
    view = perspective_view(dot_panorama(yaw, pitch), yaw, pitch, 60.0, width, height)
    x, y = centroid(view)
    assert x == pytest.approx((width - 1) / 2, abs=0.05) and y == pytest.approx((height - 1) / 2, abs=0.05)


@pytest.mark.parametrize("yaw, pitch, d_lon, d_lat", [(0, 0, 15, 0), (90, 0, -20, 0), (30, 0, 0, 10),
                                                      (-60, 25, 0, -12), (200, 20, 0, 15)])
def test_a_dot_off_centre_lands_at_focal_times_tan_of_its_angle(yaw, pitch, d_lon, d_lat):
    """Along the horizon, a dot d_lon east of the view centre is f tan(d_lon) px right of it; along the
    view's vertical, one d_lat above is f tan(d_lat) px up (right = east: the panorama is not mirrored)."""
    width, height, hfov = 200, 160, 70.0
    f = focal_px(width, hfov)
    view = perspective_view(dot_panorama(yaw + d_lon, pitch + d_lat), yaw, pitch, hfov, width, height)
    x, y = centroid(view)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    assert x - cx == pytest.approx(f * math.tan(math.radians(d_lon)), abs=0.15)
    assert cy - y == pytest.approx(f * math.tan(math.radians(d_lat)), abs=0.15)


def test_view_centre_direction_and_focal_length():
    lon, lat = view_directions(1, 1, 123.0, -17.0, 90.0)  # one pixel: its centre is the optical axis
    assert math.degrees(lon[0, 0]) == pytest.approx(123.0) and math.degrees(lat[0, 0]) == pytest.approx(-17.0)
    lon, lat = view_directions(3, 1, 0.0, 0.0, 90.0)  # 90 degrees over 3 px: the outer centres at +-atan(2/3)
    assert np.degrees(lon[0]).tolist() == pytest.approx([-33.690068, 0.0, 33.690068])
    assert focal_px(200, 90.0) == pytest.approx(100.0)
    u, v = equirect_coords(np.array([-math.pi, 0.0]), np.array([math.pi / 2, 0.0]), 720, 360)
    assert u.tolist() == [-0.5, 359.5] and v.tolist() == [-0.5, 179.5]  # left edge / top edge; the centre


def test_longitude_wraps_around_the_seam():
    """A view looking at the seam (lon +-180) of a smooth panorama matches the function itself: no seam, no
    clamping; same across a pole (pitch 80, the view reaches over the top)."""
    lon, lat = _pano_grid()
    d = _unit(lon, lat)
    smooth = lambda d: 1.0 + 0.5 * d[..., 0] + 0.3 * d[..., 1] + 0.2 * d[..., 2]  # noqa: E731
    pano = np.repeat(smooth(d)[..., None], 3, axis=2).astype(np.float32)
    for yaw, pitch in [(180.0, 0.0), (-179.0, 10.0), (0.0, 80.0)]:
        view = perspective_view(pano, yaw, pitch, 60.0, 96, 64)
        vl, vt = view_directions(96, 64, yaw, pitch, 60.0)
        want = smooth(_unit(vl, vt))
        assert np.abs(view[..., 0] - want).max() < 2e-3, (yaw, pitch)
    # the dot straddles the seam: half of it at the left edge of the panorama, half at the right edge
    dot = dot_panorama(180.0, 0.0)
    assert dot[:, 0, 0].max() > 100 and dot[:, -1, 0].max() > 100
    x, y = centroid(perspective_view(dot, 180.0, 0.0, 60.0, 80, 60))
    assert (x, y) == (pytest.approx(39.5, abs=0.05), pytest.approx(29.5, abs=0.05))


def test_a_constant_panorama_gives_a_constant_view():
    pano = np.broadcast_to(np.float32([3.5, 0.25, 1e-4]), (PH, PW, 3)).copy()
    for yaw, pitch, fov in [(0, 0, 50), (179.9, -89, 75), (-45, 89.5, 120)]:
        view = perspective_view(pano, yaw, pitch, fov, 64, 48)
        assert view.dtype == np.float32 and view.shape == (48, 64, 3)
        assert np.allclose(view, pano[0, 0], rtol=1e-6, atol=0)


def test_view_grid_covers_the_yaws_pitches_and_fields_of_view():
    specs = view_grid(6, (-10, 20), (55, 65, 75))
    assert len(specs) == 12 and {s.pitch for s in specs} == {-10.0, 20.0}
    assert sorted(s.yaw for s in specs if s.pitch == -10) == [0, 60, 120, 180, 240, 300]
    assert sorted(s.yaw for s in specs if s.pitch == 20) == [30, 90, 150, 210, 270, 330]
    assert {s.hfov for s in specs} == {55.0, 65.0, 75.0}
    assert ViewSpec(30.0, -10.0, 65.0).name("night") == "night_y030_p-10_f65"
    with pytest.raises(ValueError):
        view_grid(0)


def _fake_package(root, names):
    """An unpacked blender-data tree with small synthetic panoramas (each a dot somewhere) and its licences."""
    picks = []
    for i, n in enumerate(names):
        p = f"usr/share/blender/datafiles/studiolights/world/{n}.exr"
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        write_image(root / p, dot_panorama(40.0 * i, 5.0, 3.0, 64, 128) + 0.01 * (i + 1))
        picks.append(Panorama("blender-data", p, n))
    (root / "usr/share/doc/blender-data").mkdir(parents=True)
    (root / "usr/share/doc/blender-data/copyright").write_text("GPL-2+")
    (root / real_hdr._WORLD / "license.txt").write_text("CC0")
    return picks


@pytest.fixture
def views_dir(tmp_path):
    root, dest = tmp_path / "root", tmp_path / "hdr"
    picks = _fake_package(root, ["a", "b", "c", "d"])
    picks.append(Panorama("blender-data", "usr/share/gone.exr", "gone"))
    found, missing = gather_panoramas(root, dest, picks)
    specs = view_grid(3, (0, 15), (60,))
    params = {"test": 1}
    m = cut_views(dest, found, heldout=("b", "d"), specs=specs, width=48, height=32, params=params,
                  packages={"blender-data": "1"}, missing=missing)
    return dest, m


def test_cut_views_writes_views_manifest_and_licences(views_dir):
    dest, m = views_dir
    assert m["missing"] == ["blender-data:usr/share/gone.exr"]
    assert json.loads((dest / "MANIFEST.json").read_text()) == m
    assert (dest / "LICENSES/blender-data.copyright").read_text() == "GPL-2+"
    assert (dest / "LICENSES/blender-data.studiolights-world.license.txt").read_text() == "CC0"
    assert len(m["views"]) == 4 * 6 and all((dest / v["file"]).is_file() for v in m["views"])
    v = m["views"][0]
    assert set(v) >= {"file", "panorama", "split", "yaw", "pitch", "hfov", "vfov", "size", "upsample"}
    img, meta = read_image(dest / v["file"])
    assert img.shape == (32, 48, 3) and meta["hdr"]
    pano, _ = read_image(dest / "panoramas/a.exr")
    assert np.allclose(img, perspective_view(pano, v["yaw"], v["pitch"], v["hfov"], 48, 32), rtol=1e-6)
    assert not is_complete(dest, {"test": 1})  # a panorama was missing: the script would fetch again


def test_the_split_holds_whole_panoramas_out(views_dir):
    dest, m = views_dir
    train, held = RealHDRViews(dest, split="train"), RealHDRViews(dest, split="heldout")
    assert train.panoramas == ["a", "c"] and held.panoramas == ["b", "d"]
    assert not set(train.panoramas) & set(held.panoramas)
    assert len(train) == len(held) == 12 and not set(train.names) & set(held.names)
    assert all(n.startswith(("b_", "d_")) for n in held.names)
    assert {v["panorama"] for v in m["views"] if v["split"] == "heldout"} == set(m["heldout"]) == {"b", "d"}
    assert len(RealHDRViews(dest, split="all")) == 24
    with pytest.raises(ValueError, match="split"):
        RealHDRViews(dest, split="test")


def test_the_source_loads_float_views_with_their_geometry(views_dir):
    dest, m = views_dir
    src = RealHDRViews(dest, split="heldout")
    item = src[0]
    assert item.linear.dtype == np.float32 and item.linear.shape == (32, 48, 3)
    assert item.meta["view"]["panorama"] == "b" and item.meta["view"]["split"] == "heldout"
    assert {"yaw", "pitch", "hfov"} <= set(item.meta["view"])
    assert [x.name for x in src] == src.names


def test_the_source_says_how_to_make_the_views(tmp_path, views_dir):
    with pytest.raises(FileNotFoundError, match="python -m distill.data.real_hdr"):
        RealHDRViews(tmp_path / "nowhere")
    dest, m = views_dir
    (dest / m["views"][0]["file"]).unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        RealHDRViews(dest, split="all")


def test_held_out_names_must_be_panoramas_and_leave_something_to_train_on(tmp_path):
    root, dest = tmp_path / "root", tmp_path / "hdr"
    found, _ = gather_panoramas(root, dest, _fake_package(root, ["a", "b"]))
    with pytest.raises(SystemExit, match="not among"):
        cut_views(dest, found, heldout=("zzz",), specs=view_grid(1, (0,), (60,)), width=32, height=24)
    with pytest.raises(SystemExit, match="nothing is left"):
        cut_views(dest, found, heldout=("a", "b"), specs=view_grid(1, (0,), (60,)), width=32, height=24)


def test_the_script_cuts_local_panoramas_and_is_idempotent(tmp_path, capsys):
    folder, dest = tmp_path / "mine", tmp_path / "hdr"
    for i, n in enumerate(["p", "q", "r"]):
        write_image(folder / f"{n}.exr", dot_panorama(10.0 * i, 0.0, 3.0, 64, 128) + 0.05)
    args = ["--dest", str(dest), "--panoramas", str(folder), "--heldout", "q", "--yaws", "2", "--pitches", "0",
            "--fovs", "60", "--width", "40", "--height", "30"]
    real_hdr.main(args)
    assert "4 training views and 2 held-out views (q)" in capsys.readouterr().out
    assert RealHDRViews(dest, split="heldout").panoramas == ["q"]
    real_hdr.main(args)
    assert "already holds these views" in capsys.readouterr().out
    real_hdr.main(args + ["--format", "hdr"])  # other settings: cut again
    capsys.readouterr()
    assert all(v["file"].endswith(".hdr") for v in json.loads((dest / "MANIFEST.json").read_text())["views"])
    assert not list((dest / "views").rglob("*.exr"))  # the old views are gone


def test_missing_apt_get_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(real_hdr.shutil, "which", lambda cmd: None)
    with pytest.raises(SystemExit, match="'apt-get' not found.*--panoramas"):
        real_hdr.download_and_extract(["blender-data"], tmp_path)


def test_the_panorama_list_and_the_default_split():
    names = [p.name for p in real_hdr.PANORAMAS]
    assert len(names) == len(set(names)) == 8 and set(real_hdr.HELDOUT) < set(names)
    assert real_hdr.PACKAGES == ["blender-data"]


def test_the_config_trains_on_real_views_and_validates_on_held_out_ones():
    from hydra import compose, initialize_config_dir

    from distill.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["data=real_hdr_views"])
    assert cfg.data.train._target_ == cfg.data.val._target_ == "distill.data.real_hdr.RealHDRViews"
    assert cfg.data.train.paths == cfg.data.val.paths == ".cache/hdr"
    assert cfg.data.train.split == "train" and cfg.data.val.split == "heldout"
    assert cfg.data.pairs.exposure_stops == 2.0  # the hdr pairs option


# ----------------------------------------------------------------------------------------------------------
# benchmarks.hdr_statistics: the statistic that compares synthetic scenes with these views
# ----------------------------------------------------------------------------------------------------------

def test_image_statistics_on_a_known_image():
    from benchmarks.hdr_statistics import image_statistics

    # 1000 px: 900 at 1 (the median), 90 at 2^-12 (21 stops under the peak), 9 at 2^5, 1 at 2^9 (the peak)
    lum = np.concatenate([np.ones(900), np.full(90, 2.0 ** -12), np.full(9, 2.0 ** 5), [2.0 ** 9]])
    img = np.repeat(lum[:, None, None], 3, axis=2).reshape(20, 50, 3).astype(np.float32)
    s = image_statistics(img)
    assert s["peak_over_median"] == pytest.approx(9.0)
    assert s["above_4"] == pytest.approx(0.010) and s["above_8"] == pytest.approx(0.001) and s["above_12"] == 0.0
    assert s["near_black"] == pytest.approx(0.090)  # 2^-12 < 2^9 * 2^-10; the median pixels (1) are not
    assert s["below_20"] == pytest.approx(0.090) and s["zeros"] == 0.0 and s["at_peak"] == pytest.approx(0.001)
    assert s["log_p1"] == pytest.approx(-12.0) and s["log_p90"] == pytest.approx(0.0)
    assert s["dynamic_range"] == pytest.approx(21.0) and s["cast"] == pytest.approx(0.0, abs=1e-6)
    tinted = img * np.float32([2.0, 1.0, 1.0])
    assert image_statistics(tinted)["cast"] == pytest.approx(1.0, abs=1e-5)
    assert image_statistics(img * 37.0)["above_4"] == s["above_4"]  # exposure does not matter


def test_the_statistics_table_compares_two_sets(views_dir):
    from benchmarks.hdr_statistics import ROWS, measure, outside, summarise, table

    dest, _ = views_dir
    rows = measure(RealHDRViews(dest, split="all"))
    assert len(rows) == 24 and {r["panorama"] for r in rows} == {"a", "b", "c", "d"}
    s = summarise(rows)
    beyond = outside(rows, s)
    assert all(v == (0, 0) for v in beyond.values())  # a set is inside its own range
    text = table({"x": s, "y": s}, beyond, len(rows))
    assert text.count("\n") == len(ROWS) + 1 and "of 24" in text
