"""Portable trilinear slicing for export: the maths of ``students.grid.slice_grid`` with ops every runtime has.

``students.grid.slice_grid`` reads a grid ``[B,C,D,Gh,Gw]`` at each pixel's cell-centred position
``gx = (j + 0.5) Gw / W - 0.5``, ``gy = (i + 0.5) Gh / H - 0.5`` and intensity ``gz = g D - 0.5``, each clamped to
``[0, G-1]`` (border padding), as nested lerps over the eight corner cells. The same computation here is
written as: per axis a clamp, a floor (lower index), ``min(i0 + 1, G-1)`` (upper index) and a fraction; one
flat cell index per corner (``((z Gh + y) Gw + x) + b D Gh Gw``); eight ``Gather``s (axis 1) from the grid
laid out as a ``[C, B D Gh Gw]`` table; and the lerps in slice_grid's order (x, then y, then z), so that the
two agree to float rounding of the coordinates (an identity grid stays an exact identity).

In ONNX that is Range, Mul/Add/Sub, Clip, Floor, Min, Cast, Gather, Reshape and Transpose: opset 13 has all
of them, TensorRT and TFLite convert them; no 5-D ``GridSample`` (opset 20, onnxruntime CPU only). The
functions are TorchScript-compatible (ExportableStudent scripts both slicing forms).

Memory: each corner gather makes ``C x H x W`` floats (the 5-D GridSample reads them in place), so the
portable graph moves more bytes per pixel; see distill/deploy/export.py for measured times.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch


def _axis(coord: torch.Tensor, size: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """students.grid._axis: clamped cell-centred coordinate -> (lower index, upper index, fraction)."""
    c = coord.clamp(0.0, float(size - 1))
    i0 = c.floor().clamp(max=float(size - 1))
    frac = c - i0
    i0l = i0.long()
    return i0l, (i0l + 1).clamp(max=size - 1), frac


def _corner(table: torch.Tensor, zb: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Rows of ``table [C, N]`` at flat cell indices ``zb + s`` (broadcast to ``[B,*S]``) -> ``[C, B, *S]``."""
    idx = zb + s
    return table.index_select(1, idx.reshape(-1)).view([table.shape[0]] + list(idx.shape))


def _lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return a + t * (b - a)


