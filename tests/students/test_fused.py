"""students/fused.py: the fused C++ path agrees with the torch path (students/grid.py, HDRNet.forward)."""
import os

import numpy as np
import pytest
import torch

from students import build, fused
from students.grid import apply_coeffs, guide_map, identity_grid, lowres_copy, slice_grid
from students.hdrnet import HDRNet, decode_output, encode_input



@pytest.fixture(autouse=True)
def _needs_compiler(request):
    # Without a compiler only the torch fallback exists; the fallback tests still run.
    if build.compiler() is None and "fallback" not in request.node.name:
        pytest.skip("no C++ compiler: only the torch fallback path exists")


def supported_isas():
    if build.compiler() is None:
        return []
    out = []
    for isa in fused.compiled_isas():
        try:
            fused.set_isa(isa)
            out.append(isa)
        except ValueError:  # compiled, but this CPU lacks it
            pass
    fused.set_isa("auto")
    return out


@pytest.fixture(params=supported_isas())
def isa(request):
    fused.set_isa(request.param)
    yield request.param
    fused.set_isa("auto")


def guide_params(seed=0, k=16):
    """HDRNet's initial guide, perturbed so that every knot and the colour transform matter."""
    g = torch.Generator().manual_seed(seed)
    p = HDRNet(curve_knots=k).guide_params()
    return {
        "ccm": p["ccm"] + 0.1 * torch.randn(3, 3, generator=g),
        "ccm_bias": 0.05 * torch.randn(3, generator=g),
        "shifts": p["shifts"] + 0.02 * torch.randn(3, k, generator=g),
        "slopes": p["slopes"] + 0.1 * torch.randn(3, k, generator=g),
        "mix": p["mix"] + 0.05 * torch.randn(3, generator=g),
        "mix_bias": 0.05 * torch.randn(1, generator=g),
    }


def random_grid(d=8, gh=16, gw=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return identity_grid(1, d, gh, gw)[0] + 0.3 * torch.randn(12, d, gh, gw, generator=g)  # [12,D,Gh,Gw]


def torch_path(x, grid, params, encoding="none", dtype=torch.float32):
    """students/grid.py on [3,H,W]: guide -> slice -> apply (what HDRNet.forward does after the network)."""
    x, grid = x.to(dtype), grid.to(dtype)
    params = {k: v.to(dtype) for k, v in params.items()}
    xe = encode_input(x, encoding)[None]
    return apply_coeffs(slice_grid(grid[None], guide_map(xe, **params)), xe)[0]


def hwc(t):
    return t.permute(1, 2, 0).contiguous().numpy()


SIZES = [(37, 53), (61, 17), (2, 3), (1, 1), (5, 40), (19, 16)]


@pytest.mark.parametrize("h,w", SIZES)
def test_matches_torch_path_on_random_grids_and_odd_sizes(isa, h, w):
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(h * w))
    x[:, 0, 0], x[:, -1, -1] = 0.0, 1.0  # black and white corner pixels
    grid, p = random_grid(seed=h), guide_params(seed=w)
    ref = torch_path(x, grid, p)
    out_chw = fused.fused_slice_apply(x, grid, p, layout="chw")
    out_hwc = fused.fused_slice_apply(hwc(x), grid, p, layout="hwc")
    assert (out_chw - ref).abs().max() < 1e-5
    assert (out_chw.double() - torch_path(x, grid, p, dtype=torch.float64)).abs().max() < 1e-5
    # Both layouts run the same arithmetic per pixel: identical results.
    np.testing.assert_array_equal(out_hwc, hwc(out_chw))


