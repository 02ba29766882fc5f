"""Fidelity metrics between a student's output and its teacher's, on display-referred images.

Every metric here compares *display-referred* images: sRGB-encoded values in [0, 1], i.e. what a screen
shows. Scene-linear or HDR outputs must be tone-mapped / encoded before they are compared (the report does
that), otherwise PSNR on linear values overweights the highlights and Lab conversion is wrong.

Inputs: one image as a float numpy array ``[H,W,3]`` (channels last) or a torch tensor ``[3,H,W]`` /
``[1,3,H,W]`` (channels first). Batches (numpy ``[N,H,W,3]`` or torch ``[B,3,H,W]``) go through
``compute_batch``. Each function checks its inputs once and raises a ``ValueError`` / ``TypeError`` naming
the argument.

Metrics:
  * ``mse`` / ``psnr``: on RGB values, all three channels pooled; ``psnr`` is ``inf`` for identical images.
  * ``ssim``: scikit-image with the settings of Wang et al. 2004 (Gaussian window sigma 1.5, population
    covariance, K1=0.01, K2=0.03), averaged over the three RGB channels.
  * ``ciede2000``: CIEDE2000 colour difference (Sharma, Wu, Dalal 2005) per pixel in CIELAB (D65, 2 deg),
    reported as mean and 95th percentile over pixels.
  * ``LPIPSMetric``: LPIPS (Zhang et al. 2018) with the AlexNet backbone, when its ImageNet weights are in
    the torch hub cache; otherwise "unavailable" with the reason, never a made-up number.

Example:
    >>> a = np.zeros((16, 16, 3), np.float32); b = a + 0.1
    >>> round(psnr(a, b), 6)
    20.0
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from distill.core.color import luminance

# name -> (higher is better, unit, one-line description); the report uses this for tables and plots.
METRICS: dict[str, tuple[bool, str, str]] = {
    "psnr": (True, "dB", "PSNR on display-referred sRGB values in [0,1]"),
    "ssim": (True, "", "SSIM (Wang et al. 2004: Gaussian sigma 1.5), mean over RGB"),
    "ciede2000_mean": (False, "dE00", "CIEDE2000 colour difference, mean over pixels"),
    "ciede2000_p95": (False, "dE00", "CIEDE2000 colour difference, 95th percentile over pixels"),
    "lpips": (False, "", "LPIPS v0.1, AlexNet backbone (lower is closer)"),
    "psnr_input": (True, "dB", "do-nothing baseline: PSNR of the input itself (shown for display) vs the teacher"),
}

# SSIM's Gaussian window (sigma 1.5, truncate 3.5) is 11 x 11: smaller images have no valid window.
SSIM_MIN_SIZE = 11
# Pixels per strip in ciede2000_map (bounds its float64 temporaries to a few hundred MB).
_CIEDE_CHUNK_PIXELS = 1 << 20


# ---------------------------------------------------------------------------------------------------------
# Input handling: one boundary, one set of messages.
# ---------------------------------------------------------------------------------------------------------


def as_images(x: Any, name: str) -> np.ndarray:
    """Convert one image or a batch to a float32 numpy batch ``[N,H,W,3]`` (channels last).

    Args:
        x: numpy ``[H,W,3]`` / ``[N,H,W,3]`` or torch ``[3,H,W]`` / ``[B,3,H,W]``, floating point.
        name: argument name used in error messages.

    Returns:
        float32 array ``[N,H,W,3]``.
    """
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor with values in [0,1], got {x.dtype}")
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{name}: torch images must be [3,H,W] or [B,3,H,W], got {tuple(x.shape)}")
        arr = x.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()  # [B,H,W,3]
    elif isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(
                f"{name}: expected a floating-point array with values in [0,1], got {x.dtype} "
                "(convert 8/16-bit images with img / 255 or img / 65535 first)"
            )
        shape = x.shape
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3:
            hint = ""
            if x.ndim == 4 and x.shape[1] == 3:
                hint = " (numpy images are channels-last: transpose [3,H,W] to [H,W,3])"
            raise ValueError(f"{name}: numpy images must be [H,W,3] or [N,H,W,3], got {shape}{hint}")
        arr = x.astype(np.float32, copy=False)
    else:
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"{name}: empty image, shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or Inf values")
    return arr


def _pair(a: Any, b: Any, names: tuple[str, str] = ("a", "b")) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert one image pair to float32 ``[H,W,3]`` arrays of equal shape."""
    x, y = as_images(a, names[0]), as_images(b, names[1])
    for arr, n in ((x, names[0]), (y, names[1])):
        if arr.shape[0] != 1:
            raise ValueError(
                f"{n}: expected one image, got a batch of {arr.shape[0]}; use compute_batch() for batches"
            )
    if x.shape != y.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in shape: {x.shape[1:]} vs {y.shape[1:]}")
    return x[0], y[0]


