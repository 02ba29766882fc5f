"""HDRNet student (Gharbi et al., SIGGRAPH 2017), readable top to bottom like the paper's figure.

    full-res x --encode--> xe --area--> low-res [B,3,256,256]
        low-res --splat convs--> [B,C,16,16] --local path---------------+
                                              --global path (FC)--------+--> fuse --1x1--> grid [B,12,D,16,16]
    xe --guide (3x3 ccm + curves + mix)--> guide [B,H,W]
    grid, guide --slice--> coeffs [B,12,H,W] --apply to xe--> output [B,3,H,W]

Each option of the config (all fields but the sizes) is declared once in students/options.py: what it needs of
the others and which backends run it (this torch path, the fused C++ path, TorchScript, ONNX).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from distill.core.color import LUMA, linear_to_srgb
from students.grid import (N_COEFFS, apply_coeffs, bilateral_base, guide_map, identity_grid, lowres_copy, slice_grid,
                           slice_points)
from students.options import check_config, require

# Fixed range of the "log" input encoding, in stops: 2^-LOG_MIN .. 2^LOG_MAX maps to [0, 1]. HDR inputs
# arrive normalised to a maximum of 1 (distill.core.color.to_space), so this is a 20-stop window below the peak.
LOG_MIN, LOG_MAX = 20.0, 0.0


@dataclass
class HDRNetConfig:
    lowres: int = 256  # side of the low-res copy the network sees (paper: 256)
    grid_size: int = 16  # spatial cells per side (paper: 16)
    grid_depth: int = 8  # intensity bins (paper: 8)
    width: int = 8  # channels of the first splat conv; doubles per stride (paper: 8 -> 64)
    global_layers: int = 2  # strided convs in the global path before the FC layers
    curve_knots: int = 16  # knots of the guide's piecewise-linear curves (paper: 16)
    input_encoding: str = "none"  # "none" for [0,1] inputs, "log" for linear HDR radiance
    stats_bins: int = 0  # > 0: also feed luminance histograms (per grid cell and per image) to the network
    detail_input: bool = False  # also feed the full-res fine-detail energy, area-averaged (detail_energy)
    # > 0: divide the output by this percentile of its own luma and clamp to [0, 1] (normalise_white): the
    # teacher's exposure rule, computed instead of learnt. null: the output is what the grid gives.
    white_percentile: float | None = None
    # "srgb_log": the grid's affine output is read as log radiance in the input's log window and decoded to
    # display sRGB (decode_output): a tone operator that is a local gain on radiance is then a per-cell
    # *offset* in the grid, with the pixel's own detail passed through by an identity slope. "none": the
    # grid's output is the display value itself.
    output_encoding: str = "none"
    # True (log input only): the guide sees the encoded log *luminance* in place of the channels' mean (their
    # log chroma kept): ``luma_guide_input``. A luminance operator's gain follows log luminance, which the mean
    # of log channels (a geometric mean) misses by half a stop on saturated colours.
    guide_luma: bool = False
    # True (log input only): the luminance histograms (stats_bins) are of the log luminance too, the quantity
    # a guide_luma grid's intensity axis measures, instead of the mean of the log channels.
    stats_luma: bool = False
    # > 0 (log input): the guide reads the image with its log luminance replaced by a bilateral filter of it
    # (``bilateral_base``: spatial sigma this fraction of the longer side, range sigma guide_bilateral_stops),
    # the base layer of Durand & Dorsey, whose own sigmas are 0.02 and 1.33 stops. Fine texture then cannot
    # move a pixel along the grid's intensity axis, and an edge still splits its two sides. 0: off.
    guide_bilateral: float = 0.0
    guide_bilateral_stops: float = 1.33
    # > 0 (with guide_bilateral and srgb_log, in place of white_percentile): the exposure rule of Durand &
    # Dorsey's robust teacher, computed: the output radiance is divided so that pixels whose base layer sits at
    # this percentile of the base (the teacher's range_percentiles[1]) come out at their own detail, i.e. a
    # detail-free pixel there is display white (``base_white_offset``). null: off.
    white_base_percentile: float | None = None

    # Which backend runs which option, and what each option needs of the others: students/options.py.

    def __post_init__(self):
        n = math.log2(self.lowres / self.grid_size)
        if n != int(n) or n < 1:
            raise ValueError(f"lowres/grid_size must be a power of two >= 2, got {self.lowres}/{self.grid_size}")
        check_config(self)


def encode_input(x: torch.Tensor, encoding: str, lo: float = LOG_MIN, hi: float = LOG_MAX) -> torch.Tensor:
    """Map the teacher-space input into the [0,1]-ish domain the student works in (the constants are default
    arguments so that the exported student can script this function: TorchScript takes no module-level floats)."""
    if encoding == "none":
        return x
    # log2 radiance over a fixed window; fixed so that the fused path can do the same per pixel.
    return ((torch.log2(x.clamp(min=0) + 2.0**-lo) + lo) / (lo + hi)).clamp(0, 1)


def decode_output(y: torch.Tensor, encoding: str, lo: float = LOG_MIN, hi: float = LOG_MAX) -> torch.Tensor:
    """The grid's affine output -> the student's display output. "none": as is. "srgb_log": ``y`` is read in
    the "log" input encoding, as the radiance ``2^((LOG_MIN + LOG_MAX) y - LOG_MIN)``, which is clipped to
    [0, 1] and sRGB-encoded. An identity grid then shows the peak-normalised input ``x`` as sRGB (of
    ``x + 2^-LOG_MIN``: the encoding's offset is not taken back, which keeps the fused kernel's decode two
    exponentials; it moves the output by at most 1.3e-5)."""
    if encoding == "none":
        return y
    return linear_to_srgb(torch.exp2(y * (lo + hi) - lo))


def encoded_log_luminance(xe: torch.Tensor, lo: float = LOG_MIN, hi: float = LOG_MAX,
                          w: Tuple[float, float, float] = LUMA) -> torch.Tensor:
    """Log-encoded ``[B,3,H,W]`` -> ``[B,H,W]``, the encoded log luminance ``luma_guide_input`` gives the guide
    (constants as default arguments, so that the exported student can script it)."""
    lin = torch.exp2(xe * (lo + hi) - lo)
    lum = w[0] * lin[:, 0] + w[1] * lin[:, 1] + w[2] * lin[:, 2]
    return (torch.log2(lum) + lo) / (lo + hi)


def luma_guide_input(xe: torch.Tensor, lo: float = LOG_MIN, hi: float = LOG_MAX,
                     w: Tuple[float, float, float] = LUMA) -> torch.Tensor:
    """Log-encoded ``[B,3,...]`` -> the same with each pixel's channel mean replaced by its encoded log
    luminance ``encode(sum_c w_c 2^(20 xe_c - 20))`` (``w``: Rec. 709, the tone teachers' luminance): what a
    ``guide_luma`` student's guide reads. The guide's initial weights (1/3 each) then give exactly the log
    luminance. The constants are default arguments so that the exported student can script this function
    (TorchScript takes no module-level floats)."""
    return xe - xe.mean(1, keepdim=True) + encoded_log_luminance(xe, lo, hi, w).unsqueeze(1)


def luminance_histograms(low: torch.Tensor, bins: int, cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft (tent-weighted) histograms of the mean intensity of ``low [B,3,L,L]``: per grid cell
    ``[B,bins,cells,cells]`` and per image ``[B,bins]``, as densities (a flat histogram is all ones).

    A local tone operator's ideal coefficients are largely a function of the local intensity distribution
    (a bilateral grid *is* such a histogram); handing it to the network directly, rather than leaving the
    strided convs to rediscover it from 7 photos, is what lets the student generalise to unseen images.
    """
    b, _, h, w = low.shape
    if h % cells or w % cells:
        raise ValueError(f"luminance_histograms: low-res size {h}x{w} is not a multiple of {cells} cells")
    with torch.no_grad():  # a function of the input only: nothing to learn through it
        lum = low.mean(1, keepdim=True)
        if (h // cells) % 2 == 0 and (w // cells) % 2 == 0 and h // cells >= 8:
            # 2x2 means first: 4x fewer samples to scatter (64 per 16x16 cell), a third of the cost.
            lum, h, w = F.avg_pool2d(lum, 2), h // 2, w // 2
        lum = lum.reshape(b, h * w)
        # Tent weights touch two neighbouring bins: scatter them, instead of a [B,bins,L,L] broadcast.
        z = (lum * bins - 0.5).clamp(0, bins - 1)
        i0 = z.floor().clamp(max=max(bins - 2, 0))
        frac = z - i0
        rows = torch.arange(h, device=low.device) // (h // cells)
        cols = torch.arange(w, device=low.device) // (w // cells)
        cell = (rows[:, None] * cells + cols[None, :]).reshape(1, h * w)
        n_cells = cells * cells
        idx = i0.long() * n_cells + cell
        hist = torch.zeros(b, bins * n_cells, dtype=low.dtype, device=low.device)
        hist.scatter_add_(1, idx, 1 - frac)
        if bins > 1:
            hist.scatter_add_(1, idx + n_cells, frac)
        hist = hist.view(b, bins, cells, cells) * (bins * n_cells / (h * w))
    return hist, hist.mean((2, 3))


def with_histograms(low: torch.Tensor, global_feat: torch.Tensor, local_feat: torch.Tensor,
                    bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global ``[B,C']`` and local ``[B,C,G,G]`` features, each with its luminance histogram appended
    when ``bins > 0`` (``stats_bins``); unchanged otherwise. Shared with the exported student."""
    if bins <= 0:
        return global_feat, local_feat
    cell_hist, image_hist = luminance_histograms(low, bins, local_feat.shape[-1])
    return torch.cat([global_feat, image_hist], 1), torch.cat([local_feat, cell_hist], 1)


DETAIL_SCALE = 4.0  # detail_energy's factor, so that it sits near [0, 1]; the fused C++ pass uses the same


def fine_detail_sq(xe: torch.Tensor) -> torch.Tensor:
    """Squared finest detail ``[B,1,H,W]``: luminance (channel mean) minus its 3x3 mean, border windows
    averaging their valid pixels only. Shared with the exported student."""
    lum = xe.mean(1, keepdim=True)
    hp = lum - F.avg_pool2d(lum, 3, stride=1, padding=1, count_include_pad=False)
    return hp * hp


def detail_energy(xe: torch.Tensor, size: int) -> torch.Tensor:
    """Root-mean-square of the full-resolution image's finest detail (``fine_detail_sq``), averaged over each
    low-res pixel's footprint: ``[B,1,size,size]``, times ``DETAIL_SCALE``.

    The low-res copy averages fine texture away (a 640 px photo loses everything under 2.5 px), yet how
    much texture a cell holds is what a detail-boosting operator's curve for that cell depends on. Measured
    at the full-res pixel scale, so it means the same at any image size.
    """
    with torch.no_grad():  # a function of the input only
        return DETAIL_SCALE * lowres_copy(fine_detail_sq(xe), size).clamp(min=0).sqrt()


OUTPUT_LUMA = LUMA  # Rec. 709 weights, here on the student's output as it is (display-encoded)
WHITE_FLOOR = 1e-3  # the white level is never taken below this: a black output stays black, not NaN


Stat = tuple[torch.Tensor, torch.Tensor]  # (values [B], indices [B])


def _order_stats(v: torch.Tensor, p: float) -> tuple[Stat, Stat, float]:
    """The two order statistics of each row of ``v [B,N]`` that its ``p``-th percentile interpolates, as
    (values, indices) pairs, and the interpolation weight of the second."""
    n = v.shape[1]
    pos = p / 100.0 * (n - 1)
    lo = min(int(math.floor(pos)), n - 1)
    a = torch.kthvalue(v, lo + 1, dim=1)
    if pos == lo or lo + 1 >= n:
        return (a.values, a.indices), (a.values, a.indices), 0.0
    b = torch.kthvalue(v, lo + 2, dim=1)
    return (a.values, a.indices), (b.values, b.indices), pos - lo


def percentile(v: torch.Tensor, p: float) -> torch.Tensor:
    """``p``-th percentile of each row of ``v [B,N]`` -> ``[B]``, linear interpolation between order
    statistics (numpy's default). Two ``kthvalue`` calls instead of a sort: O(N), no size limit (torch.quantile
    refuses more than 2^24 values), and the gradient flows to the two elements it picks."""
    (a, _), (b, _), frac = _order_stats(v, p)
    return a if frac == 0.0 else a + frac * (b - a)


def output_luma(y: torch.Tensor) -> torch.Tensor:
    """``[B,3,...]`` -> ``[B,...]``, the OUTPUT_LUMA-weighted sum of the channels."""
    w = torch.tensor(OUTPUT_LUMA, dtype=y.dtype, device=y.device).view((1, 3) + (1,) * (y.dim() - 2))
    return (y * w).sum(1)


def white_level(y_sub: torch.Tensor, p: float) -> torch.Tensor:
    """The level ``[B]`` that ``normalise_white`` maps to 1: the ``p``-th percentile of the luma of
    ``y_sub [B,3,h,w]``, the student's output on every other row and column of the image (the teacher takes its
    white point on the same quarter of the pixels)."""
    return percentile(output_luma(y_sub).flatten(1), p).clamp(min=WHITE_FLOOR)


def normalise_white(y: torch.Tensor, white: torch.Tensor) -> torch.Tensor:
    """``y [B,3,...]`` divided by ``white [B]`` and clamped to [0, 1].

    Why: a tone-compressing teacher (local_laplacian_tone) shifts its result so that its 99.5th percentile is
    display white. That shift is a property of the whole image (how bright its few lights end up), which a
    student trained on crops learns badly: on held-out scenes its midtones come out uniformly too bright or
    too dark. Divided by its own percentile, the student only has to get the *local* relation between lights
    and midtones right, which is what a bilateral grid does well; the global level is computed, as the
    teacher computes it. The clamp is the teacher's clip to white, so lights above white cost nothing."""
    shape = (-1,) + (1,) * (y.dim() - 1)
    return (y / white.view(shape)).clamp(0.0, 1.0)


def white_base_count(n: int) -> int:
    """How many pixels ``white_base_percentile``'s exposure averages over, of ``n``: 0.5 % of them, 8 to 256
    (few enough to sit on both sides of a high percentile)."""
    return min(max(8, n // 200), 256, n)


def white_base_pixels(base: torch.Tensor, p: float) -> torch.Tensor:
    """Indices ``[B,K]`` of the ``white_base_count`` pixels whose ``base [B,N]`` is nearest its ``p``-th
    percentile (the fused path picks the same ones in numpy)."""
    hi = percentile(base, p)
    return torch.topk(-(base - hi.unsqueeze(1)).abs(), white_base_count(base.shape[1]), dim=1).indices


def white_offset(y: torch.Tensor, e: torch.Tensor, base: torch.Tensor, lo: float = LOG_MIN, hi: float = LOG_MAX,
                 w: Tuple[float, float, float] = LUMA) -> torch.Tensor:
    """``base_white_offset`` from the affine (log-radiance) output ``y [B,3,K]`` at the chosen pixels and their
    encoded log luminance ``e`` and base ``[B,K]``: the mean of the output's log2 luminance minus the pixel's
    own detail, ``[B]``."""
    lin = torch.exp2(y * (lo + hi) - lo)  # [B,3,K] radiance
    lum = w[0] * lin[:, 0] + w[1] * lin[:, 1] + w[2] * lin[:, 2]
    return (torch.log2(lum.clamp(min=2.0 ** -lo)) - (e - base) * (lo + hi)).mean(1)


def offset_biases(grid: torch.Tensor, stops: torch.Tensor, lo: float = LOG_MIN, hi: float = LOG_MAX) -> torch.Tensor:
    """``grid [B,12,D,Gh,Gw]`` with ``stops [B]`` (log2) taken off every cell's three biases: for a log-radiance
    output (``srgb_log``) that divides the output radiance by ``2^stops``."""
    bias = torch.zeros(1, grid.shape[1], 1, 1, 1, dtype=grid.dtype, device=grid.device)
    bias[:, 3::4] = 1.0
    return grid - bias * (stops / (lo + hi)).view(-1, 1, 1, 1, 1)


def gather_pixels(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``x [B,C,H,W]`` at pixels ``(rows, cols) [B,N]`` -> ``[B,C,N]``."""
    b, c, h, w = x.shape
    idx = (rows * w + cols).unsqueeze(1).expand(b, c, rows.shape[1])
    return torch.gather(x.reshape(b, c, h * w), 2, idx)


def _conv(cin, cout, stride=1, k=3, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HDRNet(nn.Module):
    """Bilateral-grid student. ``forward(full_res[B,3,H,W]) -> [B,3,H,W]``; it makes its own low-res copy."""

    def __init__(self, cfg: HDRNetConfig | None = None, **kwargs):
        super().__init__()
        cfg = cfg or HDRNetConfig(**kwargs)
        require(cfg, "torch", "HDRNet")  # students/options.py: every option has a torch path, the definition
        self.cfg = cfg
        n_splat = int(math.log2(cfg.lowres / cfg.grid_size))
        chans = [3 + int(cfg.detail_input)] + [cfg.width * 2**i for i in range(n_splat)]
        c = chans[-1]
        # Splat: strided convs, 256 -> 16.
        self.splat = nn.Sequential(*[_conv(chans[i], chans[i + 1], stride=2) for i in range(n_splat)])
        # Global path: strided convs, then FC layers -> one feature vector per image.
        self.global_conv = nn.Sequential(*[_conv(c, c, stride=2) for _ in range(cfg.global_layers)])
        gs = cfg.grid_size // 2**cfg.global_layers
        sb = cfg.stats_bins
        self.global_fc = nn.Sequential(
            nn.Linear(c * gs * gs + sb, 4 * c), nn.ReLU(inplace=True),
            nn.Linear(4 * c, 2 * c), nn.ReLU(inplace=True),
            nn.Linear(2 * c, c),
        )
        # Local path: two convs at grid resolution; the last one is linear.
        self.local = nn.Sequential(_conv(c + sb, c), _conv(c, c, act=False))
        # Fusion -> grid of 12 coefficients x D bins per cell.
        self.to_grid = nn.Conv2d(c, N_COEFFS * cfg.grid_depth, 1)
        nn.init.zeros_(self.to_grid.weight)
        nn.init.zeros_(self.to_grid.bias)
        # The network predicts a residual on the identity transform, so an untrained student is the identity.
        self.register_buffer("grid_identity", identity_grid(1, cfg.grid_depth, 1, 1), persistent=False)

        # Guide: 3x3 colour transform + per-channel curves + weighted sum, initialised to mean intensity.
        k = cfg.curve_knots
        self.ccm = nn.Parameter(torch.eye(3))
        self.ccm_bias = nn.Parameter(torch.zeros(3))
        self.shifts = nn.Parameter(torch.linspace(0, 1, k + 1)[:-1].repeat(3, 1))
        slopes = torch.zeros(3, k)
        slopes[:, 0] = 1.0
        self.slopes = nn.Parameter(slopes)
        self.mix = nn.Parameter(torch.full((3,), 1 / 3))
        self.mix_bias = nn.Parameter(torch.zeros(1))

    # -- the four steps of the method -------------------------------------------------------------------
    def lowres_input(self, xe: torch.Tensor) -> torch.Tensor:
        """Encoded full-res ``[B,3,H,W]`` -> what ``coefficients`` takes: the low-res copy ``[B,3,L,L]``,
        with ``detail_energy`` as a 4th channel when ``detail_input`` is set."""
        low = lowres_copy(xe, self.cfg.lowres)
        if not self.cfg.detail_input:
            return low
        return torch.cat([low, detail_energy(xe, self.cfg.lowres)], 1)

    def coefficients(self, low: torch.Tensor) -> torch.Tensor:
        """Low-res image ``[B,3,L,L]`` (``[B,4,L,L]`` with ``detail_input``) -> bilateral grid ``[B,12,D,G,G]``."""
        feat = self.splat(low)  # [B,C,G,G]
        stats_in = luma_guide_input(low[:, :3]) if self.cfg.stats_luma else low[:, :3]  # channel mean = what to count
        gfeat, lfeat = with_histograms(stats_in, self.global_conv(feat).flatten(1), feat, self.cfg.stats_bins)
        g = self.global_fc(gfeat)  # [B,C]
        fused = F.relu(self.local(lfeat) + g[:, :, None, None])  # [B,C,G,G]
        b, _, gh, gw = fused.shape
        grid = self.to_grid(fused).view(b, N_COEFFS, self.cfg.grid_depth, gh, gw)
        return grid + self.grid_identity

    def guide_source(self, xe: torch.Tensor) -> torch.Tensor:
        """What the guide reads for the encoded image ``xe [B,3,H,W]``: ``xe`` itself, or with ``guide_bilateral``
        ``xe`` shifted so that its log luminance is its ``bilateral_base`` (the chroma kept)."""
        if not self.cfg.guide_bilateral:
            return xe
        with torch.no_grad():  # a function of the input only
            e = encoded_log_luminance(xe)
            sigma_px = self.cfg.guide_bilateral * max(xe.shape[-2:])
            base = bilateral_base(e, sigma_px, self.cfg.guide_bilateral_stops / (LOG_MIN + LOG_MAX))
            return xe + (base - e).unsqueeze(1)

    def guide(self, x: torch.Tensor) -> torch.Tensor:
        """Full-res ``[B,3,H,W]`` (``guide_source``'s output) -> guide ``[B,H,W]`` in [0,1]."""
        if self.cfg.guide_luma:
            x = luma_guide_input(x)
        return guide_map(x, self.ccm, self.ccm_bias, self.shifts, self.slopes, self.mix, self.mix_bias)

    def guide_points(self, gsrc: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """The guide ``[B,N]`` at pixels ``(rows, cols)``, from ``gsrc = guide_source(xe)`` of the whole image
        (a bilateral guide needs every pixel, not only the sampled ones)."""
        return self.guide(gather_pixels(gsrc, rows, cols).unsqueeze(2)).squeeze(1)

    def apply_and_decode(self, coeffs: torch.Tensor, xe: torch.Tensor) -> torch.Tensor:
        """Sliced coefficients ``[B,12,...]`` applied to the encoded pixels ``[B,3,...]``, decoded to the output
        (``decode_output``): the per-pixel end of every path (whole image, sampled points, white level)."""
        return decode_output(apply_coeffs(coeffs, xe), self.cfg.output_encoding)

    def render(self, grid: torch.Tensor, xe: torch.Tensor, gsrc: torch.Tensor | None = None) -> torch.Tensor:
        """Grid ``[B,12,D,G,G]`` applied to the encoded full-res image ``[B,3,H,W]`` (slice, apply), no white
        normalisation. ``gsrc``: ``guide_source(xe)``, when the caller has it already."""
        gsrc = self.guide_source(xe) if gsrc is None else gsrc
        return self.apply_and_decode(slice_grid(grid, self.guide(gsrc)), xe)

    def white(self, grid: torch.Tensor, xe: torch.Tensor) -> torch.Tensor:
        """``white_level`` of the image: ``render`` on every other row and column of ``xe``, taken as an image
        of its own (the fused path computes exactly this)."""
        xs = xe[..., ::2, ::2]
        gs = self.guide_source(xs)  # once: the search below and the two pixels' render both read it
        if not torch.is_grad_enabled():
            return white_level(self.render(grid, xs, gs), self.cfg.white_percentile)
        # With autograd: the percentile's gradient reaches only the two pixels it interpolates. Find them without
        # autograd (no activations kept for a quarter of the image), then render just those two with it:
        # the same value and gradient as white_level on a differentiable render, at a fraction of the cost.
        with torch.no_grad():
            (_, i0), (_, i1), frac = _order_stats(output_luma(self.render(grid, xs, gs)).flatten(1),
                                                  self.cfg.white_percentile)
        h, w = xs.shape[-2:]
        idx = torch.stack([i0, i1], 1)  # [B,2]
        rows, cols = idx // w, idx % w
        xp = gather_pixels(xs, rows, cols)  # [B,3,2]
        guide = self.guide_points(gs, rows, cols)
        luma = output_luma(self.apply_and_decode(slice_points(grid, guide, rows, cols, h, w), xp))  # [B,2]
        return (luma[:, 0] + frac * (luma[:, 1] - luma[:, 0])).clamp(min=WHITE_FLOOR)

    def base_white_offset(self, grid: torch.Tensor, xe: torch.Tensor) -> torch.Tensor:
        """``white_base_percentile``'s exposure, ``[B]`` in log2 units: on every other row and column of ``xe``
        (as ``white``), the mean over the pixels whose base is nearest the base's percentile ``hi`` (0.5 % of
        them, 8 to 256: few enough to sit on both sides of a high percentile) of the student's output log2
        luminance minus the pixel's own detail (log luminance minus base). The teacher maps ``hi`` to white
        and keeps detail, so this is 0 for a student that exposes as the teacher does."""
        xs = xe[..., ::2, ::2]
        gs = self.guide_source(xs)
        b, _, h, w = xs.shape
        with torch.no_grad():  # which pixels: a function of the input only
            e, base = encoded_log_luminance(xs).flatten(1), encoded_log_luminance(gs).flatten(1)  # [B,N]
            idx = white_base_pixels(base, self.cfg.white_base_percentile)  # [B,K]
        rows, cols = idx // w, idx % w
        return self.white_offset_at(grid, gather_pixels(xs, rows, cols), gather_pixels(gs, rows, cols),
                                    torch.gather(e, 1, idx), torch.gather(base, 1, idx), rows, cols, h, w)

    def white_offset_at(self, grid: torch.Tensor, xp: torch.Tensor, gp: torch.Tensor, e: torch.Tensor,
                        base: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``base_white_offset`` from its chosen pixels: encoded pixels ``xp`` and guide sources ``gp`` ``[B,3,K]``,
        their log luminance ``e`` and base ``[B,K]`` at ``(rows, cols)`` of an ``h x w`` image. ``[B]``, log2."""
        y = apply_coeffs(slice_points(grid, self.guide(gp.unsqueeze(2)).squeeze(1), rows, cols, h, w), xp)
        return white_offset(y, e, base)

    def expose(self, grid: torch.Tensor, xe: torch.Tensor) -> torch.Tensor:
        """With ``white_base_percentile``: the grid with ``base_white_offset`` taken off every cell's three
        biases (the output is log radiance, so that divides the radiance); the grid as is otherwise."""
        if self.cfg.white_base_percentile is None:
            return grid
        return offset_biases(grid, self.base_white_offset(grid, xe))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xe = encode_input(x, self.cfg.input_encoding)  # [B,3,H,W]
        grid = self.coefficients(self.lowres_input(xe))  # [B,12,D,G,G]
        grid = self.expose(grid, xe)  # white_base_percentile: the exposure folded into the biases
        guide = self.guide(self.guide_source(xe))  # [B,H,W]
        coeffs = slice_grid(grid, guide)  # [B,12,H,W]
        out = self.apply_and_decode(coeffs, xe)  # [B,3,H,W]
        if self.cfg.white_percentile:
            out = normalise_white(out, self.white(grid, xe))
        return out

    def forward_points(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """The output of ``forward`` at pixels ``(rows, cols)`` (each ``[B, N]``) only: ``[B, 3, N]``.

        The low-res path still sees the whole image; only the per-pixel half is sampled. Training uses it to
        put its compute into more crops instead of more pixels of the same crop.
        """
        xe = encode_input(x, self.cfg.input_encoding)
        grid = self.expose(self.coefficients(self.lowres_input(xe)), xe)
        b, _, h, w = x.shape
        xp = gather_pixels(xe, rows, cols)  # [B,3,N]
        guide = self.guide_points(self.guide_source(xe), rows, cols)  # [B,N]
        out = self.apply_and_decode(slice_points(grid, guide, rows, cols, h, w), xp)
        if self.cfg.white_percentile:  # the white level still needs (a quarter of) the whole image
            out = normalise_white(out, self.white(grid, xe))
        return out

    def guide_params(self) -> dict[str, torch.Tensor]:
        """Guide parameters, detached (the fused path consumes them)."""
        names = ("ccm", "ccm_bias", "shifts", "slopes", "mix", "mix_bias")
        return {n: getattr(self, n).detach() for n in names}

    def config_dict(self) -> dict:
        return asdict(self.cfg)