@pytest.mark.parametrize("k", [1, 5, 16, 17, 40])
def test_unsorted_tied_and_many_knots(isa, k):
    # The AVX-512 kernel evaluates up to 16 knots per channel as sorted piecewise-linear segments found by
    # binary search; more knots take the relu-sum loop. Shuffled, tied, zero-slope and out-of-range knots
    # (v below every knot, above every knot, exactly on one) must all give the torch path's guide.
    g = torch.Generator().manual_seed(k)
    p = guide_params(seed=k, k=k)
    p["shifts"] = torch.rand(3, k, generator=g) * 1.4 - 0.2
    p["shifts"][:, :: max(1, k // 3)] = 0.5  # ties, and pixels of value 0.5 sit exactly on them
    p["slopes"] = torch.randn(3, k, generator=g)
    p["slopes"][0, 0] = 0.0
    x = torch.rand(3, 23, 41, generator=g) * 1.6 - 0.3
    x[:, 3] = 0.5
    grid = random_grid(seed=k)
    ref = torch_path(x, grid, p, dtype=torch.float64)
    out = fused.fused_slice_apply(x, grid, p, layout="chw")
    assert (out.double() - ref).abs().max() < 1e-5


def test_other_grid_shapes_and_depths(isa):
    # Depth 16 (AVX2 then gathers), a 1x1x1 grid, a grid wider than the image.
    x = torch.rand(3, 23, 29)
    for d, gh, gw in [(16, 5, 7), (1, 1, 1), (3, 2, 40), (8, 1, 16)]:
        grid, p = random_grid(d, gh, gw, seed=d), guide_params(seed=gh)
        out = fused.fused_slice_apply(x, grid, p, layout="chw")
        assert (out - torch_path(x, grid, p)).abs().max() < 1e-5, (d, gh, gw)


def test_guide_at_exactly_0_and_1_hits_the_end_bins(isa):
    # Guide = mean(rgb) exactly (initial HDRNet guide); grid bias term = bin index, no linear part:
    # output = clamp(g * D - 0.5, 0, D - 1), so g = 0 -> 0 and g = 1 -> D - 1 (border clamp in z).
    d = 8
    p = HDRNet().guide_params()
    grid = torch.zeros(12, d, 4, 4)
    for c in range(3):
        grid[4 * c + 3] = torch.arange(d, dtype=torch.float32).view(d, 1, 1)
    g = torch.tensor([0.0, 1.0, 0.5, 1 / 16, 15 / 16, 0.3])
    x = g.view(1, 1, -1).expand(3, 1, 6).contiguous()
    out = fused.fused_slice_apply(x, grid, p, layout="chw")
    expected = (g * d - 0.5).clamp(0, d - 1)
    assert torch.allclose(out[0, 0], expected, atol=1e-6)
    assert out[0, 0, 0] == 0.0 and out[0, 0, 1] == d - 1


@pytest.mark.parametrize("h,w,gh,gw", [(5, 53, 3, 16), (7, 8, 2, 16), (50, 3, 16, 2)])
def test_spatial_borders_and_axes_known_answer(isa, h, w, gh, gw):
    # Bias term = gx (cell x index) + 100 * gy: output = clamped cell-centred coordinates. Several
    # cells per SIMD block (w=53, 16 cells) exercises blocks that straddle cells.
    grid = torch.zeros(12, 2, gh, gw)
    gx = torch.arange(gw, dtype=torch.float32).view(1, gw)
    gy = torch.arange(gh, dtype=torch.float32).view(gh, 1)
    grid[3] = (gx + 100 * gy).expand(2, gh, gw)
    out = fused.fused_slice_apply(torch.rand(3, h, w), grid, HDRNet().guide_params(), layout="chw")[0]
    ex = ((torch.arange(w) + 0.5) * gw / w - 0.5).clamp(0, gw - 1)
    ey = ((torch.arange(h) + 0.5) * gh / h - 0.5).clamp(0, gh - 1)
    assert torch.allclose(out, ex.view(1, w) + 100 * ey.view(h, 1), atol=2e-5)


@pytest.mark.parametrize("dtype,scale", [(np.uint8, 255), (np.uint16, 65535)])
def test_integer_images_within_one_lsb(isa, dtype, scale):
    rng = np.random.default_rng(1)
    img = rng.integers(0, scale + 1, size=(31, 45, 3), dtype=np.int64).astype(dtype)
    img[0, 0], img[-1, -1] = 0, scale
    grid, p = random_grid(seed=3), guide_params(seed=3)
    # Strong contrast so that some outputs leave [0, 1] and must be clamped.
    grid[[0, 5, 10]] *= 1.5
    x = torch.from_numpy(img.astype(np.float32) / scale).permute(2, 0, 1)
    ref = np.rint(hwc(torch_path(x, grid, p).clamp(0, 1)) * scale)
    out = fused.fused_slice_apply(img, grid, p)
    assert out.dtype == dtype
    assert np.abs(out.astype(np.int64) - ref).max() <= 1
    assert (out == 0).any() and (out == scale).any()  # clamping happened


def test_log_encoding_matches_encode_input(isa):
    g = torch.Generator().manual_seed(5)
    x = torch.exp2(torch.rand(3, 21, 34, generator=g) * 24 - 14)  # 2^-14 .. 2^10: both clamps are hit
    x[:, 0, :3] = 0.0
    x[:, 1, 1] = float("inf")
    grid, p = random_grid(seed=5), guide_params(seed=5)
    out = fused.fused_slice_apply(x, grid, p, layout="chw", encoding="log")
    assert (out - torch_path(x, grid, p, "log")).abs().max() < 1e-5
    out_hwc = fused.fused_slice_apply(hwc(x), grid, p, encoding="log")
    np.testing.assert_array_equal(out_hwc, hwc(out))


def test_srgb_log_output_matches_decode_output(isa):
    # The grid's outputs span below 0 (radiance ~0), the sRGB toe, the power segment and above 1 (clipped).
    g = torch.Generator().manual_seed(6)
    x = torch.exp2(torch.rand(3, 29, 43, generator=g) * 22 - 18)
    grid, p = random_grid(seed=6), guide_params(seed=6)
    y = torch_path(x, grid, p, "log")
    assert y.min() < 0 and y.max() > 1 and ((y > 0.55) & (y < 0.58)).any()  # 0.58: 2^(20y - 20) = 0.0031
    for scale in (1.0, 1.7):
        ref = (decode_output(y, "srgb_log") * scale).clamp(max=1.0)
        out = fused.fused_slice_apply(x, grid, p, layout="chw", encoding="log", out_encoding="srgb_log",
                                      out_scale=scale)
        assert (out - ref).abs().max() < 1e-5, scale
        assert (out < 0.04).any() and (out == 1).any() and out.min() >= 0  # toe and clip both reached
        out_hwc = fused.fused_slice_apply(hwc(x), grid, p, encoding="log", out_encoding="srgb_log", out_scale=scale)
        np.testing.assert_array_equal(out_hwc, hwc(out))
    # out_scale means nothing without a decode: the raw affine output comes back unchanged
    raw = fused.fused_slice_apply(x, grid, p, layout="chw", encoding="log", out_scale=3.0)
    assert (raw - y).abs().max() < 1e-5


def test_log_luma_guide_matches_luma_guide_input(isa):
    # "log_luma": the guide reads hdrnet.luma_guide_input (log luminance in place of the channel mean), computed
    # in the kernel from the decoded pixel; inputs span both clamps of the log window, with saturated colours.
    from students.hdrnet import luma_guide_input
    g = torch.Generator().manual_seed(7)
    x = torch.exp2(torch.rand(3, 23, 41, generator=g) * 26 - 22)  # 2^-22 .. 2^4
    x[0, :5] *= 1e-4  # strongly coloured pixels: the channel mean is far from the luminance there
    x[:, 0, :3] = 0.0
    grid, p = random_grid(seed=7), guide_params(seed=7)
    xe = encode_input(x, "log")[None]
    guide = guide_map(luma_guide_input(xe), **p)
    assert (guide - guide_map(xe, **p)).abs().max() > 0.05  # the luma guide is really another guide
    y = apply_coeffs(slice_grid(grid[None], guide), xe)
    for out_enc in ("none", "srgb_log"):
        ref = decode_output(y, out_enc)[0]
        out = fused.fused_slice_apply(x, grid, p, layout="chw", encoding="log_luma", out_encoding=out_enc)
        # the decode's slope (up to 20 ln 2 times sRGB's) magnifies the float rounding of the guide's log2
        assert (out - ref).abs().max() < (1e-5 if out_enc == "none" else 3e-5), out_enc
        np.testing.assert_array_equal(fused.fused_slice_apply(hwc(x), grid, p, encoding="log_luma",
                                                              out_encoding=out_enc), hwc(out))


def test_threads_do_not_change_the_result(isa):
    x = hwc(torch.rand(3, 40, 70))
    grid, p = random_grid(), guide_params()
    one = fused.fused_slice_apply(x, grid, p, threads=1)
    np.testing.assert_array_equal(one, fused.fused_slice_apply(x, grid, p, threads=2))


def test_out_buffer_is_reused_and_checked():
    x = hwc(torch.rand(3, 9, 11))
    grid, p = random_grid(), guide_params()
    out = np.full_like(x, np.nan)
    res = fused.fused_slice_apply(x, grid, p, out=out)
    assert res is out and np.isfinite(out).all()
    with pytest.raises(ValueError, match="out"):
        fused.fused_slice_apply(x, grid, p, out=np.empty((9, 12, 3), np.float32))
    with pytest.raises(ValueError, match="out"):
        fused.fused_slice_apply(x, grid, p, out=np.empty((9, 11, 3), np.uint8))


def test_bad_inputs_raise_clear_errors():
    grid, p = random_grid(), guide_params()
    with pytest.raises(TypeError, match="float32, uint8 or uint16"):
        fused.fused_slice_apply(np.zeros((4, 4, 3)), grid, p)
    with pytest.raises(ValueError, match=r"\[H,W,3\]"):
        fused.fused_slice_apply(np.zeros((3, 4, 4), np.float32), grid, p)
    with pytest.raises(ValueError, match="layout"):
        fused.fused_slice_apply(np.zeros((4, 4, 3), np.float32), grid, p, layout="nhwc")
    with pytest.raises(ValueError, match="encoding"):
        fused.fused_slice_apply(np.zeros((4, 4, 3), np.float32), grid, p, encoding="gamma")
    with pytest.raises(ValueError, match="grid"):
        fused.fused_slice_apply(np.zeros((4, 4, 3), np.float32), grid[:6], p)
    with pytest.raises(ValueError, match="out_encoding 'gamma'"):
        fused.fused_slice_apply(np.zeros((4, 4, 3), np.float32), grid, p, out_encoding="gamma")
    with pytest.raises(ValueError, match="out_scale must be > 0"):
        fused.fused_slice_apply(np.zeros((4, 4, 3), np.float32), grid, p, out_encoding="srgb_log", out_scale=0.0)
    with pytest.raises(ValueError, match="shifts and slopes"):
        fused.fused_slice_apply(np.zeros((4, 4, 3), np.float32), grid, {**p, "slopes": p["slopes"][:, :3]})


@pytest.mark.parametrize("h,w", [(512, 768), (300, 517), (256, 260)])
@pytest.mark.parametrize("encoding", ["none", "log"])
def test_area_downsample_matches_lowres_copy(isa, h, w, encoding):
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(h)) * (8 if encoding == "log" else 1)
    ref = hwc(lowres_copy(encode_input(x, encoding)[None], 256)[0])
    np.testing.assert_allclose(fused.area_downsample(x, 256, "chw", encoding), ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose(fused.area_downsample(hwc(x), 256, "hwc", encoding), ref, atol=1e-6, rtol=0)
    u8 = (hwc(x).clip(0, 1) * 255).round().astype(np.uint8)
    ref8 = hwc(lowres_copy(encode_input(torch.from_numpy(u8).permute(2, 0, 1).float()[None] / 255, encoding), 256)[0])
    np.testing.assert_allclose(fused.area_downsample(u8, 256, "hwc", encoding), ref8, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [1, 3, 61, 130])
def test_area_downsample_sizes_not_multiple_of_four(isa, size):
    # The horizontal pass sums four output columns at a time; the remainder takes a scalar loop.
    # Windows of up to 100x173 pixels: float32 sums in another order than torch's differ by ~3e-6.
    x = torch.rand(3, 300, 517, generator=torch.Generator().manual_seed(size))
    ref = hwc(lowres_copy(x[None], size)[0])
    np.testing.assert_allclose(fused.area_downsample(x, size, "chw"), ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(fused.area_downsample(hwc(x), size, "hwc"), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("h,w,size", [(512, 768, 256), (300, 517, 256), (256, 260, 256), (300, 517, 61), (40, 33, 7)])
@pytest.mark.parametrize("encoding", ["none", "log"])
def test_detail_energy_fused_matches_torch(isa, h, w, size, encoding):
    from students.hdrnet import detail_energy

    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(h + size)) * (8 if encoding == "log" else 1)
    ref = detail_energy(encode_input(x, encoding)[None], size)[0, 0].numpy()
    assert ref.mean() > 0.02  # random pixels: detail everywhere, so the check is not of zeros
    np.testing.assert_allclose(fused.detail_energy_fused(x, size, "chw", encoding), ref, atol=2e-5, rtol=0)
    np.testing.assert_allclose(fused.detail_energy_fused(hwc(x), size, "hwc", encoding), ref, atol=2e-5, rtol=0)
    u16 = (hwc(x).clip(0, 1) * 65535).round().astype(np.uint16)
    x16 = torch.from_numpy(u16.astype(np.float32) / 65535).permute(2, 0, 1)[None]
    ref16 = detail_energy(encode_input(x16, encoding), size)[0, 0].numpy()
    np.testing.assert_allclose(fused.detail_energy_fused(u16, size, "hwc", encoding), ref16, atol=2e-5, rtol=0)
    flat = np.full((h, w, 3), 0.4, np.float32)
    assert np.abs(fused.detail_energy_fused(flat, size, "hwc", encoding)).max() < 1e-3  # no detail, ~0
    with pytest.raises(ValueError, match="smaller than"):
        fused.detail_energy_fused(np.zeros((size - 1, w, 3), np.float32), size)


def test_detail_energy_fused_on_one_pixel_wide_and_tiny_images(isa):
    from students.hdrnet import detail_energy

    for h, w, size in [(1, 1, 1), (5, 1, 1), (1, 7, 1), (2, 2, 1), (3, 9, 2)]:  # borders everywhere
        x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(h * 10 + w))
        ref = detail_energy(x[None], size)[0, 0].numpy()
        np.testing.assert_allclose(fused.detail_energy_fused(x, size, "chw"), ref, atol=1e-6, rtol=0)


def test_area_downsample_rejects_small_images():
    with pytest.raises(ValueError, match="smaller than"):
        fused.area_downsample(np.zeros((100, 300, 3), np.float32), 256)


def perturbed_model(encoding="none", seed=0, stats_bins=0, detail_input=False, white_percentile=None, **cfg):
    torch.manual_seed(seed)
    m = HDRNet(input_encoding=encoding, stats_bins=stats_bins, detail_input=detail_input,
               white_percentile=white_percentile, **cfg)
    with torch.no_grad():
        for name, prm in m.named_parameters():
            prm.add_(torch.randn_like(prm) * (0.05 if "to_grid" in name else 0.02))
    return m.eval()


SRGB_LOG = {"output_encoding": "srgb_log"}


@pytest.mark.parametrize("encoding,stats_bins,detail,white,cfg", [
    ("none", 0, False, None, {}), ("log", 0, False, None, {}), ("none", 16, False, None, {}),
    ("none", 16, True, None, {}), ("log", 0, True, None, {}), ("log", 16, False, 99.5, {}),
    ("none", 0, False, 90.0, {}), ("log", 16, False, None, SRGB_LOG), ("log", 16, False, 99.5, SRGB_LOG),
    ("log", 16, False, 99.5, {**SRGB_LOG, "guide_luma": True, "stats_luma": True}),
    ("log", 16, False, 99.5, {**SRGB_LOG, "guide_luma": True, "stats_luma": True, "guide_bilateral": 0.02}),
    ("log", 0, False, None, {"guide_bilateral": 0.05, "guide_bilateral_stops": 3.0}),
    ("log", 16, False, None, {**SRGB_LOG, "guide_luma": True, "guide_bilateral": 0.02, "white_base_percentile": 99.0})])
def test_fast_student_matches_forward(encoding, stats_bins, detail, white, cfg):
    m = perturbed_model(encoding, stats_bins=stats_bins, detail_input=detail, white_percentile=white, **cfg)
    fast = fused.FastStudent(m, threads=2)
    assert fast.engine.startswith("fused-cpp-")
    scale = 6.0 if encoding == "log" else 1.0
    # A log-luminance guide decoded to sRGB compounds the kernel's log2 and exp2 approximations to ~1e-5 (the
    # guide_luma case measured 1.00e-5 at 256x256 before the bilateral guide came, 1.01e-5 after: float
    # contraction moved); a bilateral guide sums thousands of pixels per cell in another order than torch.
    tol = 2e-5 if cfg.get("guide_luma") or cfg.get("guide_bilateral") else 1e-5
    for h, w in [(259, 301), (256, 256), (40, 70)]:  # area path, identity path, small (bilinear) path
        x = torch.rand(2, 3, h, w) * scale
        with torch.inference_mode():
            ref = m(x)
        out = fast(x)
        assert out.shape == x.shape and out.dtype == torch.float32
        assert (out - ref).abs().max() < tol, (h, w)
        assert (fast(x[1]) - ref[1]).abs().max() < tol
        out_np = fast(hwc(x[0]))
        assert isinstance(out_np, np.ndarray) and np.abs(out_np - hwc(ref[0])).max() < tol


@pytest.mark.parametrize("dtype,scale,white,cfg", [
    (np.uint8, 255, None, {}), (np.uint16, 65535, None, {}), (np.uint8, 255, 95.0, {}),
    (np.uint16, 65535, 99.5, {"encoding": "log", **SRGB_LOG}),
    (np.uint16, 65535, 99.5, {"encoding": "log", **SRGB_LOG, "guide_luma": True, "stats_bins": 16, "stats_luma": True}),
    (np.uint16, 65535, 99.5, {"encoding": "log", **SRGB_LOG, "guide_luma": True, "guide_bilateral": 0.02}),
    (np.uint16, 65535, None, {"encoding": "log", **SRGB_LOG, "guide_bilateral": 0.02, "white_base_percentile": 99.0})])
def test_fast_student_integer_images(dtype, scale, white, cfg):
    m = perturbed_model(seed=1, white_percentile=white, **cfg)
    for shape in [(257, 263, 3), (256, 264, 3)]:  # odd and even sides: two ways of taking the white quarter
        img = np.random.default_rng(2).integers(0, scale + 1, size=shape).astype(dtype)
        with torch.inference_mode():
            ref = m(torch.from_numpy(img.astype(np.float32) / scale).permute(2, 0, 1)[None])[0]
        ref = np.rint(hwc(ref.clamp(0, 1)) * scale)
        out = fused.FastStudent(m)(img, out=np.empty_like(img))
        assert out.dtype == dtype and np.abs(out.astype(np.int64) - ref).max() <= 1, shape


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint16])
def test_quarter_hwc_is_every_other_row_and_column(dtype):
    rng = np.random.default_rng(3)
    for h, w in [(6, 8), (7, 8), (6, 9), (2, 2), (1, 1)]:
        img = (rng.random((h, w, 3)) * 1000).astype(dtype)
        q = fused.quarter_hwc(img)
        assert q.dtype == dtype and q.flags.c_contiguous and np.array_equal(q, img[::2, ::2]), (h, w)
    view = (rng.random((8, 12, 3)) * 1000).astype(dtype)[:, 2:10]  # not contiguous
    assert np.array_equal(fused.quarter_hwc(view), view[::2, ::2])


