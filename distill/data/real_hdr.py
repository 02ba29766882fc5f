"""Real HDR captures on disk: perspective views cut out of real HDR panoramas, split by scene.

Every HDR figure made from ``distill.data.hdr_synth`` comes from LDR photos with made-up highlights; real
captures hold what those lack (near-black regions with a noise floor, tiny sources 10-20 stops above the
median, clipped highlights, casts, exact zeros). Debian's registry carries real ones: Blender's data package
ships eight equirectangular HDR panoramas (OpenEXR, 1024x512, CC0, by Greg Zaal for HDRI Haven) as its world
lighting: city, courtyard, forest, interior, night, studio, sunrise, sunset. No other Debian package checked
holds real HDR captures (luminance-hdr, pfstools, hugin-data, libopenexr-doc, povray-examples,
assimp-testmodels, freecad-common, vtk9 / vedo / OpenSceneGraph / PyQt6 examples: none ship an .exr or .hdr).

This script fetches the package (``apt-get download`` + ``dpkg-deb -x``, ~31 MB, once), copies the panoramas
and their licences beside the output, and cuts perspective views out of each panorama: a pinhole camera at
``yaw`` (longitude of the view centre, degrees, east = right), ``pitch`` (latitude, up positive) and a
photographic horizontal field of view (55-75 degrees: a 35 mm to a 24 mm lens on full frame), sampled bilinearly
in linear radiance, wrapping around in longitude and across the poles. Views are float32 OpenEXR with a
manifest of (panorama, yaw, pitch, field of view). Whole panoramas are held out (default: interior, night,
sunset), so that no held-out view shares a scene with a training view.

    python -m distill.data.real_hdr --dest .cache/hdr       # ~31 MB download, once; 96 views in seconds
    hdr-distill train experiment=durand_robust/embedded data=real_hdr_views     # train on real views
    hdr-distill report checkpoint=runs/x/checkpoints/last.pt images=.cache/hdr/views/heldout

Layout under ``--dest``: ``MANIFEST.json``, ``LICENSES/``, ``panoramas/<name>.exr`` (the originals, so that
views can be cut again with other settings without a download) and ``views/{train,heldout}/<view>.exr``.

The 1024x512 panoramas have 2.8 px per degree: a 384-px-wide view at 55-75 degrees is upsampled 1.4-2.3x
at its centre (``upsample`` in the manifest). These are real radiance distributions, not sharp photographs.

Needs ``apt-get`` and ``dpkg-deb`` (any Debian/Ubuntu machine; ``apt-get download`` needs no root). Elsewhere,
``--panoramas DIR`` cuts views from your own equirectangular .exr/.hdr files (held out with ``--heldout``).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.core.atomic import atomic_write_json
from distill.core.io import HDR_EXTENSIONS, read_image, write_image
from distill.data.sources import FolderSource, SourceImage

# ----------------------------------------------------------------------------------------------------------
# What is fetched
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panorama:
    package: str
    path: str  # inside the package
    name: str  # output stem


_WORLD = "usr/share/blender/datafiles/studiolights/world"
PANORAMAS: tuple[Panorama, ...] = tuple(
    Panorama("blender-data", f"{_WORLD}/{n}.exr", n)
    for n in ("city", "courtyard", "forest", "interior", "night", "studio", "sunrise", "sunset"))
PACKAGES = sorted({p.package for p in PANORAMAS})
# Licence files kept beside the data: (package, path inside it, name under LICENSES/)
LICENCE_FILES = (("blender-data", "usr/share/doc/blender-data/copyright", "blender-data.copyright"),
                 ("blender-data", f"{_WORLD}/license.txt", "blender-data.studiolights-world.license.txt"))

# Held out: an interior lit by windows and lamps (~30 stops), a night field, a sunset over water and buildings.
# Training keeps a studio with lamps, a shaded courtyard, a forest, and two scenes with the sun (city, sunrise).
HELDOUT = ("interior", "night", "sunset")
SPLITS = ("all", "train", "heldout")

# Default view grid: 6 yaws on two rows (the upper row offset by half a step), 3 fields of view in turn.
YAWS = 6
PITCHES = (-10.0, 20.0)
FOVS = (55.0, 65.0, 75.0)
WIDTH, HEIGHT = 384, 256


# ----------------------------------------------------------------------------------------------------------
# Reprojection: equirectangular panorama -> pinhole view
# ----------------------------------------------------------------------------------------------------------

def focal_px(width: int, hfov_deg: float) -> float:
    """Pinhole focal length in pixels for a view ``width`` px wide with horizontal field of view ``hfov_deg``."""
    if not 0 < hfov_deg < 180:
        raise ValueError(f"focal_px: the horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
    return (width / 2) / math.tan(math.radians(hfov_deg) / 2)


def view_directions(width: int, height: int, yaw_deg: float, pitch_deg: float, hfov_deg: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(longitude, latitude) in radians, [height, width] each, of the ray through every pixel centre.

    Camera frame: x right, y up, z forward; pixel (i, j) centre at ``(j + 0.5 - width/2, height/2 - i - 0.5)``
    on the image plane at distance ``focal_px``. The camera is pitched up by ``pitch`` about its x axis, then
    turned by ``yaw`` about the world's vertical; world direction (lon, lat) is
    ``(cos lat sin lon, sin lat, cos lat cos lon)``, so the view centre looks at (yaw, pitch) and image right is
    increasing longitude (as in a panorama image, read left to right)."""
    if width < 1 or height < 1:
        raise ValueError(f"view_directions: width and height must be >= 1, got {width}x{height}")
    f = focal_px(width, hfov_deg)
    x = np.arange(width, dtype=np.float64) + 0.5 - width / 2
    y = height / 2 - (np.arange(height, dtype=np.float64) + 0.5)
    x, y = np.meshgrid(x, y)
    z = np.full_like(x, f)
    p, t = math.radians(pitch_deg), math.radians(yaw_deg)
    y1 = y * math.cos(p) + z * math.sin(p)  # pitch: rotate about the camera's x axis
    z1 = -y * math.sin(p) + z * math.cos(p)
    xw = x * math.cos(t) + z1 * math.sin(t)  # yaw: rotate about the vertical
    zw = -x * math.sin(t) + z1 * math.cos(t)
    lon = np.arctan2(xw, zw)
    lat = np.arctan2(y1, np.hypot(xw, zw))
    return lon, lat