def trilinear_gather(grid: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Sample ``grid [B,C,D,Gh,Gw]`` at cell coordinates ``xs``, ``ys`` (broadcastable to ``guide``'s shape
    ``[B,*S]``; e.g. ``[1,1,W]`` and ``[1,H,1]``) and guide ``[B,*S]`` in [0, 1]. Returns ``[B, C, *S]``.

    The same nested lerps as students.grid._trilinear; corners fetched by ``index_select`` (ONNX Gather)."""
    b, c, d, gh, gw = grid.shape[0], grid.shape[1], grid.shape[2], grid.shape[3], grid.shape[4]
    cells = d * gh * gw
    table = grid.transpose(0, 1).reshape(c, b * cells)  # [C, B*cells]
    x0, x1, fx = _axis(xs, gw)
    y0, y1, fy = _axis(ys, gh)
    z0, z1, fz = _axis(guide.to(grid.dtype) * d - 0.5, d)  # [B,*S]
    shape = z0.shape
    boff = torch.arange(b, dtype=torch.long, device=grid.device).view([b] + [1] * (len(shape) - 1)) * cells

    s00, s01 = y0 * gw + x0, y0 * gw + x1
    s10, s11 = y1 * gw + x0, y1 * gw + x1
    fx_, fy_, fz_ = fx.unsqueeze(0), fy.unsqueeze(0), fz.unsqueeze(0)  # broadcast against [C, B, *S]
    zb0 = z0 * (gh * gw) + boff
    zb1 = z1 * (gh * gw) + boff
    top0 = _lerp(_corner(table, zb0, s00), _corner(table, zb0, s01), fx_)
    bot0 = _lerp(_corner(table, zb0, s10), _corner(table, zb0, s11), fx_)
    lo = _lerp(top0, bot0, fy_)
    top1 = _lerp(_corner(table, zb1, s00), _corner(table, zb1, s01), fx_)
    bot1 = _lerp(_corner(table, zb1, s10), _corner(table, zb1, s11), fx_)
    hi = _lerp(top1, bot1, fy_)
    return _lerp(lo, hi, fz_).transpose(0, 1)  # [B, C, *S]


def _ratio(cells: int, pixels: int, like: torch.Tensor) -> torch.Tensor:
    """``cells / pixels`` as a 0-d tensor of ``like``'s dtype (one rounding, as torch's float scalar in
    students.grid); a tensor so that an export keeps ``pixels`` symbolic."""
    return torch.full([], cells, dtype=like.dtype, device=like.device) / pixels


def cell_coords(h: int, w: int, gh: int, gw: int, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """students.grid._cell_coords with the size ratio as a tensor division (the image size stays symbolic in an
    export): ``xs [1,1,W]``, ``ys [1,H,1]``."""
    xs = (torch.arange(w, dtype=like.dtype, device=like.device) + 0.5) * _ratio(gw, w, like) - 0.5
    ys = (torch.arange(h, dtype=like.dtype, device=like.device) + 0.5) * _ratio(gh, h, like) - 0.5
    return xs.view(1, 1, w), ys.view(1, h, 1)


def slice_portable(grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """``students.grid.slice_grid`` by gathers and lerps: grid ``[B,C,D,Gh,Gw]``, guide ``[B,H,W]`` -> ``[B,C,H,W]``."""
    h, w = guide.shape[1], guide.shape[2]
    xs, ys = cell_coords(h, w, grid.shape[3], grid.shape[4], guide)
    return trilinear_gather(grid, xs, ys, guide)


def slice_points_portable(grid: torch.Tensor, guide: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                          h: int, w: int) -> torch.Tensor:
    """``students.grid.slice_points``: the slice at pixels ``(rows, cols)`` ``[B,K]`` of an ``h x w`` image with
    guide ``[B,K]`` -> ``[B,C,K]``."""
    xs = (cols.to(grid.dtype) + 0.5) * _ratio(grid.shape[4], w, grid) - 0.5
    ys = (rows.to(grid.dtype) + 0.5) * _ratio(grid.shape[3], h, grid) - 0.5
    return trilinear_gather(grid, xs, ys, guide)


# -- what a portable graph may hold -------------------------------------------------------------------------
# Ops of the ONNX default domain that TensorRT's parser, onnx2tf/TFLite and onnxruntime's providers all convert
# (checked by tests/distill/deploy/test_export_portable.py on every option the onnx backend claims).
PORTABLE_OPS = frozenset({
    "Abs", "Add", "AveragePool", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "CumSum", "Div",
    "Einsum", "Equal", "Exp", "Expand", "Flatten", "Floor", "Gather", "GatherElements", "Gemm", "Greater", "Identity",
    "Less", "Log", "MatMul", "Max", "Min", "Mod", "Mul", "Neg", "Pow", "Range", "ReduceMax", "ReduceMean",
    "ReduceMin", "ReduceSum", "Relu", "Reshape", "ScatterElements", "Shape", "Slice", "Sqrt", "Squeeze", "Sub",
    "Tile", "TopK", "Transpose", "Unsqueeze", "Where", "Not", "And", "Or", "Sign", "Ceil", "Round", "LessOrEqual",
    "GreaterOrEqual",
})


def graph_report(model) -> dict:
    """What a loaded ONNX ``ModelProto`` holds: ``opset`` (default domain), ``domains`` (other opset imports),
    ``ops`` (op type -> count, subgraphs included) and ``gridsample_ranks`` (the input rank of each GridSample,
    from onnx shape inference; None where it cannot tell)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            ranks[vi.name] = len(t.shape.dim)
    ops: dict[str, int] = {}
    gs_ranks = []

    def walk(graph):
        for node in graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
            if node.op_type == "GridSample":
                gs_ranks.append(ranks.get(node.input[0]))
            for attr in node.attribute:
                for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    walk(g)

    walk(inferred.graph)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    domains = sorted(o.domain for o in model.opset_import if o.domain not in ("", "ai.onnx"))
    return {"opset": opset, "domains": domains, "ops": ops, "gridsample_ranks": gs_ranks}


def portability_problems(model, max_opset: int) -> list[str]:
    """Why ``model`` is not a portable graph (empty: it is): an opset above ``max_opset``, any GridSample with a
    5-D (or unknown-rank) input, an op outside ``PORTABLE_OPS``, a node outside the default domain."""
    rep = graph_report(model)
    out = []
    if rep["opset"] is None or rep["opset"] > max_opset:
        out.append(f"opset {rep['opset']} > {max_opset}")
    for r in rep["gridsample_ranks"]:
        if r is None or r >= 5:
            out.append(f"GridSample with a {r if r is not None else 'unknown'}-D input")
    extra = sorted(set(rep["ops"]) - PORTABLE_OPS)
    if extra:
        out.append("ops outside the portable list: " + ", ".join(extra))
    return out


