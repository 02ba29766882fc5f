"""``make photos``: 57 photographs from Debian packages, for training students that must generalise.

The embedded set is 15 training photos; a local Laplacian student trained on them scores ~30 dB on photos it
never saw, against ~34 dB on the ones it did (README, "Data"). This machine reaches only package registries,
and Debian's registry carries desktop wallpapers and OpenCV's sample images, many of them ordinary
photographs (landscapes, flowers, streets, rooms, animals). This script takes the photographs among them
(illustrations, renders, logos and calibration charts left out; the list is below), shrinks each to
``max_side`` pixels and writes them as PNG, with the packages' copyright files beside them.

    python -m distill.data.photo_set --dest .cache/photos        # what `make photos` runs (~320 MB download, once)
    hdr-distill train experiment=local_laplacian/demo data=photos_leaves    # train on embedded + these + dead leaves

Needs ``apt-get`` and ``dpkg-deb`` (any Debian/Ubuntu machine; no root: ``apt-get download`` writes to the
current folder). Elsewhere, put your own photos in a folder and use ``data=folder``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2

from distill.core.atomic import atomic_write, atomic_write_json
from distill.core.io import downscale_max_side
from distill.data.sources import FolderSource


@dataclass(frozen=True)
class Pick:
    package: str
    path: str  # inside the package; a folder means "the largest image in it" (wallpapers ship many sizes)
    name: str  # output stem


def _picks() -> list[Pick]:
    bg = "usr/share/backgrounds"
    ubuntu = ["Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
              "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
              "analogpattern_by_Peter_Nerlich", "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
              "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
              "sunset_by_Aitzol_Berasategi"]
    mate = ["Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
            "TwoWings", "Wood", "YellowFlower"]
    plasma = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
              "Kite", "OneStandsOut", "Path", "Volna", "summer_1am"]
    cv = ["aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "board.jpg", "building.jpg",
          "butterfly.jpg", "chicky_512.png", "fruits.jpg", "graf1.png", "home.jpg", "leuvenA.jpg", "messi5.jpg",
          "orange.jpg", "squirrel_cls.jpg", "rubberwhale1.png", "ela_original.jpg", "stuff.jpg"]
    picks = [Pick("lomiri-wallpapers-16.04", f"{bg}/{n}.jpg", n) for n in ubuntu]
    picks.append(Pick("lomiri-wallpapers-20.04", f"{bg}/Kleiber_by_Lukas_Baubkus.jpg", "Kleiber_by_Lukas_Baubkus"))
    picks += [Pick("mate-backgrounds", f"{bg}/mate/nature/{n}.jpg", f"mate_{n}") for n in mate]
    picks += [Pick("plasma-workspace-wallpapers", f"usr/share/wallpapers/{n}/contents/images", f"plasma_{n}")
              for n in plasma]
    picks += [Pick("opencv-doc", f"usr/share/doc/opencv-doc/examples/data/{n}", f"opencv_{Path(n).stem}")
              for n in cv]
    return picks


PICKS = _picks()
PACKAGES = sorted({p.package for p in PICKS})
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


SPLITS = ("all", "train", "heldout")


def in_heldout(index: int, every: int) -> bool:
    """Whether the photo at ``index`` (sorted order) is held out: one in ``every``, the third of each run."""
    return every > 0 and index % every == min(2, every - 1)


class PhotoSetSource(FolderSource):
    """The photos ``make photos`` wrote, as a training source (``data=photos_leaves``); says how to make
    them when they are not there yet.

    ``split``: ``all`` the whole set; ``train`` / ``heldout`` a fixed partition of it, one photo in
    ``heldout_every`` (by sorted file name) held out, so that a student is judged on photos it never saw.
    """

    def __init__(self, paths: str | Path = ".cache/photos", split: str = "all", heldout_every: int = 5, **kwargs):
        root = Path(paths)
        if not root.is_dir() or not any(root.glob("*.png")):
            raise FileNotFoundError(f"{root}: no photo set here; run `make photos` first "
                                    f"(or: python -m distill.data.photo_set --dest {root})")
        if split not in SPLITS:
            raise ValueError(f"PhotoSetSource: split must be one of {SPLITS}, got {split!r}")
        if split != "all" and heldout_every < 2:
            raise ValueError(f"PhotoSetSource: heldout_every must be >= 2 for split={split!r}, got {heldout_every}")
        super().__init__(root, **kwargs)
        if split != "all":
            keep = [i for i in range(len(self.files)) if in_heldout(i, heldout_every) == (split == "heldout")]
            self.files = [self.files[i] for i in keep]
            self.names = [self.names[i] for i in keep]


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    if shutil.which(cmd[0]) is None:
        raise SystemExit(f"photo_set: '{cmd[0]}' not found; {what} needs a Debian/Ubuntu machine. Elsewhere, put "
                         "your own photos in a folder and train with data=folder data.train.paths=[...]")
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"photo_set: {' '.join(cmd)} failed (exit {r.returncode}): {r.stderr.strip()[-500:]}")


def download_and_extract(packages: list[str], work: Path) -> Path:
    """``apt-get download`` the packages into ``work`` and unpack them all into ``work/root``."""
    _run(["apt-get", "download", *packages], work, "downloading the photo packages")
    root = work / "root"
    root.mkdir(exist_ok=True)
    for deb in sorted(work.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(root)], work, "unpacking the photo packages")
    return root


def _imwrite(path: str, img) -> None:
    if not cv2.imwrite(path, img):
        raise SystemExit(f"photo_set: could not write {path}")


def _resolve(root: Path, pick: Pick) -> Path | None:
    p = root / pick.path
    if p.is_dir():
        files = [f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES]
        return max(files, key=lambda f: f.stat().st_size) if files else None
    return p if p.is_file() else None


def zoom_windows(h: int, w: int, max_side: int, zooms: int) -> list[tuple[int, int, int, int]]:
    """Up to ``zooms`` windows (y0, x0, height, width) of half the photo's height and width, in reading
    order over the four quadrants, when the photo is big enough (longer side >= 2 * max_side) that each
    window still shrinks to ``max_side``: new pixels (finer detail), not an enlargement."""
    if zooms <= 0 or max(h, w) < 2 * max_side:
        return []
    hh, hw = h // 2, w // 2
    return [(y0, x0, hh, hw) for y0 in (0, h - hh) for x0 in (0, w - hw)][:zooms]


def collect(root: Path, dest: Path, picks: list[Pick] = PICKS, max_side: int = 768, zooms: int = 0) -> dict:
    """Shrink each pick found under ``root`` to ``max_side`` (area filter) and write ``dest/<name>.png``.

    ``zooms`` > 0 also writes up to that many quarter-area windows of each large photo as
    ``<name>_z<k>.png`` (``zoom_windows``): the same scenes at twice the detail, as a longer lens would
    see them. Returns the manifest (also written to ``dest/MANIFEST.json``): every photo's source package and
    path, and the picks that were missing or unreadable (a later package version may rename a file).
    """
    dest.mkdir(parents=True, exist_ok=True)
    photos, missing = [], []
    for pick in picks:
        src = _resolve(root, pick)
        img = None if src is None else cv2.imread(str(src), cv2.IMREAD_COLOR)
        if img is None:
            missing.append(f"{pick.package}:{pick.path}")
            continue
        views = [(f"{pick.name}.png", img, None)]
        views += [(f"{pick.name}_z{k}.png", img[y0:y0 + hh, x0:x0 + ww], [y0, x0, hh, ww])
                  for k, (y0, x0, hh, ww) in enumerate(zoom_windows(*img.shape[:2], max_side, zooms))]
        for fname, view, window in views:
            small = downscale_max_side(view, max_side)
            out = dest / fname
            atomic_write(out, lambda tmp, small=small: _imwrite(tmp, small))
            entry = {"file": out.name, "package": pick.package, "source": str(src.relative_to(root)),
                     "size": [int(small.shape[1]), int(small.shape[0])]}
            if window is not None:
                entry["window_yxhw"] = window
            photos.append(entry)
    lic = dest / "LICENSES"
    lic.mkdir(exist_ok=True)
    for pkg in sorted({p.package for p in picks}):
        c = root / "usr/share/doc" / pkg / "copyright"
        if c.is_file():
            shutil.copyfile(c, lic / f"{pkg}.copyright")
    manifest = {"max_side": max_side, "zooms": zooms, "photos": photos, "missing": missing}
    atomic_write_json(dest / "MANIFEST.json", manifest)
    return manifest


def is_complete(dest: Path, max_side: int, zooms: int = 0) -> bool:
    m = dest / "MANIFEST.json"
    if not m.is_file():
        return False
    try:
        manifest = json.loads(m.read_text())
    except ValueError:
        return False
    return (manifest.get("max_side") == max_side and manifest.get("zooms", 0) == zooms and not manifest.get("missing")
            and all((dest / p["file"]).is_file() for p in manifest.get("photos", [])))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dest", default=".cache/photos", help="output folder (default: .cache/photos)")
    p.add_argument("--max-side", type=int, default=768, help="longer side of the written photos (default: 768)")
    p.add_argument("--zooms", type=int, default=0,
                   help="also write up to this many half-side windows (quadrants) of each photo whose longer side "
                        "is at least twice --max-side: finer detail from the same scenes (default: 0)")
    p.add_argument("--force", action="store_true", help="download again even if dest is complete")
    a = p.parse_args(argv)
    dest = Path(a.dest)
    if not a.force and is_complete(dest, a.max_side, a.zooms):
        print(f"photo_set: {dest} already holds the photo set (MANIFEST.json); --force to redo it")
        return
    with tempfile.TemporaryDirectory(prefix="hdr-distill-photos-") as tmp:
        print(f"photo_set: downloading {', '.join(PACKAGES)} (~320 MB) ...", flush=True)
        root = download_and_extract(PACKAGES, Path(tmp))
        manifest = collect(root, dest, max_side=a.max_side, zooms=a.zooms)
    n, miss = len(manifest["photos"]), manifest["missing"]
    print(f"photo_set: wrote {n} photos to {dest} (longer side <= {a.max_side} px"
          + (f"; whole photos + up to {a.zooms} zoomed windows each)" if a.zooms else ")"))
    if miss:
        print(f"photo_set: {len(miss)} picks not found in these package versions: {', '.join(miss)}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
