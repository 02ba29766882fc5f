"""Where training and held-out images come from: a folder of files, or the photos inside scikit-image.

A *source* is a sequence of ``SourceImage`` (``len(source)``, ``source[i]``): a name, float32 linear RGB
pixels [H,W,3] and the reader's metadata. Sources read lazily, one image per ``source[i]``, so that a
DataLoader worker only decodes what it uses; callers that reuse images keep them.

Hydra configs build sources with plain keyword arguments::

    {_target_: distill.data.sources.EmbeddedSource, exclude: [coffee, rocket]}
    {_target_: distill.data.sources.FolderSource, paths: [photos/train], skip_bad: true}
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from distill.core.io import IMAGE_EXTENSIONS, ImageError, read_image, stored_to_linear

log = logging.getLogger(__name__)


@dataclass
class SourceImage:
    """One decoded image: ``linear`` is [H,W,3] float32 scene-linear RGB."""

    name: str
    linear: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def content_hash(self) -> str:
        """Short sha256 of the pixels and their shape (what the pair cache keys on); equal pixels, equal hash."""
        arr = np.ascontiguousarray(self.linear)
        h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
        return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------
# Folders and files
# ----------------------------------------------------------------------------------------------------------

def _as_path_list(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _hidden(rel: Path) -> bool:
    # ".DS_Store", "._photo.jpg" (macOS resource forks), ".git/...", and write_image's temp files
    return any(part.startswith(".") for part in rel.parts)


def list_image_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Image files under folders (recursive, sorted, known extensions only, hidden files skipped) and
    files named directly, in the order given, without duplicates.

    Raises:
        FileNotFoundError: a path does not exist, or no image file was found (the message names them).
        ImageError: a file named directly has an unsupported extension.
    """
    roots = _as_path_list(paths)
    if not roots:
        raise FileNotFoundError("list_image_files: no paths given")
    found: dict[Path, None] = {}
    for root in roots:
        if root.is_dir():
            hits = [p for p in root.rglob("*")
                    if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not _hidden(p.relative_to(root))]
            for p in sorted(hits, key=lambda p: p.relative_to(root).as_posix()):
                found.setdefault(p, None)
        elif root.is_file():
            if root.suffix.lower() not in IMAGE_EXTENSIONS:
                raise ImageError(f"{root}: unsupported extension '{root.suffix}' "
                                 f"(supported: {', '.join(sorted(IMAGE_EXTENSIONS))})")
            found.setdefault(root, None)
        else:
            raise FileNotFoundError(f"list_image_files: {root} does not exist")
    if not found:
        raise FileNotFoundError(f"no image files found in {', '.join(str(r) for r in roots)} (looked for "
                                f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
    return list(found)


def _display_names(files: list[Path], roots: list[Path]) -> list[str]:
    """Names relative to the folder they were found in (files named directly: their file name); full
    paths where two would otherwise collide."""
    names = []
    for f in files:
        rel = next((f.relative_to(r).as_posix() for r in roots if r.is_dir() and f.is_relative_to(r)), f.name)
        names.append(rel)
    dup = {n for n in names if names.count(n) > 1}
    return [str(f) if n in dup else n for f, n in zip(files, names)]


class FolderSource(Sequence):
    """Images from folders and/or files, decoded on access with ``distill.core.io.read_image``.

    Args:
        paths: a folder, a file, or a list of them (folders are searched recursively).
        max_images: keep only the first N files (sorted order).
        skip_bad: a file that fails to decode is reported (``warnings.warn`` naming the file and the problem)
            and skipped: iteration leaves it out, and ``source[i]`` on it returns the next readable image
            (so that ``len`` stays fixed for samplers). Without it the ``ImageError`` propagates.

    Example:
        >>> src = FolderSource("photos", max_images=10)   # doctest: +SKIP
        >>> img = src[0]; img.name, img.linear.shape
        ('2024/beach.jpg', (3000, 4000, 3))
    """

    def __init__(self, paths, max_images: int | None = None, skip_bad: bool = False):
        roots = _as_path_list(paths)
        files = list_image_files(roots)
        if max_images is not None:
            if max_images < 1:
                raise ValueError(f"FolderSource: max_images must be >= 1, got {max_images}")
            files = files[:max_images]
        self.files = files
        self.names = _display_names(files, roots)
        self.skip_bad = skip_bad
        self.bad: dict[Path, str] = {}  # files that failed to decode -> the error message

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> SourceImage:
        n = len(self.files)
        if not -n <= i < n:
            raise IndexError(f"FolderSource index {i} out of range for {n} images")
        i %= n
        if not self.skip_bad:
            return self._load(i)
        for k in range(n):  # the next readable image, cyclically
            j = (i + k) % n
            if self.files[j] not in self.bad:
                item = self._try_load(j)
                if item is not None:
                    return item
        raise ImageError(f"FolderSource: none of the {n} files could be read; first problem: "
                         f"{next(iter(self.bad.values()))}")

    def __iter__(self) -> Iterator[SourceImage]:
        for j in range(len(self.files)):
            item = self._try_load(j) if self.skip_bad else self._load(j)
            if item is not None:
                yield item

    def _load(self, j: int) -> SourceImage:
        linear, meta = read_image(self.files[j])
        return SourceImage(self.names[j], linear, meta)

    def _try_load(self, j: int) -> SourceImage | None:
        if self.files[j] in self.bad:
            return None
        try:
            return self._load(j)
        except ImageError as e:
            self.bad[self.files[j]] = str(e)
            warnings.warn(f"skipping unreadable image: {e}", stacklevel=3)
            log.warning("skipping unreadable image: %s", e)
            return None


# ----------------------------------------------------------------------------------------------------------
# The embedded sample set
# ----------------------------------------------------------------------------------------------------------

def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        img = getattr(skimage.data, name)()
        return img[0] if isinstance(img, tuple) else img  # stereo_motorcycle -> (left, right, disparity)
    return load


def _grace_hopper() -> np.ndarray:
    import cv2
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


# Colour photographs that ship inside scikit-image and matplotlib (no network; checked by the tests).
# Synthetic images (colorwheel) and grey ones are left out: they teach a student nothing about photos.
_EMBEDDED: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),                          # 512x512
    "coffee": _skimage("coffee"),                                # 400x600
    "chelsea": _skimage("chelsea"),                              # 300x451
    "rocket": _skimage("rocket"),                                # 427x640
    "hubble_deep_field": _skimage("hubble_deep_field"),          # 872x1000
    "immunohistochemistry": _skimage("immunohistochemistry"),    # 512x512
    "retina": _skimage("retina"),                                # 1411x1411
    "stereo_motorcycle": _skimage("stereo_motorcycle"),          # 500x741, left view
    "grace_hopper": _grace_hopper,                               # 600x512, from matplotlib
}
EMBEDDED_NAMES: tuple[str, ...] = tuple(_EMBEDDED)