def fix_converted_reductions(model) -> None:
    """Drop ``noop_with_empty_axes=0`` (its default) from the reductions of a graph that onnx's version
    converter took below opset 18: that attribute arrived with ReduceSum in opset 13 but with the other
    reductions only in 18, and the converter (onnx 1.23) leaves it on them, which the checker rejects. In place."""
    from onnx import helper

    for node in model.graph.node:
        if not node.op_type.startswith("Reduce") or node.op_type == "ReduceSum":
            continue
        for attr in list(node.attribute):
            if attr.name == "noop_with_empty_axes":
                if helper.get_attribute_value(attr) != 0:
                    raise ValueError(f"{node.name}: {node.op_type} with noop_with_empty_axes=1 has no opset-17 form")
                node.attribute.remove(attr)


# -- the bilateral base (guide_bilateral) with its grid's size a shape computation ------------------------------
BILATERAL_SCALE = 1_000_000  # guide_bilateral as a rational p / 10^6, so that the grid's size is integer arithmetic


def bilateral_dims_symbolic(h, w, fraction: float, sigma_range: float):
    """``students.grid.bilateral_dims(h, w, fraction * max(h, w), sigma_range)`` (cells_per_sigma 1) in integer
    arithmetic that an export keeps symbolic in ``h`` and ``w``: with ``f = p / 10^6`` (p = round(fraction 10^6)),
    ``floor(h / (f max) + 0.5) = (2 h 10^6 + p max) // (2 p max)``. Equal to the float computation except where
    ``h / (f max)`` falls within float rounding of a half (then the two may pick neighbouring sizes)."""
    p = int(round(fraction * BILATERAL_SCALE))
    m = torch.sym_max(h, w)
    gh = (2 * h * BILATERAL_SCALE + p * m) // (2 * p * m)
    gw = (2 * w * BILATERAL_SCALE + p * m) // (2 * p * m)
    return max(1, int(math.ceil(1.0 / sigma_range))), torch.sym_max(gh, 1), torch.sym_max(gw, 1)


def _axis_t(coord: torch.Tensor, size) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``_axis`` for a symbolic ``size``: the upper clamp by a tensor minimum, not a float bound."""
    top = torch.zeros_like(coord) + (size - 1)
    c = torch.minimum(coord.clamp(min=0.0), top)
    i0 = torch.minimum(c.floor(), top)
    frac = c - i0
    i0l = i0.long()
    return i0l, torch.minimum(i0l + 1, top.long()), frac


def bilateral_splat_symbolic(e: torch.Tensor, d: int, gh, gw) -> torch.Tensor:
    """``students.grid.bilateral_splat(e, (d, gh, gw))`` with ``gh``, ``gw`` symbolic: ``(e, 1)`` of ``e [B,H,W]``
    splatted trilinearly (the transpose of the slice) into ``[B,2,D,Gh,Gw]`` (ONNX ScatterElements, add)."""
    b, h, w = e.shape[0], e.shape[1], e.shape[2]
    xs = ((torch.arange(w, dtype=e.dtype, device=e.device) + 0.5) * gw / w - 0.5).view(1, 1, w)
    ys = ((torch.arange(h, dtype=e.dtype, device=e.device) + 0.5) * gh / h - 0.5).view(1, h, 1)
    z0, z1, fz = _axis_t(e * d - 0.5, d)
    y0, y1, fy = _axis_t(ys, gh)
    x0, x1, fx = _axis_t(xs, gw)
    vals = torch.stack([e, torch.ones_like(e)], -1).reshape(b, h * w, 2)
    acc = torch.zeros(b, d * gh * gw, 2, dtype=e.dtype, device=e.device)
    for iz, wz in ((z0, 1 - fz), (z1, fz)):
        for iy, wy in ((y0, 1 - fy), (y1, fy)):
            for ix, wx in ((x0, 1 - fx), (x1, fx)):
                idx = ((iz * gh + iy) * gw + ix).expand(b, h, w).reshape(b, h * w, 1).expand(b, h * w, 2)
                acc = acc.scatter_add(1, idx, vals * (wz * wy * wx).expand(b, h, w).reshape(b, h * w, 1))
    return acc.view(b, d, gh, gw, 2).permute(0, 4, 1, 2, 3)


def _blur_matrix_t(n, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """students.grid._blur_matrix for a symbolic ``n``."""
    t = torch.arange(n, dtype=like.dtype, device=like.device)
    k = torch.exp(-0.5 * ((t.view(-1, 1) - t.view(1, -1)) / sigma) ** 2)
    return k / torch.exp(-0.5 * (torch.arange(-n, n + 1, dtype=like.dtype, device=like.device) / sigma) ** 2).sum()


def bilateral_blur_symbolic(grid: torch.Tensor) -> torch.Tensor:
    """students.grid.bilateral_blur (cells_per_sigma 1) with the grid's sizes symbolic."""
    s = math.sqrt(max(1.0 - 1.0 / 3.0, 0.25))
    d, gh, gw = grid.shape[2], grid.shape[3], grid.shape[4]
    g = grid @ _blur_matrix_t(gw, s, grid)
    g = (g.transpose(-1, -2) @ _blur_matrix_t(gh, s, grid)).transpose(-1, -2)
    return (g.permute(0, 1, 3, 4, 2) @ _blur_matrix_t(d, s, grid)).permute(0, 1, 4, 2, 3)


