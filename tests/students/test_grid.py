"""students/grid.py: known answers, identities, gradients."""
import math

import pytest
import torch

from students.grid import apply_coeffs, bilateral_base, guide_map, identity_grid, lowres_copy, slice_grid


def test_slice_depth_only_grid_at_bin_centres_is_exact():
    # Grid varies only along intensity: cell value in bin k is k (all 12 channels, all cells).
    d = 8
    grid = torch.arange(d, dtype=torch.float64).view(1, 1, d, 1, 1).expand(1, 12, d, 4, 5).contiguous()
    h, w = 6, 7
    k = torch.randint(0, d, (1, h, w))
    guide = (k.double() + 0.5) / d  # bin centres
    out = slice_grid(grid, guide)
    # exact up to float64 rounding of the spatial weights (which sum to 1 on a spatially constant grid)
    assert torch.allclose(out, k.double().unsqueeze(1).expand(1, 12, h, w), rtol=0, atol=1e-12)


def test_slice_interpolates_linearly_between_bins_and_clamps_at_ends():
    d = 4
    grid = torch.arange(d, dtype=torch.float64).view(1, 1, d, 1, 1).expand(1, 12, d, 2, 2).contiguous()
    # guide halfway between centres of bin 1 (0.375) and bin 2 (0.625) -> 1.5; 0 and 1 clamp to bins 0 and d-1.
    guide = torch.tensor([[[0.5, 0.0, 1.0, 0.4375]]], dtype=torch.float64)
    out = slice_grid(grid, guide)[0, 0, 0]
    assert torch.allclose(out, torch.tensor([1.5, 0.0, 3.0, 1.25], dtype=torch.float64))


def test_slice_spatial_axes_not_swapped():
    # Grid varies only along x (width): a pixel at column j of a W-wide image reads gx = (j+.5)*Gw/W - .5.
    gw, gh, d = 4, 3, 2
    grid = torch.arange(gw, dtype=torch.float64).view(1, 1, 1, 1, gw).expand(1, 12, d, gh, gw).contiguous()
    h, w = 5, 8
    out = slice_grid(grid, torch.full((1, h, w), 0.5, dtype=torch.float64))[0, 0]
    gx = ((torch.arange(w, dtype=torch.float64) + 0.5) * gw / w - 0.5).clamp(0, gw - 1)
    assert torch.allclose(out, gx.expand(h, w))


def test_identity_grid_returns_input_exactly():
    x = torch.rand(2, 3, 17, 23)
    g = identity_grid(2, 8, 16, 16)
    guide = torch.rand(2, 17, 23)
    assert torch.equal(apply_coeffs(slice_grid(g, guide), x), x)


def test_apply_known_affine():
    x = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1)
    a = torch.tensor([[1.0, 2, 3, 0.5], [0, 1, 0, 0], [0, 0, 0, 0.25]]).view(1, 12, 1, 1)
    out = apply_coeffs(a, x).flatten()
    assert torch.allclose(out, torch.tensor([0.2 + 0.8 + 1.8 + 0.5, 0.4, 0.25]))


def test_gradcheck_slice_and_apply_float64():
    torch.manual_seed(0)
    grid = torch.randn(1, 12, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    # keep the guide away from bin centres/clamp kinks where the derivative is not defined
    guide = (torch.rand(1, 4, 5, dtype=torch.float64) * 0.6 + 0.2).requires_grad_(True)
    x = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)

    def f(g, gd, im):
        return apply_coeffs(slice_grid(g, gd), im)

    assert torch.autograd.gradcheck(f, (grid, guide, x), eps=1e-6, atol=1e-4)


def test_guide_default_is_mean_intensity_and_clamped():
    x = torch.rand(1, 3, 5, 6) * 1.5
    k = 16
    shifts = torch.linspace(0, 1, k + 1)[:-1].repeat(3, 1)
    slopes = torch.zeros(3, k)
    slopes[:, 0] = 1
    g = guide_map(x, torch.eye(3), torch.zeros(3), shifts, slopes, torch.full((3,), 1 / 3), torch.zeros(1))
    assert torch.allclose(g, x.mean(1).clamp(0, 1), atol=1e-6)
    assert g.min() >= 0 and g.max() <= 1


