"""Check a teacher once, on a small probe image, before any training time is spent on it.

``validate_teacher(teacher)`` calls the teacher twice on a deterministic probe (a colour gradient, fine
texture and a hard-edged disc, in the teacher's declared input space) and refuses, with a
``TeacherValidationError`` that names the teacher and the problem, anything that would make bad pairs:

* declared spaces not in ``distill.core.protocols.COLOR_SPACES``, a missing name, ``params()`` not a dict;
* the call raises; the result is not a float32 ``torch.Tensor`` of the input's shape ``[B,3,H,W]``;
* NaN or Inf values;
* values out of range (policy below);
* every pixel the same (the teacher ignores its input);
* two calls on the same input differ by more than 1e-6 ("non-deterministic"): the pair cache, resumed
  runs and the reports all assume that a teacher is a function of its input;
* the teacher writes into its input tensor;
* the same checks on ``make_pair(x) -> (x', y)`` for teachers that have it (burst teachers), except that
  a ``make_pair`` that is not repeatable is only warned about (it may draw fresh sensor noise on purpose).

Range policy for ``srgb`` / ``linear`` outputs: values within [0, 1] pass; values within [-0.05, 1.05] pass
with a warning and are kept as they are (nothing is clipped: the student learns what the teacher does);
anything further out is an error, since it nearly always means a wrong value scale (0..255 output declared
as 0..1). ``hdr`` outputs may be any value >= -0.05.

Warnings (also returned in the report) flag things that are legal but rarely intended: a teacher that
returns its input unchanged, slight range excursions.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from distill.core.color import to_space
from distill.core.protocols import COLOR_SPACES

log = logging.getLogger(__name__)

REPEAT_TOL = 1e-6  # max |y1 - y2| allowed between two calls on the same input
RANGE_SLACK = 0.05  # LDR outputs within [-slack, 1 + slack] pass (with a warning outside [0, 1])
CONSTANT_TOL = 1e-6  # an output image whose std is below this is "constant"


class TeacherValidationError(ValueError):
    """A teacher failed a check on the probe image; the message names the teacher and what is wrong."""


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what is allowed."""


# ---- the config, before anything runs ---------------------------------------------------------------------