# ---------------------------------------------------------------------------------------------------------
# Pixel metrics
# ---------------------------------------------------------------------------------------------------------


def mse(a: Any, b: Any) -> float:
    """Mean squared error over all pixels and the three channels (computed in float64)."""
    x, y = _pair(a, b)
    d = x.astype(np.float64) - y.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: Any, b: Any, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``.

    Args:
        a, b: one image each (see module docstring), display-referred values in [0, 1].
        data_range: peak value (1.0 for float images in [0, 1]).

    Returns:
        PSNR in dB; ``math.inf`` when the images are identical (MSE = 0).
    """
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    err = mse(a, b)
    if err == 0.0:
        return math.inf
    return float(10.0 * math.log10(data_range * data_range / err))


def ssim(a: Any, b: Any) -> float:
    """Structural similarity, scikit-image's implementation with Wang et al.'s (2004) settings.

    Gaussian-weighted 11x11 window (sigma 1.5), population (not sample) covariance, K1=0.01, K2=0.03,
    data_range=1; SSIM is computed per RGB channel and averaged. Images must be at least 11x11.
    """
    from skimage.metrics import structural_similarity

    x, y = _pair(a, b)
    if min(x.shape[:2]) < SSIM_MIN_SIZE:
        raise ValueError(f"ssim needs images of at least {SSIM_MIN_SIZE}x{SSIM_MIN_SIZE}, got {x.shape[:2]}")
    # One channel at a time in float64 (what channel_axis=-1 does, averaged), so that a 12 MP image never
    # holds full float64 RGB copies on top of skimage's per-channel temporaries.
    per_channel = [
        structural_similarity(
            x[..., c].astype(np.float64),
            y[..., c].astype(np.float64),
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for c in range(3)
    ]
    return float(np.mean(per_channel))


def ciede2000_map(a: Any, b: Any) -> np.ndarray:
    """Per-pixel CIEDE2000 colour difference ``[H,W]`` (float32).

    The sRGB values are converted to CIELAB (D65 white, 2 degree observer) with ``skimage.color.rgb2lab``,
    which applies the sRGB decoding curve first; ``deltaE_ciede2000`` uses kL = kC = kH = 1.
    """
    from skimage.color import deltaE_ciede2000, rgb2lab

    x, y = _pair(a, b)
    out = np.empty(x.shape[:2], np.float32)  # [H,W]
    # Strips of rows: the conversion is per pixel, so this is exact, and it keeps the float64
    # intermediates to ~1 Mpixel (a 12 MP image at once peaks near 5 GB).
    step = max(1, _CIEDE_CHUNK_PIXELS // x.shape[1])
    for r in range(0, x.shape[0], step):
        lab_x = rgb2lab(x[r:r + step].astype(np.float64), channel_axis=-1)  # [h,W,3]
        lab_y = rgb2lab(y[r:r + step].astype(np.float64), channel_axis=-1)
        out[r:r + step] = deltaE_ciede2000(lab_x, lab_y, channel_axis=-1)
    return out


def ciede2000(a: Any, b: Any) -> dict[str, float]:
    """CIEDE2000 statistics over pixels: ``{"mean": ..., "p95": ...}`` (95th percentile, linear interp)."""
    de = ciede2000_map(a, b).astype(np.float64)
    return {"mean": float(de.mean()), "p95": float(np.percentile(de, 95))}


def error_map(a: Any, b: Any, kind: str = "ciede2000") -> np.ndarray:
    """Per-pixel error ``[H,W]`` (float32) for the report's heat maps.

    Args:
        a, b: one image each.
        kind: ``"ciede2000"`` (colour difference in dE00 units; 1 is about a just-noticeable difference) or
            ``"abs_luminance"`` (absolute difference of Rec. 709 luma of the encoded values, in [0, 1]).
    """
    if kind == "ciede2000":
        return ciede2000_map(a, b)
    if kind == "abs_luminance":
        x, y = _pair(a, b)
        return np.abs(luminance(x) - luminance(y)).astype(np.float32)
    raise ValueError(f"error_map: unknown kind '{kind}' (expected 'ciede2000' or 'abs_luminance')")


# ---------------------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------------------

# Backbone weights torchvision loads for each LPIPS net (the file names carry the sha256 prefix).
_BACKBONE_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}


def lpips_weights_path(net: str = "alex") -> Path:
    """Where torchvision looks for the LPIPS backbone weights: ``torch.hub.get_dir()/checkpoints/<file>``.

    ``torch.hub.get_dir()`` is ``$TORCH_HOME/hub`` when ``TORCH_HOME`` is set, else
    ``$XDG_CACHE_HOME/torch/hub`` or ``~/.cache/torch/hub``.
    """
    if net not in _BACKBONE_URLS:
        raise ValueError(f"LPIPS net must be one of {sorted(_BACKBONE_URLS)}, got '{net}'")
    return Path(torch.hub.get_dir()) / "checkpoints" / _BACKBONE_URLS[net].rsplit("/", 1)[1]


def lpips_weights_help(net: str = "alex") -> str:
    """README text: how to make LPIPS available on an offline machine."""
    url = _BACKBONE_URLS[net]
    path = lpips_weights_path(net)
    return (
        f"LPIPS ({net}) needs torchvision's ImageNet backbone weights, which no Python package ships.\n"
        f"On a machine with internet access, download\n    {url}\n"
        f"and copy the file, name unchanged, to\n    {path}\n"
        "(the directory is torch.hub.get_dir()/checkpoints: $TORCH_HOME/hub/checkpoints when TORCH_HOME is\n"
        "set, otherwise ~/.cache/torch/hub/checkpoints). The file name ends in the first 8 hex digits of its\n"
        "SHA-256, which is checked before use. LPIPS's own linear-layer weights ship inside the lpips package.\n"
        "Without the backbone file the report says 'LPIPS not computed' instead of printing a number."
    )


def _sha256_prefix_ok(path: Path) -> bool:
    """torchvision's convention: the file name ends in ``-<first 8+ hex of sha256>.pth``."""
    expected = path.stem.rsplit("-", 1)[-1]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest().startswith(expected)