def trilinear_gather_symbolic(grid: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """``trilinear_gather`` for a grid whose spatial sizes are symbolic (the bilateral grid)."""
    b, c, d, gh, gw = grid.shape[0], grid.shape[1], grid.shape[2], grid.shape[3], grid.shape[4]
    cells = d * gh * gw
    table = grid.transpose(0, 1).reshape(c, b * cells)
    x0, x1, fx = _axis_t(xs, gw)
    y0, y1, fy = _axis_t(ys, gh)
    z0, z1, fz = _axis_t(guide.to(grid.dtype) * d - 0.5, d)
    boff = torch.arange(b, dtype=torch.long, device=grid.device).view([b] + [1] * (z0.dim() - 1)) * cells
    s00, s01 = y0 * gw + x0, y0 * gw + x1
    s10, s11 = y1 * gw + x0, y1 * gw + x1
    fx_, fy_, fz_ = fx.unsqueeze(0), fy.unsqueeze(0), fz.unsqueeze(0)
    zb0, zb1 = z0 * (gh * gw) + boff, z1 * (gh * gw) + boff
    lo = _lerp(_lerp(_corner(table, zb0, s00), _corner(table, zb0, s01), fx_),
               _lerp(_corner(table, zb0, s10), _corner(table, zb0, s11), fx_), fy_)
    hi = _lerp(_lerp(_corner(table, zb1, s00), _corner(table, zb1, s01), fx_),
               _lerp(_corner(table, zb1, s10), _corner(table, zb1, s11), fx_), fy_)
    return _lerp(lo, hi, fz_).transpose(0, 1)


def bilateral_base_symbolic(e: torch.Tensor, fraction: float, sigma_range: float) -> torch.Tensor:
    """``students.grid.bilateral_base(e, fraction * max(H, W), sigma_range)`` for export: ``[B,H,W]``, the grid's
    size computed from the image's by shape arithmetic (``bilateral_dims_symbolic``)."""
    h, w = e.shape[1], e.shape[2]
    d, gh, gw = bilateral_dims_symbolic(h, w, fraction, sigma_range)
    grid = bilateral_blur_symbolic(bilateral_splat_symbolic(e, d, gh, gw))
    xs = ((torch.arange(w, dtype=e.dtype, device=e.device) + 0.5) * gw / w - 0.5).view(1, 1, w)
    ys = ((torch.arange(h, dtype=e.dtype, device=e.device) + 0.5) * gh / h - 0.5).view(1, h, 1)
    nd = trilinear_gather_symbolic(grid, xs, ys, e)  # [B,2,H,W]
    return nd[:, 0] / nd[:, 1].clamp(min=1e-20)


def percentile_topk(v: torch.Tensor, p: float) -> torch.Tensor:
    """``students.hdrnet.percentile(v [B,N], p)`` -> ``[B]`` by one TopK (kthvalue has no ONNX op), with the
    percentile as a rational ``round(p 10^4) / 10^6`` so that the order statistic's index is integer arithmetic
    on the (symbolic) ``N``."""
    num = int(round(p * 1e4))
    n = v.shape[1]
    scaled = num * (n - 1)
    lo = scaled // 1000000
    hi = torch.sym_min(lo + 1, n - 1)
    top = torch.topk(v, n - lo, dim=1).values  # descending: top[:, n-1-i] is the i-th smallest
    a, b = top[:, n - 1 - lo], top[:, n - 1 - hi]
    return a + (scaled - lo * 1000000) / 1e6 * (b - a)


def white_base_pixels_topk(base: torch.Tensor, p: float) -> torch.Tensor:
    """``students.hdrnet.white_base_pixels``: indices ``[B,K]`` of the ``white_base_count`` pixels whose base is
    nearest its ``p``-th percentile, ``K = min(max(8, N // 200), 256, N)`` as symbolic integer arithmetic. Ties
    in the distance may be broken differently by torch's and a runtime's TopK."""
    n = base.shape[1]
    k = torch.sym_min(torch.sym_min(torch.sym_max(n // 200, 8), 256), n)
    hi = percentile_topk(base, p)
    return torch.topk(-(base - hi.unsqueeze(1)).abs(), k, dim=1).indices