def equirect_coords(lon: np.ndarray, lat: np.ndarray, pano_width: int, pano_height: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Continuous panorama pixel coordinates (u, v) of directions, pixel (row r, column c) centred at (c, r):
    longitude -180..180 degrees spans the width left to right, latitude 90..-90 the height top to bottom."""
    u = (lon + math.pi) / (2 * math.pi) * pano_width - 0.5
    v = (math.pi / 2 - lat) / math.pi * pano_height - 0.5
    return u, v


def sample_equirect(pano: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``pano`` [H,W,C] at (u, v), in its own (linear) values.

    Longitude wraps around (column -1 is column W-1); a sample above the top row's centre (or below the
    bottom row's) blends with the same row half a turn away, which is the pixel across the pole."""
    h, w = pano.shape[:2]
    pano = np.asarray(pano, dtype=np.float32)
    # padded[r + 1, c] = pano[r, c]; one row beyond each pole (rolled half a turn) and column W = column 0
    padded = np.concatenate([np.roll(pano[:1], w // 2, axis=1), pano, np.roll(pano[-1:], w // 2, axis=1)], axis=0)
    padded = np.concatenate([padded, padded[:, :1]], axis=1)
    u = np.mod(u, w)
    u = np.where(u >= w, 0.0, u)  # mod of a tiny negative can round up to w
    v = np.clip(v, -1.0, float(h))
    x0 = np.floor(u).astype(np.int64)
    y0 = np.minimum(np.floor(v).astype(np.int64), h - 1)
    fx = (u - x0).astype(np.float32)[..., None]
    fy = (v - y0).astype(np.float32)[..., None]
    yp = y0 + 1
    top = padded[yp, x0] * (1 - fx) + padded[yp, x0 + 1] * fx
    bottom = padded[yp + 1, x0] * (1 - fx) + padded[yp + 1, x0 + 1] * fx
    return np.ascontiguousarray(top * (1 - fy) + bottom * fy, dtype=np.float32)


def perspective_view(pano: np.ndarray, yaw_deg: float, pitch_deg: float, hfov_deg: float,
                     width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """The pinhole view [height, width, C] of an equirectangular panorama ``pano`` [H,W,C] (linear values)
    looking at (``yaw_deg``, ``pitch_deg``) with horizontal field of view ``hfov_deg``."""
    lon, lat = view_directions(width, height, yaw_deg, pitch_deg, hfov_deg)
    u, v = equirect_coords(lon, lat, pano.shape[1], pano.shape[0])
    return sample_equirect(pano, u, v)


@dataclass(frozen=True)
class ViewSpec:
    yaw: float
    pitch: float
    hfov: float

    def name(self, panorama: str) -> str:
        return f"{panorama}_y{round(self.yaw) % 360:03d}_p{round(self.pitch):+03d}_f{round(self.hfov):02d}"


def view_grid(yaws: int = YAWS, pitches=PITCHES, fovs=FOVS) -> list[ViewSpec]:
    """``yaws`` evenly spaced yaws per pitch row, each row after the first turned by half a step more, and the
    fields of view ``fovs`` taken in turn along the grid (so that each row and each scene sees all of them)."""
    if yaws < 1 or not pitches or not fovs:
        raise ValueError("view_grid: needs yaws >= 1, one or more pitches and one or more fields of view")
    step = 360.0 / yaws
    specs = []
    for r, pitch in enumerate(pitches):
        for k in range(yaws):
            yaw = (k * step + (r % 2) * step / 2) % 360
            specs.append(ViewSpec(float(yaw), float(pitch), float(fovs[(k + r) % len(fovs)])))
    return specs


# ----------------------------------------------------------------------------------------------------------
# The source
# ----------------------------------------------------------------------------------------------------------

def _load_manifest(root: Path) -> dict:
    m = root / "MANIFEST.json"
    if not m.is_file():
        raise FileNotFoundError(f"{root}: no real HDR views here (no MANIFEST.json); make them with "
                                f"`python -m distill.data.real_hdr --dest {root}`")
    try:
        return json.loads(m.read_text())
    except ValueError as e:
        raise FileNotFoundError(f"{m}: unreadable manifest ({e}); run `python -m distill.data.real_hdr "
                                f"--dest {root} --force`") from e


class RealHDRViews(FolderSource):
    """The views ``python -m distill.data.real_hdr`` cut, as a source (``data=real_hdr_views``).

    ``split``: ``train`` the views of the training panoramas, ``heldout`` those of the held-out panoramas
    (whole scenes the student never sees), ``all`` both. Each item's ``meta["view"]`` holds its panorama,
    yaw, pitch and field of view. Raises ``FileNotFoundError`` saying how to make the views when they are not
    there.
    """

    def __init__(self, paths: str | Path = ".cache/hdr", split: str = "train", **kwargs):
        if split not in SPLITS:
            raise ValueError(f"RealHDRViews: split must be one of {SPLITS}, got {split!r}")
        root = Path(paths)
        manifest = _load_manifest(root)
        views = [v for v in manifest.get("views", []) if split == "all" or v["split"] == split]
        if not views:
            raise FileNotFoundError(f"{root}: the manifest lists no {split} views; run "
                                    f"`python -m distill.data.real_hdr --dest {root} --force`")
        gone = [v["file"] for v in views if not (root / v["file"]).is_file()]
        if gone:
            raise FileNotFoundError(f"{root}: {len(gone)} views in the manifest are missing (e.g. {gone[0]}); "
                                    f"run `python -m distill.data.real_hdr --dest {root}`")
        super().__init__([root / v["file"] for v in views], **kwargs)
        by_file = {str(root / v["file"]): v for v in views}
        self.views = [by_file[str(f)] for f in self.files]
        self.panoramas = sorted({v["panorama"] for v in self.views})

    def _load(self, j: int) -> SourceImage:
        item = super()._load(j)
        item.meta["view"] = {k: self.views[j][k] for k in ("panorama", "yaw", "pitch", "hfov", "split")}
        return item


# ----------------------------------------------------------------------------------------------------------
# Fetching and cutting
# ----------------------------------------------------------------------------------------------------------

def _run(cmd: list[str], cwd: Path, what: str) -> str:
    if shutil.which(cmd[0]) is None:
        raise SystemExit(f"real_hdr: '{cmd[0]}' not found; {what} needs a Debian/Ubuntu machine. Elsewhere, cut "
                         "views from your own equirectangular panoramas: python -m distill.data.real_hdr "
                         "--panoramas DIR")
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"real_hdr: {' '.join(cmd)} failed (exit {r.returncode}): {r.stderr.strip()[-500:]}")
    return r.stdout


def download_and_extract(packages: list[str], work: Path) -> tuple[Path, dict[str, str]]:
    """``apt-get download`` the packages into ``work``, unpack them into ``work/root``; returns the root and
    each package's version."""
    _run(["apt-get", "download", *packages], work, "downloading the HDR packages")
    root = work / "root"
    root.mkdir(exist_ok=True)
    versions = {}
    for deb in sorted(work.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(root)], work, "unpacking the HDR packages")
        fields = _run(["dpkg-deb", "-f", str(deb), "Package", "Version"], work, "reading the package versions")
        info = dict(line.split(": ", 1) for line in fields.splitlines() if ": " in line)
        versions[info.get("Package", deb.stem)] = info.get("Version", "?")
    return root, versions


def gather_panoramas(root: Path, dest: Path, panoramas=PANORAMAS, licences=LICENCE_FILES) -> tuple[list, list]:
    """Copy the panoramas found under an unpacked package ``root`` to ``dest/panoramas/`` and the licence files
    to ``dest/LICENSES/``. Returns (entries, missing)."""
    (dest / "panoramas").mkdir(parents=True, exist_ok=True)
    (dest / "LICENSES").mkdir(parents=True, exist_ok=True)
    found, missing = [], []
    for p in panoramas:
        src = root / p.path
        if not src.is_file():
            missing.append(f"{p.package}:{p.path}")
            continue
        out = dest / "panoramas" / f"{p.name}{src.suffix.lower()}"
        shutil.copyfile(src, out)
        found.append({"name": p.name, "package": p.package, "source": p.path, "file": str(out.relative_to(dest))})
    for package, path, name in licences:
        if (root / path).is_file():
            shutil.copyfile(root / path, dest / "LICENSES" / name)
    return found, missing


def local_panoramas(folder: Path, dest: Path) -> list[dict]:
    """Entries for your own equirectangular panoramas (.exr / .hdr) in ``folder``, copied to ``dest/panoramas``."""
    files = sorted(f for f in Path(folder).iterdir() if f.suffix.lower() in HDR_EXTENSIONS and f.is_file())
    if not files:
        raise SystemExit(f"real_hdr: no .exr / .hdr panoramas in {folder}")
    (dest / "panoramas").mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        target = dest / "panoramas" / f.name
        if f.resolve() != target.resolve():
            shutil.copyfile(f, target)
        out.append({"name": f.stem, "package": None, "source": str(f), "file": str(target.relative_to(dest))})
    return out


def _luminance_summary(img: np.ndarray) -> dict:
    from distill.core.color import luminance

    lum = luminance(img)
    pos = lum[lum > 0]
    med = float(np.median(lum))
    return {"peak": float(lum.max()), "median": med,
            "stops_peak_over_median": float(np.log2(lum.max() / med)) if med > 0 else None,
            "zero_pixels": int(lum.size - pos.size)}


def cut_views(dest: Path, panoramas: list[dict], heldout=HELDOUT, specs: list[ViewSpec] | None = None,
              width: int = WIDTH, height: int = HEIGHT, params: dict | None = None,
              packages: dict | None = None, missing: list | None = None, suffix: str = ".exr") -> dict:
    """Cut ``specs`` views out of every panorama in ``dest`` and write them under ``dest/views/<split>/``
    (``suffix`` .exr: float32 OpenEXR; .hdr: Radiance RGBE, a third of the size, 1 % steps), then the
    manifest (``dest/MANIFEST.json``, returned). Views left from another run are removed first."""
    if suffix not in (".exr", ".hdr"):
        raise ValueError(f"cut_views: suffix must be .exr or .hdr, got {suffix!r}")
    specs = view_grid() if specs is None else specs
    names = [p["name"] for p in panoramas]
    unknown = sorted(set(heldout) - set(names))
    if unknown:
        raise SystemExit(f"real_hdr: held-out panoramas {unknown} are not among {names}")
    if not set(names) - set(heldout):
        raise SystemExit("real_hdr: every panorama is held out; nothing is left to train on")
    views_dir = dest / "views"
    if views_dir.exists():
        shutil.rmtree(views_dir)
    views = []
    for pano in panoramas:
        img, meta = read_image(dest / pano["file"])
        split = "heldout" if pano["name"] in heldout else "train"
        pano.update(split=split, size=[int(img.shape[1]), int(img.shape[0])],
                    negative_clipped=int(meta.get("negative_clipped", 0)), **_luminance_summary(img))
        f_native = img.shape[1] / (2 * math.pi)  # panorama pixels per radian at the equator
        for s in specs:
            view = perspective_view(img, s.yaw, s.pitch, s.hfov, width, height)
            out = views_dir / split / f"{s.name(pano['name'])}{suffix}"
            out.parent.mkdir(parents=True, exist_ok=True)
            write_image(out, view)
            vfov = 2 * math.degrees(math.atan(height / 2 / focal_px(width, s.hfov)))
            views.append({"file": str(out.relative_to(dest)), "panorama": pano["name"], "split": split,
                          "yaw": s.yaw, "pitch": s.pitch, "hfov": s.hfov, "vfov": round(vfov, 3),
                          "size": [width, height], "upsample": round(focal_px(width, s.hfov) / f_native, 3)})
    manifest = {"version": 1, "packages": packages or {}, "params": params or {},
                "heldout": sorted(heldout), "panoramas": panoramas, "views": views, "missing": missing or []}
    atomic_write_json(dest / "MANIFEST.json", manifest)
    return manifest


def is_complete(dest: Path, params: dict) -> bool:
    """Whether ``dest`` holds every view of a run with these ``params`` and no panorama was missing."""
    try:
        manifest = _load_manifest(dest)
    except FileNotFoundError:
        return False
    return (manifest.get("params") == params and not manifest.get("missing") and bool(manifest.get("views"))
            and all((dest / v["file"]).is_file() for v in manifest["views"]))


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m distill.data.real_hdr", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dest", default=".cache/hdr", help="output folder (default: .cache/hdr)")
    p.add_argument("--width", type=int, default=WIDTH, help=f"view width in px (default: {WIDTH})")
    p.add_argument("--height", type=int, default=HEIGHT, help=f"view height in px (default: {HEIGHT})")
    p.add_argument("--yaws", type=int, default=YAWS, help=f"views per pitch row, evenly spaced (default: {YAWS})")
    p.add_argument("--pitches", type=_floats, default=list(PITCHES),
                   help="pitch of each row in degrees, up positive (default: %s)" % ",".join(f"{v:g}" for v in PITCHES))
    p.add_argument("--fovs", type=_floats, default=list(FOVS),
                   help="horizontal fields of view in degrees, taken in turn (default: %s)"
                        % ",".join(f"{v:g}" for v in FOVS))
    p.add_argument("--heldout", type=_names, default=list(HELDOUT),
                   help="panoramas whose views are held out (default: %s)" % ",".join(HELDOUT))
    p.add_argument("--format", choices=("exr", "hdr"), default="exr",
                   help="view files: float32 OpenEXR (~1.2 MB a view at 384x256) or Radiance .hdr (a third of that)")
    p.add_argument("--panoramas", default=None,
                   help="cut views from your own equirectangular .exr/.hdr files in this folder instead of the "
                        "Debian packages (no download)")
    p.add_argument("--force", action="store_true", help="fetch and cut again even if dest is complete")
    a = p.parse_args(argv)
    dest = Path(a.dest)
    params = {"width": a.width, "height": a.height, "yaws": a.yaws, "pitches": a.pitches, "fovs": a.fovs,
              "heldout": sorted(a.heldout), "panoramas": a.panoramas, "format": a.format}
    if not a.force and is_complete(dest, params):
        print(f"real_hdr: {dest} already holds these views (MANIFEST.json); --force to redo them")
        return
    specs = view_grid(a.yaws, a.pitches, a.fovs)
    dest.mkdir(parents=True, exist_ok=True)
    if a.panoramas:
        manifest = cut_views(dest, local_panoramas(Path(a.panoramas), dest), a.heldout, specs, a.width, a.height,
                             params, suffix=f".{a.format}")
    else:
        old = _load_manifest(dest) if (dest / "MANIFEST.json").is_file() else {}
        have = [dict(name=q["name"], package=q["package"], source=q["source"], file=q["file"])
                for q in old.get("panoramas", []) if q.get("package") and (dest / q["file"]).is_file()]
        if not a.force and old.get("packages") and not old.get("missing") and len(have) == len(PANORAMAS) \
                and (dest / "LICENSES").is_dir():
            print(f"real_hdr: cutting views again from the panoramas in {dest / 'panoramas'} (no download)")
            found, versions, missing = have, old["packages"], []
        else:
            with tempfile.TemporaryDirectory(prefix="hdr-distill-hdr-") as tmp:
                print(f"real_hdr: downloading {', '.join(PACKAGES)} (~31 MB) ...", flush=True)
                root, versions = download_and_extract(PACKAGES, Path(tmp))
                found, missing = gather_panoramas(root, dest)
        if not found:
            raise SystemExit(f"real_hdr: none of the panoramas were found in {', '.join(PACKAGES)}: {missing}")
        manifest = cut_views(dest, found, [h for h in a.heldout if h in {f['name'] for f in found}], specs,
                             a.width, a.height, params, versions, missing, suffix=f".{a.format}")
        if missing:
            print(f"real_hdr: {len(missing)} panoramas not found in these package versions: {', '.join(missing)}",
                  file=sys.stderr)
    n = {s: sum(v["split"] == s for v in manifest["views"]) for s in ("train", "heldout")}
    held = ", ".join(manifest["heldout"])
    print(f"real_hdr: {len(manifest['panoramas'])} panoramas -> {n['train']} training views and {n['heldout']} "
          f"held-out views ({held}) in {dest / 'views'}")


if __name__ == "__main__":
    main()