def test_fast_student_snapshots_weights_and_keeps_model_intact():
    m = perturbed_model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    fast = fused.FastStudent(m)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]) and v.is_contiguous()
    with torch.no_grad():
        m.to_grid.bias.add_(1.0)  # later training does not leak into the snapshot
    x = torch.rand(1, 3, 20, 30)
    assert not torch.allclose(fast(x), m(x).detach())


def test_fallback_when_library_forced_unavailable(monkeypatch):
    m = perturbed_model()
    monkeypatch.setenv(fused.ENV_DISABLE, "1")
    with pytest.warns(RuntimeWarning, match="HDR_DISTILL_NO_FUSED"):
        fast = fused.FastStudent(m)
    assert fast.engine == "torch-fallback"
    x = torch.rand(1, 3, 30, 41)
    with torch.inference_mode():
        assert torch.equal(fast(x), m(x))
    img = (np.random.default_rng(0).random((30, 41, 3)) * 255).astype(np.uint8)
    with torch.inference_mode():
        ref = m(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)[0]
    out = fast(img)
    assert out.dtype == np.uint8 and np.array_equal(out, np.rint(hwc(ref.clamp(0, 1)) * 255).astype(np.uint8))
    with pytest.raises(fused.FusedUnavailable, match="HDR_DISTILL_NO_FUSED"):
        fused.fused_slice_apply(hwc(x[0]), random_grid(), guide_params())


