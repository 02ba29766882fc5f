"""make photos: picking, shrinking and the manifest, on a fake unpacked package tree (no download)."""
import json

import cv2
import numpy as np
import pytest

from distill.data import photo_set
from distill.data.photo_set import Pick, collect, is_complete


def _img(path, w, h, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    assert cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_collect_shrinks_picks_the_largest_wallpaper_and_reports_missing(tmp_path):
    root, dest = tmp_path / "root", tmp_path / "photos"
    _img(root / "usr/share/backgrounds/a.jpg", 200, 100)
    _img(root / "usr/share/wallpapers/W/contents/images/640x480.png", 64, 48, 1)
    _img(root / "usr/share/wallpapers/W/contents/images/1280x960.png", 128, 96, 2)  # the larger file
    (root / "usr/share/doc/pkg-a/copyright").parent.mkdir(parents=True)
    (root / "usr/share/doc/pkg-a/copyright").write_text("GPL-2+")
    picks = [Pick("pkg-a", "usr/share/backgrounds/a.jpg", "a"),
             Pick("pkg-w", "usr/share/wallpapers/W/contents/images", "w"),
             Pick("pkg-a", "usr/share/backgrounds/gone.jpg", "gone")]
    m = collect(root, dest, picks, max_side=40)

    a = cv2.imread(str(dest / "a.png"))
    assert a.shape == (20, 40, 3)  # 200x100 -> longer side 40, aspect kept
    w = cv2.imread(str(dest / "w.png"))
    assert w.shape == (30, 40, 3)  # from the 128x96 file, not the 64x48 one
    assert [p["source"] for p in m["photos"]] == ["usr/share/backgrounds/a.jpg",
                                                  "usr/share/wallpapers/W/contents/images/1280x960.png"]
    assert m["missing"] == ["pkg-a:usr/share/backgrounds/gone.jpg"]
    assert (dest / "LICENSES/pkg-a.copyright").read_text() == "GPL-2+"
    assert json.loads((dest / "MANIFEST.json").read_text()) == m
    assert not is_complete(dest, 40)  # a pick is missing: `make photos` would try again


def test_small_images_are_not_enlarged_and_completeness_is_checked(tmp_path):
    root, dest = tmp_path / "root", tmp_path / "photos"
    _img(root / "x/small.png", 30, 20)
    collect(root, dest, [Pick("p", "x/small.png", "small")], max_side=768)
    assert cv2.imread(str(dest / "small.png")).shape == (20, 30, 3)
    assert is_complete(dest, 768)
    assert not is_complete(dest, 512)  # another size asked for
    (dest / "small.png").unlink()
    assert not is_complete(dest, 768)


def test_missing_apt_get_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(photo_set.shutil, "which", lambda cmd: None)
    with pytest.raises(SystemExit, match="'apt-get' not found.*data=folder"):
        photo_set.download_and_extract(["mate-backgrounds"], tmp_path)


def test_the_pick_list_names_each_output_once():
    names = [p.name for p in photo_set.PICKS]
    assert len(names) == len(set(names)) == 57


def test_photo_set_source_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make photos"):
        photo_set.PhotoSetSource(tmp_path / "nowhere")
    _img(tmp_path / "set" / "a.png", 40, 30)
    (tmp_path / "set" / "MANIFEST.json").write_text("{}")  # not an image: not a training item
    src = photo_set.PhotoSetSource(tmp_path / "set")
    assert len(src) == 1 and src[0].linear.shape == (30, 40, 3)


def test_the_photo_configs_compose():
    from hydra import compose, initialize_config_dir

    from distill.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        ll = compose("config", overrides=["experiment=local_laplacian/photos"])
        hdr = compose("config", overrides=["experiment=local_laplacian_tone/embedded", "data=synthetic_hdr_photos"])
        tone = compose("config", overrides=["experiment=local_laplacian_tone/photos"])
        detail = compose("config", overrides=["experiment=local_laplacian/photos_detail"])
        durand = compose("config", overrides=["experiment=durand_robust/photos"])
        robust = compose("config", overrides=["experiment=durand_robust/embedded", "data=synthetic_hdr_photos"])
    assert tone.data.train.base_source.sources[1].paths == ".cache/photos" and tone.data.pairs.crop_size == 320
    assert tone.student.white_percentile == 99.5 and tone.train.steps == 4000 and tone.student.stats_bins == 16
    assert tone.teacher._target_.endswith("LocalLaplacian") and tone.teacher.domain == "log"
    assert ll.data.train.sources[1]._target_ == "distill.data.photo_set.PhotoSetSource"
    assert ll.data.train.sources[1].paths == ".cache/photos" and ll.data.pairs.crop_size == 320
    assert detail.student.detail_input and detail.train.steps == 6000 and detail.student.white_percentile is None
    assert detail.data == ll.data and detail.teacher == ll.teacher and detail.student.stats_bins == 16
    assert hdr.data.train.base_source.sources[1]._target_ == "distill.data.photo_set.PhotoSetSource"
    # the Durand recipe is the robust experiment on the photo scenes with eight student changes and 2000 steps
    assert durand.data == robust.data and durand.teacher == robust.teacher and durand.train.steps == 2000
    assert durand.student.guide_bilateral == 0.02 and robust.student.guide_bilateral == 0.0
    assert durand.student.output_encoding == "srgb_log" and durand.student.white_percentile is None
    assert durand.student.white_base_percentile == 99
    assert durand.student.guide_luma and durand.student.stats_luma and not robust.student.guide_luma
    assert durand.student.stats_bins == 16 and durand.student.input_encoding == "log"
    assert durand.student.width == 16 and robust.student.width == 8


def test_zoomed_windows_are_the_photo_quadrants_at_full_detail(tmp_path):
    root, dest = tmp_path / "root", tmp_path / "photos"
    big = np.random.default_rng(4).integers(0, 256, (100, 160, 3), dtype=np.uint8)
    (root / "b").mkdir(parents=True)
    cv2.imwrite(str(root / "b/big.png"), big)
    _img(root / "b/small.png", 60, 40)  # longer side < 2 x 40: no zoom, only the whole photo
    m = collect(root, dest, [Pick("p", "b/big.png", "big"), Pick("p", "b/small.png", "small")], max_side=40, zooms=4)
    assert [p["file"] for p in m["photos"]] == ["big.png", "big_z0.png", "big_z1.png", "big_z2.png", "big_z3.png",
                                                "small.png"]
    assert cv2.imread(str(dest / "big.png")).shape == (25, 40, 3)
    z3 = cv2.imread(str(dest / "big_z3.png"))  # bottom-right quadrant, 50x80 shrunk to 25x40
    assert m["photos"][4]["window_yxhw"] == [50, 80, 50, 80]
    want = big[50:, 80:].astype(np.float32).reshape(25, 2, 40, 2, 3).mean(axis=(1, 3))
    assert np.abs(z3.astype(np.float32) - want).max() <= 1.0
    assert is_complete(dest, 40, zooms=4) and not is_complete(dest, 40)  # another zoom count asked for
    assert photo_set.zoom_windows(100, 160, 40, 2) == [(0, 0, 50, 80), (0, 80, 50, 80)]


def test_photo_set_splits_partition_the_set(tmp_path):
    import cv2
    import numpy as np

    for i in range(12):
        cv2.imwrite(str(tmp_path / f"p{i:02d}.png"), np.full((8, 8, 3), i, np.uint8))
    train = photo_set.PhotoSetSource(tmp_path, split="train")
    held = photo_set.PhotoSetSource(tmp_path, split="heldout")
    everything = photo_set.PhotoSetSource(tmp_path)
    assert sorted(train.names + held.names) == sorted(everything.names) and not set(train.names) & set(held.names)
    assert held.names == ["p02.png", "p07.png"]  # the third of every five, by sorted name
    with pytest.raises(ValueError, match="split"):
        photo_set.PhotoSetSource(tmp_path, split="test")
