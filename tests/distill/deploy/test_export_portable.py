"""The portable ONNX export: its slice equals students.grid.slice_grid; the graph walk that says a graph is
portable (opset <= 17, no 5-D GridSample, common ops only) catches what it must; the kept 5-D form still exports.

Every option the onnx backend claims is exported portably and checked against HDRNet.forward at three sizes, and
walked, in tests/students/test_backends.py (the onnx column)."""
import json
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from distill.deploy.export import ExportableStudent, PortableStudent, export_onnx, read_onnx_metadata, slice_grid_sample
from distill.deploy.onnx_slice import (PORTABLE_OPS, graph_report, portability_problems, slice_points_portable,
                                       slice_portable)
from students.grid import slice_grid, slice_points
from tests.students.test_backends import student


def grid_and_guide(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    grid = torch.randn(2, 12, 8, 5, 7, dtype=dtype, generator=g)
    guide = torch.rand(2, 13, 11, dtype=dtype, generator=g)
    guide[0, 0, 0], guide[1, -1, -1], guide[1, 3, 4] = 0.0, 1.0, 0.5  # both clamped ends, a bin edge
    return grid, guide


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_slice_portable_equals_slice_grid_exactly(dtype):
    # Same coordinates, same clamps, same lerp order: not merely close, equal (float32 included).
    grid, guide = grid_and_guide(dtype)
    assert torch.equal(slice_portable(grid, guide), slice_grid(grid, guide))
    g = torch.Generator().manual_seed(3)
    rows, cols = torch.randint(0, 13, (2, 9), generator=g), torch.randint(0, 11, (2, 9), generator=g)
    pts = torch.rand(2, 9, dtype=dtype, generator=g)
    assert torch.equal(slice_points_portable(grid, pts, rows, cols, 13, 11), slice_points(grid, pts, rows, cols, 13, 11))
    # ... and the 5-D grid_sample form it replaces agrees to rounding
    assert (slice_grid_sample(grid, guide) - slice_portable(grid, guide)).abs().max() < (1e-12 if dtype == torch.float64 else 1e-5)


def test_slice_portable_scripts_and_keeps_an_identity_grid_exact():
    from students.grid import identity_grid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(slice_portable)
    grid, guide = grid_and_guide(torch.float32)
    assert torch.equal(scripted(grid, guide), slice_portable(grid, guide))
    ident = identity_grid(2, 8, 5, 7)
    assert torch.equal(slice_portable(ident, guide), ident[:, :, 0, :1, :1].expand(2, 12, 13, 11))


def _model(op_nodes, inputs, outputs, opset):
    graph = helper.make_graph(op_nodes, "g", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _grid_sample_model(rank: int, opset: int):
    shape_x = [1, 12, 8, 16, 16][:rank] if rank == 5 else [1, 96, 16, 16]
    shape_g = [1, 1, 32, 48, 3] if rank == 5 else [1, 32, 48, 2]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_x)
    g = helper.make_tensor_value_info("g", TensorProto.FLOAT, shape_g)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return _model([helper.make_node("GridSample", ["x", "g"], ["y"], align_corners=0)], [x, g], [y], opset)


def test_graph_walk_fails_on_5d_gridsample_opset_and_unlisted_ops():
    five = _grid_sample_model(5, 20)
    rep = graph_report(five)
    assert rep["gridsample_ranks"] == [5] and rep["opset"] == 20
    problems = portability_problems(five, 17)
    assert "opset 20 > 17" in problems and "GridSample with a 5-D input" in problems
    four = _grid_sample_model(4, 16)
    assert graph_report(four)["gridsample_ranks"] == [4]
    assert portability_problems(four, 17) == ["ops outside the portable list: GridSample"]  # TFLite has none
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    ok = _model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], 17)
    assert portability_problems(ok, 17) == []
    odd = _model([helper.make_node("Hardmax", ["x"], ["y"])], [x], [y], 17)
    assert portability_problems(odd, 17) == ["ops outside the portable list: Hardmax"]
    assert "Hardmax" not in PORTABLE_OPS and "GridSample" not in PORTABLE_OPS




def tiny(seed=0, **cfg):
    return student(cfg, seed)  # the backend matrix's tiny perturbed student


def test_exportable_student_forms_agree_with_forward():
    m = tiny(input_encoding="log", white_percentile=99.5)
    x = torch.rand(1, 3, 61, 83, generator=torch.Generator().manual_seed(2)) ** 4 * 6
    with torch.inference_mode():
        ref = m(x)
        for net in (PortableStudent(m), ExportableStudent(m)):
            assert (net(x) - ref).abs().max() < 1e-5, type(net).__name__


def test_gridsample5d_form_still_exports_at_opset_20_and_is_flagged(tmp_path):
    import onnxruntime as ort
    m = tiny(seed=1)
    with pytest.raises(ValueError, match="opset must be >= 20 for onnx_slice=gridsample5d"):
        export_onnx(m, tmp_path / "a.onnx", opset=17, onnx_slice="gridsample5d")
    with pytest.raises(ValueError, match="onnx_slice must be one of"):
        export_onnx(m, tmp_path / "a.onnx", onnx_slice="gather")
    assert not list(tmp_path.iterdir())
    path = export_onnx(m, tmp_path / "g5.onnx", onnx_slice="gridsample5d")
    proto = onnx.load(str(path))
    rep = graph_report(proto)
    assert rep["opset"] == 20 and rep["gridsample_ranks"] == [5]
    assert "GridSample with a 5-D input" in portability_problems(proto, 17)
    meta = read_onnx_metadata(path)
    assert meta["onnx_slice"] == "gridsample5d" and json.loads(meta["opset"]) == 20
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 97, 131, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        ref = m(x).numpy()
    assert np.abs(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0] - ref).max() < 1e-4