# Grey natural images and textures from scikit-image: more detail and texture for luminance operators to
# learn from (a student trained on 7 photos generalises poorly). Opt-in with ``include_grey=True``.
_EMBEDDED_GREY: dict[str, Callable[[], np.ndarray]] = {
    n: _skimage(n) for n in ("camera", "coins", "moon", "grass", "gravel", "brick", "text", "page")
}
EMBEDDED_GREY_NAMES: tuple[str, ...] = tuple(_EMBEDDED_GREY)
_ALL_EMBEDDED = {**_EMBEDDED, **_EMBEDDED_GREY}
HELDOUT_NAMES: tuple[str, ...] = ("coffee", "rocket")  # fixed held-out set: warm indoor close-up + outdoor sky


def _check_names(names: Iterable[str], what: str) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in _ALL_EMBEDDED]
    if unknown:
        raise ValueError(f"EmbeddedSource: unknown {what} {unknown}; known: "
                         f"{', '.join(EMBEDDED_NAMES + EMBEDDED_GREY_NAMES)}")
    return names


class EmbeddedSource(Sequence):
    """The colour photos shipped inside scikit-image (+ matplotlib's grace_hopper), as sRGB 8-bit decoded
    to linear float32. Deterministic order (``EMBEDDED_NAMES`` order, or ``names`` as given).

    Args:
        names: which images (default: all of ``EMBEDDED_NAMES``, plus ``EMBEDDED_GREY_NAMES`` if asked).
        exclude: names to leave out, e.g. the held-out set ``HELDOUT_NAMES``.
        include_grey: with ``names=None``, also the grey images (as 3 equal channels).

    Example:
        >>> train = EmbeddedSource(exclude=HELDOUT_NAMES); val = EmbeddedSource(names=HELDOUT_NAMES)
        >>> len(train) + len(val) == len(EMBEDDED_NAMES)
        True
    """

    def __init__(self, names: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
                 include_grey: bool = False):
        default = EMBEDDED_NAMES + (EMBEDDED_GREY_NAMES if include_grey else ())
        chosen = _check_names(default if names is None else names, "image name(s)")
        dropped = set(_check_names(exclude or (), "name(s) in exclude"))
        self.names = [n for n in dict.fromkeys(chosen) if n not in dropped]
        if not self.names:
            raise ValueError(f"EmbeddedSource: no images left (names={list(chosen)}, exclude={sorted(dropped)})")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> SourceImage:
        name = self.names[i]
        srgb8 = _ALL_EMBEDDED[name]()  # [H,W,3] or [H,W] uint8
        channels = 1 if srgb8.ndim == 2 else 3
        if srgb8.ndim == 2:
            srgb8 = np.repeat(srgb8[:, :, None], 3, axis=2)
        meta = {"path": f"embedded:{name}", "format": "embedded", "bit_depth": 8, "color_space": "srgb",
                "hdr": False, "orig_channels": channels, "shape": srgb8.shape[:2]}
        return SourceImage(name, stored_to_linear(np.ascontiguousarray(srgb8), "srgb"), meta)


