"""Export a trained HDRNet student to ONNX and TorchScript: the whole model, any image size.

The exported graph is the student end to end, as ``HDRNet.forward``:

    x [B,3,H,W] (teacher's input space) --encode--> xe --area--> low-res [B,3,L,L] --network--> grid [B,12,D,G,G]
    xe --guide--> [B,H,W];  grid, guide --slice--> [B,12,H,W] --apply to xe--> [B,3,H,W]

Two steps are written differently from the training path so that they export with a dynamic image size;
both compute the same function (checked against ``HDRNet.forward`` by ``verify_*``, max abs difference
below 1e-4, in practice ~1e-6):

* Low-res copy. ``F.interpolate(mode="area")`` is adaptive average pooling, and its ONNX export fixes the
  pooling windows to the example's size (another size then fails in onnxruntime). ``area_lowres`` computes
  the same windows (output row i averages input rows ``floor(i*H/L) .. ceil((i+1)*H/L)-1``) from an
  integral image: a float64 cumulative sum along each axis and two gathers per axis. Only the order of
  summation differs from torch's pooling.
* Slicing, in one of two forms. ONNX by default (``onnx_slice=portable``, opset 17): ``PortableStudent``
  slices by gathers of the eight corner cells and lerps (distill/deploy/onnx_slice.py; equal to
  ``students.grid.slice_grid``, not merely close), with no GridSample, so that TensorRT, TFLite converters
  and every onnxruntime provider take the graph; a guide_bilateral student's bilateral grid is sized by shape
  arithmetic on the input (``bilateral_dims_symbolic``). TorchScript, and ONNX with
  ``onnx_slice=gridsample5d`` (opset 20; onnxruntime's CPU provider only): ``ExportableStudent`` slices by the
  equivalent 5-D ``F.grid_sample`` (trilinear, ``align_corners=False``, border padding, coordinates (x, y, z));
  tests/students/test_grid.py checks the two agree to 1e-12 in float64.

Everything else calls the student's own functions (encode_input, guide_map, luma_guide_input, apply_coeffs,
decode_output, with_histograms, the bilateral splat and blur, white_base_pixels, white_offset, offset_biases),
written to script; ``coefficients`` restates HDRNet.coefficients' five lines over the same submodules.
``verify_*`` compares the whole model with ``HDRNet.forward``, so a drift shows. Which options each format
exports is declared in students/options.py (``require``), checked before anything is written.

ONNX needs both sides >= the student's low-res size (256 for the paper-sized student): torch's smaller-image
path (bilinear, antialiased upsampling) is a shape-dependent branch that the exporter cannot keep. The
TorchScript model keeps that branch and takes any size >= 1 pixel.

Metadata (teacher identity, input/output colour spaces, student config, checkpoint hash) goes into the ONNX
``metadata_props`` and into the TorchScript file's ``metadata.json`` extra file. Files are written atomically.

Example:
    hdr-distill export checkpoint=outputs/train/<run>/checkpoints/last.pt format=both out=exports/ll
"""
from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from distill.core.atomic import atomic_write_bytes
from students.grid import N_COEFFS, apply_coeffs, bilateral_blur, bilateral_dims, bilateral_splat, guide_map
from students.hdrnet import (DETAIL_SCALE, LOG_MAX, LOG_MIN, OUTPUT_LUMA, WHITE_FLOOR, HDRNet, decode_output,
                             encode_input, encoded_log_luminance, fine_detail_sq, luma_guide_input, offset_biases,
                             white_base_pixels, white_offset, with_histograms)
from students.options import require

from distill.deploy.onnx_slice import (bilateral_base_symbolic, fix_converted_reductions, portability_problems,
                                      slice_points_portable, slice_portable, white_base_pixels_topk)

log = logging.getLogger(__name__)

FORMAT = "hdr-distill-export/1"
FORMATS = ("onnx", "torchscript", "both")
SLICES = ("portable", "gridsample5d")  # ExportableStudent's slicing forms (onnx_slice: in conf/export.yaml)
PORTABLE_OPSET = 17  # the portable graph's opset; the 5-D GridSample needs 20
INPUT_NAME, OUTPUT_NAME = "image", "output"
TOLERANCE = 1e-4  # max abs difference allowed between an exported model and HDRNet.forward


