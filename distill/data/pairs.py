"""Training pairs made on the fly: augment a source image, run the teacher, hand (x, y) to training.

Each source image owns a fixed pool of ``crops_per_image`` augmentations (crop box, scale, rot90, flip,
exposure gain), drawn from a seeded generator. A finite pool is what makes the on-disk cache useful: the
second epoch, or a second run with the same teacher, reads teacher output instead of recomputing it.
The teacher runs inside DataLoader worker processes; the cache is keyed by the teacher identity, the image
content hash and the augmentation, and written atomically.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from distill.core.atomic import atomic_write
from distill.core.color import luminance, to_space
from distill.core.protocols import identity_key, teacher_identity


@dataclass(frozen=True)
class Augment:
    y0: int
    x0: int
    side: int  # crop box height (the side of a square box) in source pixels, resized to the crop size
    rot90: int
    flip: bool
    gain: float  # exposure multiplier applied to linear values
    saturation: float = 1.0  # chroma scale around luminance (linear)
    tint: tuple = (1.0, 1.0, 1.0)  # per-channel gains (a white-balance shift)
    side_w: int = 0  # box width in source pixels for rectangular crops (0: square, ``side`` wide)

    @property
    def box(self) -> tuple[int, int]:
        """(height, width) of the crop box in source pixels."""
        return self.side, self.side_w or self.side

    def key(self) -> str:
        k = f"{self.y0}_{self.x0}_{self.side}_{self.rot90}_{int(self.flip)}_{self.gain:.6f}"
        if self.saturation != 1.0 or self.tint != (1.0, 1.0, 1.0):
            k += f"_{self.saturation:.4f}_" + "_".join(f"{t:.4f}" for t in self.tint)
        if self.side_w:
            k += f"_w{self.side_w}"
        return k


def crop_shape(size) -> tuple[int, int]:
    """A crop size as (height, width): a side (``320``) is a square, ``"427x640"`` a rectangle."""
    if isinstance(size, tuple) and len(size) == 2:
        return int(size[0]), int(size[1])
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        return int(size), int(size)
    if isinstance(size, float) and size.is_integer():
        return int(size), int(size)
    if isinstance(size, str):
        m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", size)
        if m:
            return int(m[1]), int(m[2] or m[1])
    raise ValueError(f"crop size {size!r} is neither a side (320) nor HEIGHTxWIDTH ('427x640')")


def draw_augment(h: int, w: int, rng: np.random.Generator, scale_range=(0.5, 1.0), flips=True,
                 exposure_stops=0.0, saturation_range=(1.0, 1.0), tint_stops=0.0,
                 side_px_range=None, aspect=None) -> Augment:
    """A random square crop covering a fraction of the short side (or, with ``side_px_range``, a side in
    source pixels, whatever the image's size), plus rot90/flip, exposure and colour jitter.

    ``aspect=(ch, cw)`` draws a rectangular box of that shape instead, as a fraction of the largest such box
    that fits (``side_px_range`` then bounds its shorter edge). Rectangles turn by 0 or 180 degrees only, so
    every crop of one shape keeps it. The draws come in the same order, so one seed gives the same fraction,
    flip and colour jitter for every shape.
    """
    rect = aspect is not None and aspect[0] != aspect[1]
    if not rect:
        short = min(h, w)
        lo, hi = scale_range if side_px_range is None else (float(v) / short for v in side_px_range)
        side = int(round(short * rng.uniform(lo, hi)))
        side = max(16, min(side, short))
        bh = bw = side
    else:
        ch, cw = aspect
        big_h = min(h, int(w * ch / cw))  # the largest box of this shape that fits
        big_short = min(big_h, big_h * cw / ch)
        lo, hi = scale_range if side_px_range is None else (float(v) / big_short for v in side_px_range)
        bh = max(16, min(int(round(big_h * rng.uniform(lo, hi))), big_h))
        bw = max(1, min(int(round(bh * cw / ch)), w))
    y0 = int(rng.integers(0, h - bh + 1))
    x0 = int(rng.integers(0, w - bw + 1))
    rot = int(rng.integers(0, 4)) if flips else 0
    if rect:
        rot = rot // 2 * 2  # a quarter turn would swap the crop's height and width
    flip = bool(rng.integers(0, 2)) if flips else False
    gain = float(2.0 ** rng.uniform(-exposure_stops, exposure_stops)) if exposure_stops > 0 else 1.0
    lo_s, hi_s = saturation_range
    sat = float(rng.uniform(lo_s, hi_s)) if hi_s > lo_s else float(lo_s)
    tint = tuple(float(2.0 ** t) for t in rng.uniform(-tint_stops, tint_stops, 3)) if tint_stops > 0 else (1.0, 1.0, 1.0)
    return Augment(y0, x0, bh, rot, flip, gain, sat, tint, side_w=0 if bw == bh else bw)


def apply_augment(linear: np.ndarray, aug: Augment, size) -> np.ndarray:
    """Crop, resize to ``size`` (a side, or (height, width); area when shrinking), rotate/flip, scale
    exposure. [H,W,3] -> [height,width,3]."""
    th, tw = crop_shape(size)
    bh, bw = aug.box
    if aug.rot90 % 2 and th != tw:
        raise ValueError(f"a quarter turn cannot keep a {th}x{tw} crop's shape")
    crop = linear[aug.y0:aug.y0 + bh, aug.x0:aug.x0 + bw]
    if (bh, bw) != (th, tw):
        interp = cv2.INTER_AREA if bh * bw > th * tw else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (tw, th), interpolation=interp)
    crop = np.rot90(crop, aug.rot90)
    if aug.flip:
        crop = crop[:, ::-1]
    crop = crop * np.float32(aug.gain)
    if aug.saturation != 1.0:
        lum = luminance(crop)[..., None]
        crop = np.maximum(lum + np.float32(aug.saturation) * (crop - lum), 0)
    if aug.tint != (1.0, 1.0, 1.0):
        crop = crop * np.asarray(aug.tint, np.float32)
    return np.ascontiguousarray(crop, dtype=np.float32)


def run_teacher(teacher, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) for a batch in the teacher's input space; teachers whose student input differs use make_pair.

    The teacher gets a copy: one that writes into its argument would otherwise turn the pair's input into
    its output (an identity pair: loss 0, "inf dB"). The pair keeps ``x`` as it was before the teacher ran.
    """
    if hasattr(teacher, "make_pair"):
        return teacher.make_pair(x.clone())
    return x, teacher(x.clone())


MAX_UPSAMPLING = 4.0  # crops blown up more than this (crop size / source box side) are warned about


class PairError(ValueError):
    """A teacher's result for one pair is unusable (shape, NaN/Inf, value range); the message names the
    teacher, the crop and the image."""


def _check_pair(x: torch.Tensor, y: torch.Tensor, teacher, what: str) -> None:
    """Shape, finiteness and value range of every pair (validation saw only a 64x64 probe): a min and a max,
    cheap beside any teacher. Ranges as ``distill.data.validate``: LDR outputs in [-slack, 1 + slack],
    ``hdr`` outputs >= -slack."""
    from distill.data.validate import RANGE_SLACK

    name = getattr(teacher, "name", type(teacher).__name__)
    if not isinstance(y, torch.Tensor):
        raise PairError(f"teacher '{name}' returned a {type(y).__name__} for {what}, not a torch.Tensor")
    if y.shape != x.shape:
        raise PairError(f"teacher '{name}' returned shape {tuple(y.shape)} for {what} of shape {tuple(x.shape)}")
    for t, role in ((x, "input (make_pair's x)"), (y, "output")):
        if not torch.isfinite(t).all():
            raise PairError(f"teacher '{name}' returned NaN/Inf in its {role} for {what}; refusing to train on it")
    lo, hi = (float(v) for v in torch.aminmax(y.detach()))
    space = getattr(teacher, "output_space", "srgb")
    if lo < -RANGE_SLACK or (space != "hdr" and hi > 1 + RANGE_SLACK):
        allowed = f">= {-RANGE_SLACK:g}" if space == "hdr" else f"[0, 1] (+-{RANGE_SLACK:g})"
        hint = (" It looks like 0..255 values declared as 0..1: set the teacher's value range (teacher.value_range="
                "[0,255] for a Python teacher)." if 100 < hi <= 255 * (1 + RANGE_SLACK) else "")
        raise PairError(f"teacher '{name}' returned values in [{lo:.4g}, {hi:.4g}] for {what}; its output_space "
                        f"'{space}' allows {allowed}. Stopped rather than train on it.{hint}")


class PairCache:
    """Atomic on-disk store of pairs: ``<dir>/<teacher-key>/<crop-size>px/<image-hash>/<augment>.npz``.

    The augmentation key names the crop in source pixels, not the size it is resized to: the crop size
    is part of the path, so pairs made at another size are never read back.
    Stored as float16 (a quarter of float32's disk; relative error 5e-4, far below what training resolves).
    """

    def __init__(self, root: str | os.PathLike, teacher_key: str, crop_size):
        h, w = crop_shape(crop_size)
        self.dir = Path(root) / teacher_key / (f"{h}px" if h == w else f"{h}x{w}px")
        self.write_failed = False

    def path(self, image_hash: str, aug_key: str) -> Path:
        return self.dir / image_hash / f"{aug_key}.npz"

    def load(self, image_hash: str, aug_key: str):
        p = self.path(image_hash, aug_key)
        if not p.exists():
            return None
        try:
            with np.load(p) as z:
                return z["x"].astype(np.float32), z["y"].astype(np.float32)
        except Exception:  # a torn or foreign file: recompute rather than train on it
            return None

    def store(self, image_hash: str, aug_key: str, x: np.ndarray, y: np.ndarray) -> bool:
        """Write one pair; False (with one warning per cache) if the disk refuses it. A full disk costs the
        cache, not the training run: the pair was computed and is used either way."""
        try:
            atomic_write(self.path(image_hash, aug_key),
                         lambda tmp: np.savez(tmp, x=x.astype(np.float16), y=y.astype(np.float16)))
            return True
        except OSError as e:
            if not self.write_failed:
                warnings.warn(f"pair cache {self.dir}: cannot write ({e}); training goes on without caching "
                              "new pairs", RuntimeWarning, stacklevel=2)
            self.write_failed = True
            return False


class PairDataset(Dataset):
    """``len(source) * crops_per_image`` pairs; item i -> (x[3,S,S], y[3,S,S]) float32 tensors.

    Args:
        source: sequence of objects with ``.name``, ``.linear`` ([H,W,3] float32 linear) and ``.content_hash()``.
        teacher: a Teacher (see distill.core.protocols).
        crop_size: side S of the square training crops, or a list of sides: each batch then uses one of
            them, drawn per step. Operators whose pyramid depth follows the image size (the local
            Laplacian's automatic depth) treat a 256-px crop and a 640-px photo differently even at the same
            content; a spread of sizes shows the student more of them. Every square size shares one
            augmentation pool (the same crop boxes, resized to each side). ``"HEIGHTxWIDTH"`` (``"427x640"``)
            is a rectangular crop: the student squeezes any frame into its square low-res input, so a
            student for 3:2 photos can learn from 3:2 frames; rectangles turn by 180 degrees, not 90.
        crops_per_image: size of each image's fixed augmentation pool.
        scale_range: crop side as a fraction of the image's short side (crops are resized to S); large crops
            keep the low-res network's view close to the whole-image view it gets at inference.
        side_px_range: instead of ``scale_range``, the crop side in source pixels (e.g. ``[192, 384]`` with
            S=256: close to native resolution, so pixel-scale detail and noise look as they do at inference).
        flips: random rot90 + horizontal flip.
        exposure_stops: exposure jitter, +-stops, applied to linear values before the teacher.
        saturation_range: chroma scale drawn from this range (colour variety from few photos).
        tint_stops: per-channel gain jitter, +-stops (white-balance variety).
        cache_dir: optional on-disk cache of teacher outputs.
        seed: seeds the augmentation pool.
    """

    def __init__(self, source, teacher, crop_size=384, crops_per_image=16, scale_range=(0.5, 1.0),
                 flips=True, exposure_stops=0.0, saturation_range=(1.0, 1.0), tint_stops=0.0, cache_dir=None,
                 seed=0, side_px_range=None):
        if len(source) == 0:
            raise ValueError("PairDataset: the training source holds no images")
        self.source, self.teacher = source, teacher
        sizes = [crop_size] if isinstance(crop_size, (int, float, str)) else list(crop_size)
        try:
            self.crop_shapes = [crop_shape(v) for v in sizes]
        except ValueError as e:
            raise ValueError(f"PairDataset: {e}") from None
        if (not self.crop_shapes or min(min(s) for s in self.crop_shapes) < 16
                or len(set(self.crop_shapes)) != len(self.crop_shapes)):
            raise ValueError(f"PairDataset: crop_size must be a side >= 16 (or HEIGHTxWIDTH) or a list of distinct "
                             f"ones, got {crop_size}")
        self.crops_per_image = int(crops_per_image)
        self.scale_range, self.flips, self.exposure_stops = tuple(scale_range), flips, float(exposure_stops)
        self.saturation_range, self.tint_stops = tuple(saturation_range), float(tint_stops)
        self.side_px_range = None if side_px_range is None else tuple(float(v) for v in side_px_range)
        if self.side_px_range is not None and not (0 < self.side_px_range[0] <= self.side_px_range[1]):
            raise ValueError(f"PairDataset: side_px_range must be [lo, hi] with 0 < lo <= hi, got {side_px_range}")
        self.seed = int(seed)
        self.teacher_key = identity_key(teacher_identity(teacher))
        self.caches = [PairCache(cache_dir, self.teacher_key, c) for c in self.crop_shapes] if cache_dir else None
        self._images: dict[int, tuple[np.ndarray, str]] = {}
        self.cache_hits = 0

    @property
    def crop_sizes(self) -> list:
        """The crop sizes as configured: a side for a square, ``"HxW"`` for a rectangle."""
        return [h if h == w else f"{h}x{w}" for h, w in self.crop_shapes]

    @property
    def crop_size(self):
        """The first (or only) crop size."""
        return self.crop_sizes[0]

    @property
    def pairs_per_size(self) -> int:
        return len(self.source) * self.crops_per_image

    def __len__(self) -> int:
        """All pairs: index ``i`` is pool entry ``i % pairs_per_size`` at size ``crop_sizes[i // pairs_per_size]``."""
        return self.pairs_per_size * len(self.crop_shapes)

    @property
    def cache(self) -> PairCache | None:
        """The cache of the first (or only) crop size."""
        return self.caches[0] if self.caches else None

    def _image(self, idx: int):
        if idx not in self._images:
            item = self.source[idx]
            self._images[idx] = (item.linear, item.content_hash())
        return self._images[idx]

    def augment_for(self, idx: int) -> Augment:
        img_idx, k = divmod(idx % self.pairs_per_size, self.crops_per_image)
        linear, _ = self._image(img_idx)
        rng = np.random.default_rng([self.seed, img_idx, k])
        return draw_augment(*linear.shape[:2], rng, self.scale_range, self.flips, self.exposure_stops,
                            self.saturation_range, self.tint_stops, self.side_px_range,
                            aspect=self.crop_shapes[idx // self.pairs_per_size])

    def _warn_upsampling(self, img_idx: int, aug: Augment, shape: tuple[int, int]) -> None:
        """One warning per image whose crops are blown up far beyond their source pixels (a crop size far
        above the image size): the student then learns from blurred crops it never sees at inference."""
        bh, bw = aug.box
        factor = max(shape[0] / bh, shape[1] / bw)
        warned = self.__dict__.setdefault("_upsample_warned", set())
        if factor > MAX_UPSAMPLING and img_idx not in warned:
            warned.add(img_idx)
            name = getattr(self.source[img_idx], "name", img_idx)
            size = self.crop_sizes[self.crop_shapes.index(shape)]
            h, w = self._image(img_idx)[0].shape[:2]
            warnings.warn(f"data.pairs.crop_size {size} is far above image '{name}' ({w}x{h}): its crops are "
                          f"upsampled {factor:.0f}x (a {bw}x{bh} box), so the student learns from blurred crops. "
                          f"Lower data.pairs.crop_size, or use larger images", UserWarning, stacklevel=3)

    def ensure_cached(self, idx: int) -> bool:
        """Compute and store pair ``idx`` unless the cache has it; True if it was computed."""
        if self.caches is None:
            raise ValueError("PairDataset.ensure_cached needs a cache_dir")
        size_idx, base = divmod(idx, self.pairs_per_size)
        _, image_hash = self._image(base // self.crops_per_image)
        if self.caches[size_idx].path(image_hash, self.augment_for(idx).key()).exists():
            return False
        self[idx]
        return True

    def __getitem__(self, idx: int):
        size_idx, base = divmod(idx, self.pairs_per_size)
        img_idx = base // self.crops_per_image
        linear, image_hash = self._image(img_idx)
        aug = self.augment_for(idx)
        cache = self.caches[size_idx] if self.caches else None
        if cache is not None:
            hit = cache.load(image_hash, aug.key())
            if hit is not None:
                self.cache_hits += 1
                return torch.from_numpy(hit[0]), torch.from_numpy(hit[1])
        self._warn_upsampling(img_idx, aug, self.crop_shapes[size_idx])
        lin = torch.from_numpy(apply_augment(linear, aug, self.crop_shapes[size_idx])).permute(2, 0, 1)[None]
        x = to_space(lin, self.teacher.input_space)
        x, y = run_teacher(self.teacher, x)
        _check_pair(x, y, self.teacher, f"crop {aug.key()} of image '{getattr(self.source[img_idx], 'name', img_idx)}'")
        x, y = x[0].contiguous().float(), y[0].contiguous().float()
        if cache is not None:
            cache.store(image_hash, aug.key(), x.numpy(), y.numpy())
        return x, y


class StepBatchSampler(Sampler):
    """Batches indexed by step: batch s is a pure function of (seed, s), so a resumed run sees the same data.

    With ``groups > 1`` the ``n`` indices form that many equal, consecutive groups (one per crop size) and
    each batch is drawn from one group, chosen per step: a batch's crops then stack into one tensor.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, total_steps: int, groups: int = 1):
        if groups < 1 or n % groups:
            raise ValueError(f"StepBatchSampler: {n} indices do not split into {groups} equal groups")
        self.n, self.batch_size, self.seed, self.groups = n, batch_size, seed, groups
        self.start_step, self.total_steps = start_step, total_steps

    def batch(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.seed, 7919, step])
        if self.groups == 1:  # the original stream: runs and caches from before groups stay identical
            return rng.choice(self.n, size=self.batch_size, replace=self.batch_size > self.n).tolist()
        per = self.n // self.groups
        g = int(rng.integers(self.groups))
        return (g * per + rng.choice(per, size=self.batch_size, replace=self.batch_size > per)).tolist()

    def __iter__(self):
        for s in range(self.start_step, self.total_steps):
            yield self.batch(s)

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)


def worker_init(_worker_id: int) -> None:
    """One thread per DataLoader worker: the workers already run in parallel."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:
        pass


def image_pair(teacher, linear: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole (un-augmented) image through the teacher: for validation and reports. Returns [1,3,H,W] each."""
    lin = torch.from_numpy(np.ascontiguousarray(linear, dtype=np.float32)).permute(2, 0, 1)[None]
    x = to_space(lin, teacher.input_space)
    x, y = run_teacher(teacher, x)
    _check_pair(x, y, teacher, "a whole image")
    return x.float(), y.float()