class LPIPSMetric:
    """LPIPS distance (Zhang et al., CVPR 2018) through the ``lpips`` package, never downloading anything.

    The backbone's ImageNet weights are looked up in the torch hub cache *before* the network is built, so
    that torchvision never tries to download them. When the file is absent (or fails its checksum or fails
    to load) the metric is unavailable: ``available`` is False, ``reason`` says why, and calls return None.

    ``pnet_rand=True`` builds the same network on a randomly initialised backbone (seeded, offline): it
    exercises the code path in tests; its values are meaningless (``meaningful`` is False).

    Args:
        net: LPIPS backbone, ``"alex"`` (the standard LPIPS) , ``"vgg"`` or ``"squeeze"``.
        pnet_rand: use a random backbone (tests only).
        device: torch device to run on.
        seed: seed of the random backbone when ``pnet_rand`` (global RNG state is left untouched).
        verify_hash: check the weights file against the SHA-256 prefix in its name before loading.

    Example:
        >>> m = LPIPSMetric(pnet_rand=True)
        >>> x = np.random.rand(32, 32, 3).astype(np.float32)
        >>> m(x, x)
        0.0
    """

    def __init__(
        self,
        net: str = "alex",
        pnet_rand: bool = False,
        device: str | torch.device = "cpu",
        seed: int = 0,
        verify_hash: bool = True,
    ):
        self.net = net
        self.pnet_rand = pnet_rand
        self.device = torch.device(device)
        self.weights_path = lpips_weights_path(net)
        self.model = None
        self.reason: str | None = None
        self.meaningful = not pnet_rand

        if not pnet_rand:
            # Look before constructing: lpips -> torchvision would otherwise try to download the file.
            if not self.weights_path.is_file():
                self.reason = (
                    f"LPIPS not computed: backbone weights not found at {self.weights_path}; see README"
                )
                return
            if verify_hash and not _sha256_prefix_ok(self.weights_path):
                self.reason = (
                    f"LPIPS not computed: backbone weights at {self.weights_path} fail their SHA-256 "
                    "check (truncated or wrong file); see README"
                )
                return
        try:
            self.model = self._build(seed)
        except Exception as e:  # a corrupt or incompatible weights file must not crash the report
            self.reason = f"LPIPS not computed: loading backbone weights from {self.weights_path} failed ({e})"

    def _build(self, seed: int):
        import warnings

        import lpips

        with warnings.catch_warnings():
            # lpips passes torchvision's deprecated ``pretrained=`` flag; harmless, and noisy.
            warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = lpips.LPIPS(net=self.net, pnet_rand=self.pnet_rand, verbose=False)
        return model.eval().requires_grad_(False).to(self.device)

    @property
    def available(self) -> bool:
        return self.model is not None

    @property
    def status(self) -> str:
        """One line for the report: what the LPIPS column means (or why it is empty)."""
        if not self.available:
            return str(self.reason)
        if not self.meaningful:
            return f"LPIPS ({self.net}) on a RANDOM backbone: values are meaningless (code-path test only)"
        return f"LPIPS v0.1 ({self.net}), backbone weights {self.weights_path.name}"

    def _to_tensor(self, x: Any, name: str) -> torch.Tensor:
        arr = as_images(x, name)  # [N,H,W,3]
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)  # [N,3,H,W]
        return (t * 2.0 - 1.0).to(self.device)  # LPIPS expects [-1, 1]

    def batch(self, a: Any, b: Any) -> list[float] | None:
        """LPIPS per image of two equal-shape batches; None when unavailable."""
        if not self.available:
            return None
        x, y = self._to_tensor(a, "a"), self._to_tensor(b, "b")
        if x.shape != y.shape:
            raise ValueError(f"a and b differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
        with torch.inference_mode():
            d = self.model(x, y)  # [N,1,1,1]
        return [float(v) for v in d.flatten().cpu()]

    def __call__(self, a: Any, b: Any) -> float | None:
        """LPIPS between one image pair; None when unavailable (see ``reason``)."""
        x, y = _pair(a, b)
        out = self.batch(x, y)
        return None if out is None else out[0]

    def __repr__(self) -> str:
        return f"LPIPSMetric(net={self.net!r}, pnet_rand={self.pnet_rand}, status={self.status!r})"


# ---------------------------------------------------------------------------------------------------------
# Per-image rows and summaries
# ---------------------------------------------------------------------------------------------------------


def compute_all(
    student: Any, teacher: Any, lpips_metric: LPIPSMetric | None = None, clip: bool = True
) -> dict[str, float | None]:
    """All metrics for one image pair.

    Args:
        student: the student's display-referred output (one image).
        teacher: the teacher's display-referred output, the reference (same shape).
        lpips_metric: an ``LPIPSMetric``; None (or an unavailable one) gives ``lpips: None``.
        clip: clip both images to [0, 1] first, i.e. compare what a display shows (a student can
            overshoot slightly; the display clips it).

    Returns:
        ``{"psnr", "ssim", "ciede2000_mean", "ciede2000_p95", "lpips"}``; ``psnr`` may be ``inf``.
    """
    s, t = _pair(student, teacher, ("student", "teacher"))
    if clip:
        s, t = np.clip(s, 0.0, 1.0), np.clip(t, 0.0, 1.0)
    de = ciede2000(s, t)
    return {
        "psnr": psnr(s, t),
        "ssim": ssim(s, t),
        "ciede2000_mean": de["mean"],
        "ciede2000_p95": de["p95"],
        "lpips": lpips_metric(s, t) if lpips_metric is not None else None,
    }


def compute_batch(
    student: Any, teacher: Any, lpips_metric: LPIPSMetric | None = None, clip: bool = True
) -> list[dict[str, float | None]]:
    """``compute_all`` for each image of two batches (numpy ``[N,H,W,3]`` or torch ``[B,3,H,W]``)."""
    s, t = as_images(student, "student"), as_images(teacher, "teacher")
    if s.shape != t.shape:
        raise ValueError(f"student and teacher differ in shape: {s.shape} vs {t.shape} ([N,H,W,3])")
    return [compute_all(si, ti, lpips_metric, clip) for si, ti in zip(s, t)]


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean, median, worst and best of each metric over per-image rows.

    Worst is the minimum for PSNR and SSIM and the maximum for the error metrics (CIEDE2000, LPIPS).

    - ``None`` values (LPIPS not computed) are skipped; a metric with no values gets ``n = 0`` and None
      statistics.
    - ``inf`` PSNR (a student identical to its teacher) counts in ``n_inf``, the median, worst and best;
      the mean is taken over finite values only (inf only when every value is inf), so one perfect image
      does not hide the others. ``n`` counts all non-None values.
    - ``*_index`` give the row index of the worst, median (lower median) and best image, for the report's
      picture selection.

    Returns:
        ``{metric: {"n", "n_inf", "mean", "median", "worst", "best", "worst_index", "median_index",
        "best_index"}}`` for every metric that appears in any row.
    """
    rows = list(rows)
    names = [m for m in METRICS if any(m in r for r in rows)]
    names += sorted({k for r in rows for k in r} - set(names))
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        higher_better = METRICS.get(name, (False,))[0]
        idx, vals = [], []
        for i, r in enumerate(rows):
            v = r.get(name)
            if v is None:
                continue
            v = float(v)
            if math.isnan(v):
                raise ValueError(f"summarize: row {i} has NaN for '{name}'")
            idx.append(i)
            vals.append(v)
        stats: dict[str, Any] = {"n": len(vals), "n_inf": int(sum(math.isinf(v) for v in vals))}
        if not vals:
            stats.update(mean=None, median=None, worst=None, best=None,
                         worst_index=None, median_index=None, best_index=None)
            out[name] = stats
            continue
        v = np.asarray(vals, dtype=np.float64)
        finite = v[np.isfinite(v)]
        # Order from worst to best; stable so ties keep row order.
        order = np.argsort(v if higher_better else -v, kind="stable")
        stats.update(
            mean=float(finite.mean()) if finite.size else float(v.mean()),
            median=float(np.median(v)),
            worst=float(v[order[0]]),
            best=float(v[order[-1]]),
            worst_index=idx[order[0]],
            median_index=idx[order[(len(v) - 1) // 2]],
            best_index=idx[order[-1]],
        )
        out[name] = stats
    return out