def test_guide_curve_is_piecewise_linear():
    # one channel, slope 1 from 0 then an extra slope 1 from 0.5: curve(v) = v + relu(v - 0.5)
    x = torch.tensor([0.25, 0.5, 0.75]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    shifts = torch.tensor([[0.0, 0.5]] * 3)
    slopes = torch.tensor([[1.0, 1.0], [0, 0], [0, 0]])
    g = guide_map(x, torch.eye(3), torch.zeros(3), shifts, slopes, torch.tensor([1.0, 0, 0]), torch.zeros(1))
    assert torch.allclose(g.flatten(), torch.tensor([0.25, 0.5, 1.0]))


def test_slice_rejects_bad_shapes():
    with pytest.raises(ValueError, match="grid must be"):
        slice_grid(torch.zeros(1, 12, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="guide must be"):
        slice_grid(torch.zeros(1, 12, 2, 4, 4), torch.zeros(4, 4))


def test_lowres_copy_area_average():
    x = torch.arange(16.0).view(1, 1, 4, 4).expand(1, 3, 4, 4)
    low = lowres_copy(x, 2)
    assert torch.allclose(low[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))


def test_slice_matches_grid_sample_reference():
    """The lerp implementation samples exactly like 5-D grid_sample (border padding, align_corners=False)."""
    import torch.nn.functional as F

    torch.manual_seed(1)
    grid = torch.randn(2, 12, 8, 5, 7, dtype=torch.float64)
    h, w = 13, 11
    guide = torch.rand(2, h, w, dtype=torch.float64)
    guide[0, 0, 0], guide[0, -1, -1] = 0.0, 1.0
    xs = ((torch.arange(w, dtype=torch.float64) + 0.5) / w * 2 - 1).view(1, 1, w).expand(2, h, w)
    ys = ((torch.arange(h, dtype=torch.float64) + 0.5) / h * 2 - 1).view(1, h, 1).expand(2, h, w)
    coords = torch.stack([xs, ys, guide * 2 - 1], -1).unsqueeze(1)
    ref = F.grid_sample(grid, coords, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]
    assert torch.allclose(slice_grid(grid, guide), ref, atol=1e-12)


def test_slice_points_equals_slice_grid_at_those_pixels():
    from students.grid import slice_points

    torch.manual_seed(2)
    grid = torch.randn(2, 12, 8, 4, 6, dtype=torch.float64)
    h, w = 19, 23
    guide = torch.rand(2, h, w, dtype=torch.float64)
    full = slice_grid(grid, guide)
    rows = torch.randint(0, h, (2, 50))
    cols = torch.randint(0, w, (2, 50))
    g = torch.gather(guide.view(2, -1), 1, rows * w + cols)
    pts = slice_points(grid, g, rows, cols, h, w)
    ref = torch.stack([full[b][:, rows[b], cols[b]] for b in range(2)])
    assert torch.allclose(pts, ref, atol=1e-12)


def exact_bilateral(e: torch.Tensor, sigma_px: float, sigma_range: float) -> torch.Tensor:
    """Brute force: every pixel against every pixel, Gaussian in space and in value (no window, no grid)."""
    h, w = e.shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    p = torch.stack([yy.flatten(), xx.flatten()], 1).double()
    v = e.flatten().double()
    wt = torch.exp(-((p[:, None] - p[None]) ** 2).sum(-1) / (2 * sigma_px**2))
    wt = wt * torch.exp(-((v[:, None] - v[None]) ** 2) / (2 * sigma_range**2))
    return ((wt @ v) / wt.sum(1)).view(h, w)


def test_bilateral_base_matches_the_exact_filter_keeps_edges_and_constants():
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(40), torch.arange(56), indexing="ij")
    step = torch.where(xx < 28, 0.3, 0.6).double()
    noise = 0.02 * torch.randn(40, 56, dtype=torch.float64)
    e = (step + noise)[None]
    got = bilateral_base(e, 4.0, 0.05)[0]
    ref = exact_bilateral(e[0], 4.0, 0.05)
    assert (got - ref).abs().mean() < 1e-3 and (got - ref).abs().max() < 5e-3  # noise 0.02, step 0.3
    assert (got - step).std() < 0.25 * noise.std()  # the noise is smoothed ...
    assert (got[:, 27] - 0.3).abs().max() < 0.03 and (got[:, 28] - 0.6).abs().max() < 0.03  # ... the edge kept
    flat = torch.full((2, 30, 41), 0.37)
    torch.testing.assert_close(bilateral_base(flat, 5.0, 0.05), flat, atol=1e-6, rtol=0)
    # A wide range sigma makes it a plain Gaussian blur: the step's two sides then meet.
    wide = bilateral_base(e, 4.0, 10.0)[0]
    assert (wide[:, 28] - wide[:, 27]).mean() < 0.15


def test_bilateral_base_spatial_sigma_is_the_one_asked_for():
    """An impulse through the filter (range sigma wide, so it is a plain Gaussian blur) spreads by sigma_px along
    each axis, as the brute-force filter's does; a sine of period 6 sigma keeps the brute force's amplitude.
    (A grid of twice the cells per sigma, e.g. a wrong bilateral_dims, halves the spread and fails here; the
    step test above does not see it, its edges being decided by the range sigma.)"""
    h, w = 40, 56
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    for sigma in (3.0, 4.0, 5.0):
        e = torch.full((1, h, w), 0.3, dtype=torch.float64)
        e[0, 20, 28] = 0.8
        got, ref = bilateral_base(e, sigma, 10.0)[0] - 0.3, exact_bilateral(e[0], sigma, 10.0) - 0.3
        for d in ((yy - 20).double(), (xx - 28).double()):  # rows, then columns
            spread_got = ((got * d**2).sum() / got.sum()).sqrt()
            spread_ref = ((ref * d**2).sum() / ref.sum()).sqrt()
            assert abs(spread_ref - sigma) < 0.05 * sigma  # the brute force is the Gaussian asked for ...
            assert abs(spread_got - spread_ref) < 0.1 * sigma, (sigma, spread_got, spread_ref)  # ... and so is the grid
        assert (got.max() - ref.max()).abs() < 0.25 * ref.max()
        wave = (0.4 + 0.1 * torch.sin(2 * math.pi * xx / (6 * sigma))).double()[None]
        inner = (slice(8, -8), slice(8, -8))
        amp_got = (bilateral_base(wave, sigma, 10.0)[0][inner] - 0.4).abs().max()
        amp_ref = (exact_bilateral(wave[0], sigma, 10.0)[inner] - 0.4).abs().max()
        assert (amp_got - amp_ref).abs() < 0.12 * amp_ref, (sigma, amp_got, amp_ref)