class ExportError(RuntimeError):
    """An export failed, or the exported model does not reproduce the torch student."""


# -- export-friendly versions of the two steps ---------------------------------------------------------
def _box_sum_axis(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Mean over adaptive-pooling windows along ``dim`` (2 or 3) of ``x`` [B,C,H,W] -> that axis has ``size``.

    Window i covers ``floor(i*n/size) .. ceil((i+1)*n/size)-1`` (torch's adaptive_avg_pool definition).
    The sums come from a float64 integral image, so accuracy does not depend on n.
    """
    n = x.shape[dim]
    i = torch.arange(size, dtype=torch.long, device=x.device)
    start = torch.div(i * n, size, rounding_mode="floor")  # [size]
    end = torch.div((i + 1) * n + size - 1, size, rounding_mode="floor")  # [size]
    c = torch.cumsum(x.double(), dim=dim)
    zero = torch.zeros_like(c.narrow(dim, 0, 1))
    c = torch.cat([zero, c], dim=dim)  # integral image, n+1 entries along dim
    total = c.index_select(dim, end) - c.index_select(dim, start)
    count = (end - start).double()
    shape = [1, 1, 1, 1]
    shape[dim] = size
    return total / count.view(shape)


def area_lowres(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[B,3,H,W]`` -> ``[B,3,size,size]``, the same windows as ``F.interpolate(mode="area")`` (H, W >= size)."""
    rows = _box_sum_axis(x, size, 2)  # [B,3,size,W] float64
    return _box_sum_axis(rows, size, 3).to(x.dtype)  # [B,3,size,size]


def slice_grid_sample(grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Trilinear slicing by 5-D ``grid_sample``: grid ``[B,C,D,Gh,Gw]``, guide ``[B,H,W]`` -> ``[B,C,H,W]``.

    Pixel (i, j) with guide g reads normalised coordinates x = (2j+1)/W - 1, y = (2i+1)/H - 1, z = 2g - 1:
    with ``align_corners=False`` these are the cell-centred positions of students/grid.py for any grid size.
    """
    b, h, w = guide.shape[0], guide.shape[1], guide.shape[2]
    xs = (torch.arange(w, dtype=guide.dtype, device=guide.device) * 2 + 1) / w - 1  # [W]
    ys = (torch.arange(h, dtype=guide.dtype, device=guide.device) * 2 + 1) / h - 1  # [H]
    coords = torch.stack([xs.view(1, 1, w).expand(b, h, w), ys.view(1, h, 1).expand(b, h, w), guide * 2 - 1], -1)
    out = F.grid_sample(grid, coords.unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=False)
    return out.squeeze(2)  # [B,C,1,H,W] -> [B,C,H,W]


class ExportableStudent(nn.Module):
    """``HDRNet.forward`` with export-friendly low-res copy and slicing; TorchScript-compatible.

    Takes a snapshot of the model's weights (float32, eval mode, no gradients).

    Args:
        model: a trained ``HDRNet``.

    Slices by 5-D ``grid_sample`` (TorchScript; ONNX opset >= 20 with ``onnx_slice=gridsample5d``);
    ``PortableStudent`` is the same model with the portable slice (the default ONNX export).
    """

    def __init__(self, model: HDRNet):
        super().__init__()
        if not isinstance(model, HDRNet):
            raise TypeError(f"ExportableStudent: model must be an HDRNet, got {type(model).__name__}")
        require(model.cfg, "torchscript", "ExportableStudent")  # the superset of what ONNX exports
        m = copy.deepcopy(model).cpu().float().eval()
        self.lowres: int = m.cfg.lowres
        self.grid_depth: int = m.cfg.grid_depth
        self.stats_bins: int = m.cfg.stats_bins
        self.detail_input: bool = bool(m.cfg.detail_input)
        self.detail_scale: float = float(DETAIL_SCALE)
        # hdrnet.normalise_white; the percentile as a rational p_num / 10^6 so that the order-statistic index is
        # integer arithmetic on the (dynamic) pixel count
        self.white_num: int = int(round(float(m.cfg.white_percentile or 0.0) * 1e4))
        self.white_floor: float = float(WHITE_FLOOR)
        self.register_buffer("output_luma", torch.tensor(OUTPUT_LUMA).view(1, 3, 1, 1))
        self.n_coeffs: int = N_COEFFS
        self.input_encoding: str = m.cfg.input_encoding
        self.output_encoding: str = m.cfg.output_encoding
        self.guide_luma: bool = bool(m.cfg.guide_luma)
        # guide_bilateral: the guide reads the log luminance's bilateral filter (students.grid.bilateral_base)
        self.bilateral: float = float(m.cfg.guide_bilateral)
        self.bilateral_range: float = float(m.cfg.guide_bilateral_stops) / (LOG_MIN + LOG_MAX)
        self.white_base: float = float(m.cfg.white_base_percentile or 0.0)  # HDRNet.expose
        self.stats_luma: bool = bool(m.cfg.stats_luma)
        self.splat, self.global_conv, self.global_fc = m.splat, m.global_conv, m.global_fc
        self.local, self.to_grid = m.local, m.to_grid
        self.register_buffer("grid_identity", m.grid_identity.clone())
        for name, value in m.guide_params().items():  # ccm, ccm_bias, shifts, slopes, mix, mix_bias
            self.register_buffer(name, value.clone())
        self.requires_grad_(False)

    def slice_coeffs(self, grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """students.grid.slice_grid: ``[B,C,D,Gh,Gw]``, ``[B,H,W]`` -> ``[B,C,H,W]``, in the chosen form."""
        return slice_grid_sample(grid, guide)

    def slice_points(self, grid: torch.Tensor, guide: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                     h: int, w: int) -> torch.Tensor:
        """students.grid.slice_points: ``guide``, ``rows``, ``cols`` ``[B,K]`` of an ``h x w`` image -> ``[B,12,K]``."""
        b, k = guide.shape[0], guide.shape[1]
        ys = (rows.to(guide.dtype) * 2 + 1) / h - 1
        xs = (cols.to(guide.dtype) * 2 + 1) / w - 1
        coords = torch.stack([xs, ys, guide * 2 - 1], -1).view(b, 1, 1, k, 3)
        out = F.grid_sample(grid, coords, mode="bilinear", padding_mode="border", align_corners=False)
        return out.view(b, grid.shape[1], k)

    def white_base_pick(self, base: torch.Tensor) -> torch.Tensor:
        """hdrnet.white_base_pixels: which pixels ``[B,K]`` expose() averages over."""
        return white_base_pixels(base, self.white_base)

    def bilateral_base(self, e: torch.Tensor) -> torch.Tensor:
        """students.grid.bilateral_base of the encoded log luminance ``e [B,H,W]`` (slice by 5-D grid_sample)."""
        h, w = e.shape[1], e.shape[2]
        dims = bilateral_dims(h, w, self.bilateral * max(h, w), self.bilateral_range)
        nd = slice_grid_sample(bilateral_blur(bilateral_splat(e, dims)), e)  # [B,2,H,W]
        return nd[:, 0] / nd[:, 1].clamp(min=1e-20)

    def lowres_copy(self, xe: torch.Tensor) -> torch.Tensor:
        """students.grid.lowres_copy, with the area branch written as an integral image."""
        size = self.lowres
        h, w = xe.shape[2], xe.shape[3]
        if h == size and w == size:
            return xe
        if h >= size and w >= size:
            return area_lowres(xe, size)
        return F.interpolate(xe, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    def lowres_input(self, xe: torch.Tensor) -> torch.Tensor:
        """HDRNet.lowres_input: the low-res copy, plus hdrnet.detail_energy as a 4th channel if the student
        takes it (the 3x3 mean exports as an AveragePool without padding in the count)."""
        low = self.lowres_copy(xe)
        if not self.detail_input:
            return low
        return torch.cat([low, self.detail_scale * self.lowres_copy(fine_detail_sq(xe)).clamp(min=0).sqrt()], 1)

    def coefficients(self, low: torch.Tensor) -> torch.Tensor:
        """HDRNet.coefficients: low-res ``[B,3,L,L]`` (4 channels with detail_input) -> grid ``[B,12,D,G,G]``."""
        feat = self.splat(low)  # [B,C,G,G]
        stats_in = luma_guide_input(low[:, :3]) if self.stats_luma else low[:, :3]
        gfeat, lfeat = with_histograms(stats_in, self.global_conv(feat).flatten(1), feat, self.stats_bins)
        g = self.global_fc(gfeat)  # [B,C]
        fused = F.relu(self.local(lfeat) + g[:, :, None, None])  # [B,C,G,G]
        b, gh, gw = fused.shape[0], fused.shape[2], fused.shape[3]
        grid = self.to_grid(fused).view(b, self.n_coeffs, self.grid_depth, gh, gw)
        return grid + self.grid_identity

    def guide(self, xe: torch.Tensor) -> torch.Tensor:
        """students.grid.guide_map: 3x3 colour transform, per-channel piecewise-linear curves, mix, clamp; on
        HDRNet.guide_source's bilateral base first for a guide_bilateral student, on hdrnet.luma_guide_input
        for a guide_luma student."""
        if self.bilateral > 0:
            xe = self.bilateral_source(xe)
        return self.guide_plain(xe)

    def guide_plain(self, xe: torch.Tensor) -> torch.Tensor:
        """The guide of an already filtered source (``guide`` without its bilateral step): HDRNet.guide."""
        if self.guide_luma:
            xe = luma_guide_input(xe)
        return guide_map(xe, self.ccm, self.ccm_bias, self.shifts, self.slopes, self.mix, self.mix_bias)

    def expose(self, grid: torch.Tensor, xe: torch.Tensor) -> torch.Tensor:
        """HDRNet.expose / base_white_offset: the offset that puts the base's percentile at white (with its
        pixels' own detail), taken off every cell's three biases. On every other row and column of ``xe``; the
        chosen pixels sliced by grid_sample, as the whole image is."""
        xs = xe[:, :, ::2, ::2]
        gs = self.bilateral_source(xs)
        hh, ww = xs.shape[2], xs.shape[3]
        e, base = encoded_log_luminance(xs).flatten(1), encoded_log_luminance(gs).flatten(1)  # [B,N]
        idx = self.white_base_pick(base)  # [B,K]
        rows = torch.div(idx, ww, rounding_mode="floor")
        cols = idx - rows * ww  # not idx % ww: the exporter cannot take a remainder by a symbolic size
        xp = torch.gather(xs.flatten(2), 2, idx.unsqueeze(1).expand(-1, 3, -1))  # [B,3,K]
        gp = torch.gather(gs.flatten(2), 2, idx.unsqueeze(1).expand(-1, 3, -1))
        guide = self.guide_plain(gp.unsqueeze(2))  # [B,1,K]
        y = apply_coeffs(self.slice_points(grid, guide[:, 0], rows, cols, hh, ww), xp)  # [B,3,K]
        return offset_biases(grid, white_offset(y, torch.gather(e, 1, idx), torch.gather(base, 1, idx)))

    def bilateral_source(self, xe: torch.Tensor) -> torch.Tensor:
        """HDRNet.guide_source for a guide_bilateral student: ``xe`` shifted so that its log luminance is its
        bilateral base (students.grid.bilateral_base, the slice by 5-D grid_sample as for the coefficients)."""
        e = encoded_log_luminance(xe)  # [B,H,W]
        return xe + (self.bilateral_base(e) - e).unsqueeze(1)

    def apply(self, coeffs: torch.Tensor, xe: torch.Tensor) -> torch.Tensor:
        """HDRNet.apply_and_decode: the per-pixel 3x4 affine transform, ``[B,12,H,W]`` x ``[B,3,H,W]``, decoded."""
        return decode_output(apply_coeffs(coeffs, xe), self.output_encoding)

    def white(self, grid: torch.Tensor, xe: torch.Tensor) -> torch.Tensor:
        """HDRNet.white: the output's luma percentile on every other row and column, ``[B]``; the two order
        statistics come from a TopK (exports to ONNX; hdrnet.percentile's kthvalue does not)."""
        xs = xe[:, :, ::2, ::2]
        luma = (self.apply(self.slice_coeffs(grid, self.guide(xs)), xs) * self.output_luma).sum(1).flatten(1)
        n = luma.shape[1]
        scaled = self.white_num * (n - 1)  # pos = scaled / 10^6
        lo = scaled // 1000000
        hi = lo + 1 if lo + 1 < n else lo
        top = torch.topk(luma, n - lo, dim=1).values  # descending: top[:, n-1-i] is the i-th smallest
        a, b = top[:, n - 1 - lo], top[:, n - 1 - hi]
        frac = (scaled - lo * 1000000) / 1e6  # no float(): the exporter would freeze it at the traced size
        return (a + frac * (b - a)).clamp(min=self.white_floor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xe = encode_input(x, self.input_encoding)  # [B,3,H,W]
        grid = self.coefficients(self.lowres_input(xe))  # [B,12,D,G,G]
        if self.white_base > 0:
            grid = self.expose(grid, xe)
        coeffs = self.slice_coeffs(grid, self.guide(xe))  # [B,12,H,W]
        out = self.apply(coeffs, xe)  # [B,3,H,W]
        if self.white_num > 0:
            out = (out / self.white(grid, xe).view(-1, 1, 1, 1)).clamp(0.0, 1.0)
        return out


class PortableStudent(ExportableStudent):
    """``ExportableStudent`` with every slice by gathers and lerps (distill/deploy/onnx_slice.py), the bilateral
    base's grid sized by shape arithmetic, and the exposure's pixels picked by TopK: no GridSample, no kthvalue,
    ONNX opset 17. For the ONNX exporter only (``torch.export``; not scripted: TorchScript keeps the parent)."""

    def slice_coeffs(self, grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return slice_portable(grid, guide)

    def slice_points(self, grid: torch.Tensor, guide: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                     h: int, w: int) -> torch.Tensor:
        return slice_points_portable(grid, guide, rows, cols, h, w)

    def white_base_pick(self, base: torch.Tensor) -> torch.Tensor:
        return white_base_pixels_topk(base, self.white_base)

    def bilateral_base(self, e: torch.Tensor) -> torch.Tensor:
        return bilateral_base_symbolic(e, self.bilateral, self.bilateral_range)


# -- files ------------------------------------------------------------------------------------------------
def _metadata_strings(metadata: dict[str, Any]) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in metadata.items()}


def export_onnx(model: HDRNet, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
                opset: int | None = None, example_size: tuple[int, int] | None = None,
                onnx_slice: str = "portable") -> Path:
    """Export ``model`` to an ONNX file with dynamic batch, height and width (both sides >= lowres).

    Args:
        model: a trained ``HDRNet``.
        path: destination ``.onnx`` (written atomically).
        metadata: key -> value (non-strings stored as JSON) for the model's ``metadata_props``.
        opset: ONNX opset; None: 17 for the portable slice, 20 for the 5-D GridSample (which needs >= 20).
        onnx_slice: ``"portable"`` (gathers and lerps: no GridSample, runs on TensorRT / TFLite converters) or
            ``"gridsample5d"`` (one 5-D GridSample: onnxruntime's CPU provider only).
        example_size: (H, W) traced; any size >= lowres (default: lowres+37, lowres+77, deliberately
            not a multiple of the low-res size).

    Returns:
        The written path.
    """
    import onnx

    if onnx_slice not in SLICES:
        raise ValueError(f"export_onnx: onnx_slice must be one of {', '.join(SLICES)}, got '{onnx_slice}'")
    if opset is None:
        opset = PORTABLE_OPSET if onnx_slice == "portable" else 20
    if onnx_slice == "gridsample5d" and opset < 20:
        raise ValueError(f"export_onnx: opset must be >= 20 for onnx_slice=gridsample5d (5-D GridSample), got {opset}")
    require(model.cfg, "onnx", "export_onnx")  # students/options.py; before anything is written
    net = PortableStudent(model) if onnx_slice == "portable" else ExportableStudent(model)
    low = net.lowres
    h, w = example_size or (low + 37, low + 77)
    if min(h, w) < low:
        raise ValueError(f"export_onnx: example_size {h}x{w} must be at least the low-res size {low} on each side")
    x = torch.rand(2, 3, h, w)  # batch 2: an example batch of 1 would pin the batch dimension to 1
    dims = {2: torch.export.Dim("height", min=low), 3: torch.export.Dim("width", min=low),
            0: torch.export.Dim("batch", min=1)}
    quiet = [logging.getLogger(n) for n in ("onnx_ir", "onnxscript", "torch.onnx")]
    levels = [q.level for q in quiet]
    for q in quiet:  # the exporter's optimiser logs every pass at INFO; opset 17 is reached by its version converter
        q.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter chatter (deprecations, training-mode notes)
            # below 18 (the exporter's lowest), onnx's version converter takes the graph down afterwards
            program = torch.onnx.export(net, (x,), dynamo=True, dynamic_shapes={"x": dims}, opset_version=max(opset, 18),
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False)
    finally:
        for q, lv in zip(quiet, levels):
            q.setLevel(lv)
    proto = program.model_proto
    if opset < 18:
        try:
            proto = onnx.version_converter.convert_version(proto, opset)
            fix_converted_reductions(proto)
        except Exception as err:  # noqa: BLE001 - onnx raises several kinds
            raise ExportError(f"export_onnx: onnx's version converter could not take the graph to opset {opset}: "
                              f"{err}") from err
    if onnx_slice == "portable":  # the version converter keeps opset 18 where it fails: say so, write nothing
        problems = portability_problems(proto, opset)
        if problems:
            raise ExportError(f"export_onnx: the portable graph is not portable: {'; '.join(problems)}")
    extra = {"onnx_slice": onnx_slice, "opset": opset}
    for k, v in _metadata_strings({"format": FORMAT, **extra, **(metadata or {})}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    return atomic_write_bytes(Path(path), proto.SerializeToString())


def export_torchscript(model: HDRNet, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Script ``model`` (any image size) into a TorchScript file; metadata as the ``metadata.json`` extra file."""
    import io

    require(model.cfg, "torchscript", "export_torchscript")  # students/options.py; before anything is written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated but still the format
        scripted = torch.jit.script(ExportableStudent(model))
        buf = io.BytesIO()
        extra = {"metadata.json": json.dumps({"format": FORMAT, **(metadata or {})}, sort_keys=True)}
        torch.jit.save(scripted, buf, _extra_files=extra)
    return atomic_write_bytes(Path(path), buf.getvalue())


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (values as stored: strings, JSON for structures)."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def load_torchscript(path: str | os.PathLike, **kwargs) -> torch.jit.ScriptModule:
    """``torch.jit.load`` on the CPU, without its deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu", **kwargs)


def read_torchscript_metadata(path: str | os.PathLike) -> dict[str, Any]:
    extra = {"metadata.json": ""}
    load_torchscript(path, _extra_files=extra)
    return json.loads(extra["metadata.json"])


# -- checks against the torch path ------------------------------------------------------------------------
def _test_images(sizes, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for h, w in sizes:
        # smooth structure + noise: covers the guide's range and the grid's cells, unlike flat noise
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        base = torch.stack([xx, yy, (xx + yy) / 2])[None]
        out.append((0.7 * base + 0.3 * torch.rand(1, 3, h, w, generator=gen)).clamp(0, 1))
    return out


def verify(model: HDRNet, run_exported, sizes) -> dict[str, float]:
    """Max abs difference between ``run_exported(x)`` and ``model(x)`` per size ("HxW" -> diff)."""
    model = model.cpu().float().eval()
    diffs = {}
    for x in _test_images(sizes):
        with torch.inference_mode():
            ref = model(x).numpy()
        got = np.asarray(run_exported(x))
        if got.shape != ref.shape:
            raise ExportError(f"exported model returned shape {got.shape} for input {tuple(x.shape)}")
        diffs[f"{x.shape[2]}x{x.shape[3]}"] = float(np.abs(got - ref).max())
    return diffs


def verify_onnx(path: str | os.PathLike, model: HDRNet, sizes) -> dict[str, float]:
    """Run the ONNX file with onnxruntime (CPU) on test images of ``sizes`` [(H, W), ...]; max abs diffs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return verify(model, lambda x: sess.run(None, {name: x.numpy()})[0], sizes)


def verify_torchscript(path: str | os.PathLike, model: HDRNet, sizes) -> dict[str, float]:
    scripted = load_torchscript(path)

    def run(x):
        with torch.inference_mode():
            return scripted(x).numpy()

    return verify(model, run, sizes)


# -- the command ------------------------------------------------------------------------------------------
def checkpoint_metadata(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What an exported file records about where it came from."""
    from distill.train.checkpoint import file_sha256

    teacher = ckpt.get("teacher", {})
    student_cfg = {k: v for k, v in ckpt["config"]["student"].items()}
    return {
        "teacher": teacher, "teacher_name": teacher.get("name", ""),
        "input_space": teacher.get("input_space", ""), "output_space": teacher.get("output_space", ""),
        "student": student_cfg, "step": int(ckpt.get("step", 0)),
        "checkpoint": Path(ckpt["path"]).name, "checkpoint_sha256": file_sha256(ckpt["path"]),
        "input": "float32 [B,3,H,W] in the teacher's input space (input_space); ONNX: H, W >= student.lowres",
        "output": "float32 [B,3,H,W] in the teacher's output space (output_space), not clamped",
    }


def run(cfg) -> dict[str, Any]:
    """``hdr-distill export``: write ONNX and/or TorchScript next to ``cfg.out`` and check them."""
    from distill.train.checkpoint import build_student, load_checkpoint

    if cfg.checkpoint in (None, ""):
        raise ValueError("export: checkpoint=<path to a .pt checkpoint> is required")
    if cfg.format not in FORMATS:
        raise ValueError(f"export: format='{cfg.format}' is not one of {', '.join(FORMATS)}")
    ckpt = load_checkpoint(cfg.checkpoint)
    model = build_student(ckpt)
    if not isinstance(model, HDRNet):
        raise ExportError(f"export: {cfg.checkpoint} holds a {type(model).__name__}; only HDRNet students export")
    for fmt in ("onnx", "torchscript"):  # every requested format's options first: nothing written on a refusal
        if cfg.format in (fmt, "both"):
            require(model.cfg, fmt, f"export format={cfg.format}")
    out = Path(cfg.out) if cfg.out else Path(cfg.checkpoint).with_suffix("")
    stem = out.with_suffix("") if out.suffix in (".onnx", ".pt", ".ts") else out
    meta = checkpoint_metadata(ckpt)
    sizes = []
    if cfg.verify:
        low = model.cfg.lowres
        # default: two sizes that are not multiples of the low-res size (uneven area windows)
        sizes = [tuple(int(v) for v in s) for s in cfg.verify_sizes] if cfg.verify_sizes else \
            [(low + 44, low + 161), (2 * low + 5, low + 97)]
        if cfg.format in ("onnx", "both") and min(min(s) for s in sizes) < low:
            raise ValueError(f"export: verify_sizes {sizes} must be at least the student's low-res size {low} "
                             "on each side for ONNX")
    result: dict[str, Any] = {"checkpoint": str(cfg.checkpoint), "files": {}, "max_abs_diff": {}}
    jobs = []
    onnx_slice = str(cfg.get("onnx_slice") or "portable")
    if onnx_slice not in SLICES:
        raise ValueError(f"export: onnx_slice='{onnx_slice}' is not one of {', '.join(SLICES)}")
    opset = None if cfg.get("opset") in (None, "") else int(cfg.opset)
    if cfg.format in ("onnx", "both"):
        jobs.append(("onnx", stem.with_suffix(".onnx"),
                     lambda p: export_onnx(model, p, meta, opset=opset, onnx_slice=onnx_slice), verify_onnx))
    if cfg.format in ("torchscript", "both"):
        jobs.append(("torchscript", stem.with_suffix(".ts"),
                     lambda p: export_torchscript(model, p, meta), verify_torchscript))
    for fmt, path, write, check in jobs:
        write(path)
        result["files"][fmt] = str(path)
        if sizes:
            diffs = check(path, model, sizes)
            result["max_abs_diff"][fmt] = diffs
            worst = max(diffs.values())
            print(f"{fmt}: {path}  max |exported - torch| = {worst:.2e} over sizes {', '.join(diffs)}")
            tol = float(cfg.get("tolerance") or TOLERANCE)
            if not worst < tol:
                raise ExportError(f"{path}: exported model differs from the torch student by {worst:.2e} "
                                  f"(tolerance {tol}); sizes {diffs}")
        else:
            print(f"{fmt}: {path}")
    return result