def _int_at_least(value, key: str, lo: int, allow_null: bool = False):
    if value is None and allow_null:
        return None
    ok = (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    if not ok or int(value) < lo:
        raise ConfigError(f"{key}={value!r}: must be an integer >= {lo}" + (" (or null)" if allow_null else ""))
    return int(value)


def _number(value, key: str, lo: float | None = None, hi: float | None = None, allow_null: bool = False,
            hi_open: bool = False, what: str | None = None):
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            (lo is not None and value < lo) or (hi is not None and (value >= hi if hi_open else value > hi)):
        raise ConfigError(f"{key}={value!r}: must be " + (what or f"a number in [{lo}, {hi}{')' if hi_open else ']'}"))
    return float(value)


def check_pairs_config(pc: dict, prefix: str = "data.pairs") -> None:
    """The pair stream's settings (``data.pairs``), checked before any teacher or image is touched."""
    from distill.data.pairs import crop_shape

    _int_at_least(pc.get("crops_per_image", 16), f"{prefix}.crops_per_image", 1)
    size = pc.get("crop_size", 384)
    sizes = [size] if isinstance(size, (int, float, str)) else list(size or [])
    if not sizes:
        raise ConfigError(f"{prefix}.crop_size={size!r}: give a side (256), HEIGHTxWIDTH ('192x256') or a list")
    for v in sizes:
        try:
            h, w = crop_shape(v)
        except ValueError:
            raise ConfigError(f"{prefix}.crop_size={size!r}: {v!r} is neither a side (256) nor HEIGHTxWIDTH "
                              f"('192x256')") from None
        if min(h, w) < 16:
            raise ConfigError(f"{prefix}.crop_size={size!r}: crops must be at least 16 pixels on a side")
    sr = pc.get("scale_range")
    if sr is not None:
        if len(list(sr)) != 2 or not all(isinstance(v, (int, float)) for v in sr) or not 0 < sr[0] <= sr[1] <= 1:
            raise ConfigError(f"{prefix}.scale_range={list(sr)!r}: must be [lo, hi] with 0 < lo <= hi <= 1 "
                              f"(fractions of the short side)")
    for key in ("exposure_stops", "tint_stops"):
        if pc.get(key) is not None:
            _number(pc[key], f"{prefix}.{key}", lo=0.0, what="a number of stops >= 0")


def check_train_config(cfg) -> None:
    """Every ``train.*`` and ``data.pairs.*`` value ``distill.train.loop.train`` uses, checked before the
    teacher is built or validated and before anything is written: a bad value costs a second, not a run
    (or a trained checkpoint). Raises ``ConfigError`` naming the key."""
    from omegaconf import OmegaConf

    tc = cfg.train
    _int_at_least(tc.get("steps"), "train.steps", 1)
    _int_at_least(tc.get("batch_size"), "train.batch_size", 1)
    for key in ("log_every", "val_every", "ckpt_every"):
        _int_at_least(tc.get(key), f"train.{key}", 1)
    _int_at_least(tc.get("num_workers", 0), "train.num_workers", 0)
    _int_at_least(tc.get("threads"), "train.threads", 1, allow_null=True)
    _int_at_least(tc.get("pixels_per_crop"), "train.pixels_per_crop", 0, allow_null=True)
    loss = tc.get("loss", "l2")
    if loss not in ("l2", "l1", "smooth_l1"):
        raise ConfigError(f"train.loss={loss!r}: must be one of l2, l1, smooth_l1")
    sched = tc.get("lr_schedule")
    if sched not in (None, "none", "cosine"):
        raise ConfigError(f"train.lr_schedule={sched!r}: must be one of none, cosine (or null)")
    _number(tc.get("ema_decay"), "train.ema_decay", 0.0, 1.0, allow_null=True, hi_open=True)
    lr = tc.optimizer.get("lr") if tc.get("optimizer") is not None else None
    if lr is not None and (_number(lr, "train.optimizer.lr", lo=0.0, what="a positive learning rate") or 0) <= 0:
        raise ConfigError(f"train.optimizer.lr={lr!r}: must be a positive learning rate")
    if cfg.get("data") is not None and cfg.data.get("pairs") is not None:
        check_pairs_config(OmegaConf.to_container(cfg.data.pairs, resolve=True))


@dataclass
class ValidationReport:
    """What the probe showed; ``str(report)`` is one line for the log."""

    name: str
    input_space: str
    output_space: str
    probe_shape: tuple[int, ...]
    out_min: float
    out_max: float
    out_mean: float
    max_repeat_diff: float
    seconds_per_call: float
    has_make_pair: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def ms_per_megapixel(self) -> float:
        b, _, h, w = self.probe_shape
        return 1e3 * self.seconds_per_call / (b * h * w / 1e6)

    def __str__(self) -> str:
        b, _, h, w = self.probe_shape
        s = (f"teacher '{self.name}' ({self.input_space} -> {self.output_space}) passed validation on a "
             f"{b}x{h}x{w} probe: output range [{self.out_min:.4g}, {self.out_max:.4g}], mean {self.out_mean:.4g}, "
             f"repeat diff {self.max_repeat_diff:.2g}, {1e3 * self.seconds_per_call:.1f} ms per call "
             f"(~{self.ms_per_megapixel:.0f} ms/MP)")
        if self.warnings:
            s += "; warnings: " + " | ".join(self.warnings)
        return s


def make_probe(space: str = "srgb", size: int = 64, batch: int = 2) -> torch.Tensor:
    """A deterministic natural-ish probe ``[batch,3,size,size]`` float32 in colour space ``space``.

    Image 0: a diagonal luminance gradient with a hue sweep, multiplicative texture (two sinusoids and
    seeded noise) and a dark disc with a hard edge. Image k > 0: image 0 rotated by k quarter turns with its
    own noise, so that a teacher mixing up batch items shows it. For ``"hdr"`` the gradient spans ~9 stops
    and a small light source is 60x the brightest LDR value; ``distill.core.color.to_space`` then scales each
    image to a peak of 1, as the pair stream does.
    """
    if space not in COLOR_SPACES:
        raise ValueError(f"make_probe: space '{space}' is not one of {COLOR_SPACES}")
    if size < 8:
        raise ValueError(f"make_probe: size must be >= 8 pixels, got {size}")
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    imgs = []
    for k in range(batch):
        rng = np.random.default_rng(1234 + k)
        # gradient + hue sweep (linear RGB, LDR)
        base = 0.03 + 0.8 * (0.6 * xx + 0.4 * yy)
        rgb = np.stack([base * (0.75 + 0.25 * xx), base * (0.9 + 0.1 * yy), base * (1.0 - 0.3 * xx)], -1)
        # texture: two sinusoids and fine noise, multiplicative like real surface detail
        tex = 0.08 * np.sin(2 * math.pi * (5 * xx + 3 * yy)) * np.sin(2 * math.pi * 7 * yy)
        tex = tex + 0.04 * rng.standard_normal((size, size))
        rgb = rgb * (1 + tex)[..., None]
        # a hard edge: a dark, slightly blue disc
        disc = (xx - 0.62) ** 2 + (yy - 0.38) ** 2 < 0.18 ** 2
        rgb[disc] = rgb[disc] * np.array([0.2, 0.22, 0.3])
        rgb = np.clip(rgb, 0.0, 1.0)
        if space == "hdr":
            rgb = rgb * np.exp2(-3 + 9 * xx)[..., None]  # ~9 stops across the frame
            light = (xx - 0.85) ** 2 + (yy - 0.15) ** 2 < 0.05 ** 2
            rgb[light] = 60.0
        imgs.append(np.rot90(rgb, k))
    lin = torch.from_numpy(np.ascontiguousarray(np.stack(imgs), dtype=np.float32)).permute(0, 3, 1, 2)
    return to_space(lin, space).contiguous()  # [B,3,S,S], exactly as the pair stream would hand it over


def validate_teacher(teacher, probe=None, size: int = 64) -> ValidationReport:
    """Run the checks listed in the module docstring; return a report or raise ``TeacherValidationError``.

    Args:
        teacher: anything following ``distill.core.protocols.Teacher``.
        probe: optional input ``[B,3,H,W]`` tensor (or ``HxWx3`` / ``BxHxWx3`` array) in the teacher's
            input space; default ``make_probe(teacher.input_space, size)``.
        size: side of the default probe.

    Example:
        >>> from teachers.python import PythonTeacher
        >>> print(validate_teacher(PythonTeacher(lambda im: im ** 0.8, name="gamma08")))  # doctest: +ELLIPSIS
        teacher 'gamma08' (srgb -> srgb) passed validation ...
    """
    who = _who(teacher)
    _check_declared(teacher, who)
    x = _probe(teacher, probe, size, who)
    report = ValidationReport(who, teacher.input_space, teacher.output_space, tuple(x.shape), 0.0, 0.0, 0.0, 0.0,
                              0.0, has_make_pair=callable(getattr(teacher, "make_pair", None)))

    # First call: type, shape, dtype, values; and the input must come back untouched.
    x_keep = x.clone()
    t0 = time.perf_counter()
    y1 = _call(lambda: teacher(x), who, "calling it")
    report.seconds_per_call = time.perf_counter() - t0
    if not torch.equal(x, x_keep):
        raise TeacherValidationError(f"teacher '{who}' modifies its input tensor in place; it must return a new "
                                     f"tensor (the same input is shown to the student)")
    _check_output(y1, x, teacher.output_space, who, "output", report.warnings)
    report.out_min, report.out_max, report.out_mean = (float(y1.min()), float(y1.max()), float(y1.mean()))
    if torch.allclose(y1, x, atol=1e-6, rtol=0):
        report.warnings.append("it returns its input unchanged (identity); is that intended?")

    # Second call on an identical input: a teacher must be a function of its input. This one is handed over
    # channels-last in memory, as the pair stream's crops are (HxWx3 arrays permuted to [B,3,H,W]): a NumPy
    # view of such a batch is contiguous, so code that writes into "its copy" writes into the caller's tensor
    # there and only there; and a teacher whose result depends on the memory layout shows it here.
    x2 = x_keep.clone().contiguous(memory_format=torch.channels_last)
    y2 = _call(lambda: teacher(x2), who, "calling it a second time")
    if not torch.equal(x2, x_keep):
        raise TeacherValidationError(f"teacher '{who}' modifies its input tensor in place when the batch is "
                                     f"channels-last in memory, as the pair stream hands it over (a NumPy view "
                                     f"of it, e.g. np.ascontiguousarray, is no copy there); it must return a new "
                                     f"tensor (the same input is shown to the student)")
    _check_output(y2, x, teacher.output_space, who, "second output", [])  # its warnings repeat the first's
    report.max_repeat_diff = float((y1 - y2).abs().max())
    if not report.max_repeat_diff <= REPEAT_TOL:
        raise TeacherValidationError(
            f"teacher '{who}' is non-deterministic: two calls on the same {tuple(x.shape)} probe differ by up to "
            f"{report.max_repeat_diff:.3g} (allowed {REPEAT_TOL:g}). Seed any randomness from the input, or fix "
            f"thread-order-dependent reductions; cached pairs and resumed runs assume a repeatable teacher")

    # Teachers whose student input differs from the teacher input (bursts) make their own pairs.
    if report.has_make_pair:
        _check_make_pair(teacher, x_keep, who, report.warnings)

    for w in report.warnings:
        warnings.warn(f"teacher '{who}': {w}", stacklevel=2)
    log.info("%s", report)
    return report


# ---- the checks ------------------------------------------------------------------------------------------

def _who(teacher) -> str:
    name = getattr(teacher, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise TeacherValidationError(f"teacher {type(teacher).__name__} has no name (a non-empty string "
                                     f"attribute 'name' is part of the Teacher protocol)")
    return name


def _check_declared(teacher, who: str) -> None:
    for key in ("input_space", "output_space"):
        space = getattr(teacher, key, None)
        if space not in COLOR_SPACES:
            raise TeacherValidationError(f"teacher '{who}': {key} is {space!r}, not one of {COLOR_SPACES}")
    if not callable(getattr(teacher, "params", None)):
        raise TeacherValidationError(f"teacher '{who}' has no params() method (its identity for checkpoints)")
    params = _call(teacher.params, who, "calling params()")
    if not isinstance(params, dict):
        raise TeacherValidationError(f"teacher '{who}': params() returned {type(params).__name__}, not a dict")
    if not callable(teacher):
        raise TeacherValidationError(f"teacher '{who}' is not callable")


def _probe(teacher, probe, size: int, who: str) -> torch.Tensor:
    if probe is None:
        return make_probe(teacher.input_space, size)
    if isinstance(probe, np.ndarray):
        arr = probe[None] if probe.ndim == 3 else probe
        probe = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(0, 3, 1, 2)
    if not isinstance(probe, torch.Tensor) or probe.ndim != 4 or probe.shape[1] != 3:
        raise ValueError(f"validate_teacher('{who}'): probe must be [B,3,H,W] (or HxWx3 array), got "
                         f"{getattr(probe, 'shape', type(probe).__name__)}")
    return probe.to(torch.float32).contiguous()


def _call(fn, who: str, what: str):
    try:
        return fn()
    except TeacherValidationError:
        raise
    except Exception as e:
        raise TeacherValidationError(f"teacher '{who}' failed when {what} on the probe image: "
                                     f"{type(e).__name__}: {e}") from e


def _check_output(y, x: torch.Tensor, space: str, who: str, what: str, warns: list[str]) -> None:
    """Type, shape, dtype, finiteness, range and non-constancy of one teacher result."""
    if not isinstance(y, torch.Tensor):
        raise TeacherValidationError(f"teacher '{who}': {what} is a {type(y).__name__}, expected a torch.Tensor "
                                     f"[B,3,H,W] (NumPy code: wrap it with teachers.python.PythonTeacher)")
    if tuple(y.shape) != tuple(x.shape):
        raise TeacherValidationError(f"teacher '{who}': {what} has shape {tuple(y.shape)}, expected the input's "
                                     f"shape {tuple(x.shape)} [B,3,H,W]")
    if y.dtype != torch.float32:
        raise TeacherValidationError(f"teacher '{who}': {what} has dtype {y.dtype}, expected torch.float32")
    finite = torch.isfinite(y)
    if not finite.all():
        n_nan, n_inf = int(torch.isnan(y).sum()), int(torch.isinf(y).sum())
        raise TeacherValidationError(f"teacher '{who}': {what} contains {n_nan} NaN and {n_inf} Inf values "
                                     f"(of {y.numel()}); a division by zero or log of 0 on dark pixels?")
    lo, hi = float(y.min()), float(y.max())
    if space in ("srgb", "linear"):
        if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
            hint = ""
            if hi > 1.5:
                hint = (" It looks like a 0..255 (or 0..65535) scale: return values in [0, 1], or with "
                        "PythonTeacher set value_range=(0, 255).")
            raise TeacherValidationError(
                f"teacher '{who}': {what} values span [{lo:.4g}, {hi:.4g}], outside [0, 1] for output_space "
                f"'{space}' (allowed slack {RANGE_SLACK}).{hint} If the output is scene-linear radiance, declare "
                f"output_space='hdr'")
        if lo < 0 or hi > 1:
            msg = f"{what} values span [{lo:.4g}, {hi:.4g}], slightly outside [0, 1]; kept as they are (not clipped)"
            if msg not in warns:
                warns.append(msg)
    elif lo < -RANGE_SLACK:
        raise TeacherValidationError(f"teacher '{who}': {what} has negative radiance down to {lo:.4g} "
                                     f"(output_space 'hdr' expects values >= 0)")
    flat = y.reshape(y.shape[0], -1)
    const = flat.std(dim=1) < CONSTANT_TOL
    if bool(const.any()):
        i = int(const.nonzero()[0])
        raise TeacherValidationError(f"teacher '{who}': {what} for probe image {i} is constant (every value "
                                     f"{float(flat[i, 0]):.4g}); the teacher ignores its input")


def _check_make_pair(teacher, x: torch.Tensor, who: str, warns: list[str]) -> None:
    pairs = []
    for attempt in ("calling make_pair", "calling make_pair a second time"):
        pair = _call(lambda: teacher.make_pair(x.clone()), who, attempt)
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TeacherValidationError(f"teacher '{who}': make_pair must return a tuple (x, y), got "
                                         f"{type(pair).__name__}")
        px, py = pair
        if not isinstance(px, torch.Tensor) or px.ndim != 4 or px.shape[1] != 3:
            raise TeacherValidationError(f"teacher '{who}': make_pair's x must be a [B,3,H,W] tensor, got "
                                         f"{getattr(px, 'shape', type(px).__name__)}")
        if not torch.isfinite(px).all():
            raise TeacherValidationError(f"teacher '{who}': make_pair's x contains NaN or Inf values")
        _check_output(py, px, teacher.output_space, who, "make_pair's y", warns)
        pairs.append((px, py))
    diff = max(float((a - b).abs().max()) for a, b in zip(pairs[0], pairs[1]))
    if diff > REPEAT_TOL:
        # A warning, not an error: a burst teacher may draw fresh noise per call on purpose (the pair cache
        # then keeps the first draw); cached and uncached runs will see different pairs.
        warns.append(f"make_pair is not repeatable: two calls on the same input differ by up to {diff:.3g}; "
                     f"seed its randomness from the input if runs should be reproducible")