def split_names(names: Sequence[str], n_val: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Seeded split of ``names`` into (train, held-out); each keeps the input order."""
    names = list(names)
    if not 0 < n_val < len(names):
        raise ValueError(f"split_names: n_val must be in 1..{len(names) - 1}, got {n_val}")
    val = set(random.Random(seed).sample(names, n_val))
    return [n for n in names if n not in val], [n for n in names if n in val]


def default_split() -> tuple[list[str], list[str]]:
    """The fixed (train, held-out) split of the embedded set used by the default data config."""
    return [n for n in EMBEDDED_NAMES if n not in HELDOUT_NAMES], list(HELDOUT_NAMES)


class ConcatSource(Sequence):
    """Several sources as one sequence (e.g. the embedded photos plus dead-leaves images)."""

    def __init__(self, sources: Sequence):
        self.sources = list(sources)
        if not self.sources or any(len(s) == 0 for s in self.sources):
            raise ValueError("ConcatSource: needs one or more non-empty sources")
        self._ends = np.cumsum([len(s) for s in self.sources])

    def __len__(self) -> int:
        return int(self._ends[-1])

    def __getitem__(self, i: int) -> SourceImage:
        if not -len(self) <= i < len(self):
            raise IndexError(f"ConcatSource: index {i} out of range for {len(self)} images")
        i %= len(self)
        k = int(np.searchsorted(self._ends, i, side="right"))
        return self.sources[k][i - (int(self._ends[k - 1]) if k else 0)]


# ----------------------------------------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------------------------------------

def make_source(spec: Any) -> Sequence:
    """Build a source from a config node, a path, a list of paths, or ``"embedded"``.

    Args:
        spec: a mapping with ``_target_`` (Hydra ``instantiate``), ``"embedded"``, a folder/file path or a
            list of them (``FolderSource``), a source or a list of ``SourceImage`` (returned as is).
    """
    if isinstance(spec, str) and spec == "embedded":
        return EmbeddedSource()
    if isinstance(spec, (str, os.PathLike)):
        return FolderSource(spec)
    if isinstance(spec, Mapping):  # dict or OmegaConf DictConfig
        if "_target_" not in spec:
            raise ValueError(f"make_source: a source config needs a _target_ (got keys {sorted(spec)})")
        from hydra.utils import instantiate

        return instantiate(spec)
    if isinstance(spec, (FolderSource, EmbeddedSource)):
        return spec
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(x, SourceImage) for x in spec):
        return list(spec)
    if isinstance(spec, Iterable):
        return FolderSource([str(p) for p in spec])
    raise TypeError(f"make_source: cannot build a source from {type(spec).__name__}")