def test_build_is_idempotent(capsys):
    path = build.build(verbose=True)
    mtime = os.stat(path).st_mtime_ns
    assert build.build(verbose=True) == path
    assert "up to date" in capsys.readouterr().out
    assert os.stat(path).st_mtime_ns == mtime
    assert path.name == build.library_name()


def test_fallback_when_no_compiler_and_no_library(monkeypatch):
    # A fresh process on a machine without g++: nothing cached, nothing to build with.
    monkeypatch.setattr(fused, "_lib", None)
    monkeypatch.setattr(fused, "_lib_error", None)
    monkeypatch.setattr(build, "find_library", lambda: None)
    monkeypatch.setattr(build, "compiler", lambda: None)
    with pytest.raises(build.BuildError, match="no C\\+\\+ compiler"):
        build.build()
    m = perturbed_model()
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        fast = fused.FastStudent(m)
    assert fast.engine == "torch-fallback" and not fused.available()
    x = torch.rand(1, 3, 12, 17)
    with torch.inference_mode():
        assert torch.equal(fast(x), m(x))


@pytest.mark.parametrize("h,w,sigma", [(70, 96, 0.02), (33, 200, 0.02), (150, 131, 0.1), (17, 9, 0.1)])
def test_bilateral_guide_matches_torch_every_isa(isa, h, w, sigma):
    """The C++ splat equals grid.bilateral_splat, and the kernel's guide reads the base bilateral_base gives
    (every ISA; row tails, a row shorter than one block, and blocks straddling up to 8 base cells: 0.02 on
    96 columns makes cells of 1.9 px)."""
    from students.grid import bilateral_dims, bilateral_splat
    from students.hdrnet import encoded_log_luminance
    torch.manual_seed(3)
    x = torch.rand(3, h, w) ** 4 * 5
    e = encoded_log_luminance(encode_input(x[None], "log"))
    dims = bilateral_dims(h, w, sigma * max(h, w), 1.33 / 20)
    want = bilateral_splat(e, dims)[0]
    out = np.empty((2,) + dims, np.float32)
    lib = fused.load_library()
    assert lib.hd_bilateral_splat(hwc(x).ctypes.data, 0, h, w, *dims, out.ctypes.data, 2) == 0
    np.testing.assert_allclose(out, want.numpy(), atol=2e-5, rtol=1e-5)
    # Every pixel's base and log luminance (white_base_percentile picks its pixels from them).
    from students.grid import bilateral_base
    base, lum = fused.bilateral_base_map(hwc(x), fused.bilateral_base_grid(hwc(x), sigma, 1.33))
    np.testing.assert_allclose(lum, e[0].numpy(), atol=2e-6)
    np.testing.assert_allclose(base, bilateral_base(e, sigma * max(h, w), 1.33 / 20)[0].numpy(), atol=2e-5)
    for luma in (True, False):
        m = perturbed_model("log", seed=4, guide_luma=luma, guide_bilateral=sigma, **SRGB_LOG)
        fast = fused.FastStudent(m, threads=2)
        with torch.inference_mode():
            ref = m(x[None])[0]
            plain = HDRNet(**{**m.config_dict(), "guide_bilateral": 0.0})
            plain.load_state_dict(m.state_dict())
            assert (plain(x[None])[0] - ref).abs().max() > 1e-3  # the base matters to this output
        assert np.abs(fast(hwc(x)) - hwc(ref)).max() < 1e-5
    with pytest.raises(ValueError, match="base_grid needs"):
        fused.fused_slice_apply(hwc(x), np.zeros((12, 8, 4, 4), np.float32), m.guide_params(), base_grid=out)
