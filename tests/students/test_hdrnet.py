"""students/hdrnet.py: shapes, identity at init, config checks, a short distillation of a global curve."""
import math

import pytest
import torch
import torch.nn.functional as F

from students.hdrnet import HDRNet, HDRNetConfig, encode_input
from teachers.curves import GammaCurve


def test_untrained_student_is_identity_and_shapes():
    m = HDRNet(width=4)
    x = torch.rand(2, 3, 37, 53)
    assert m(x).shape == x.shape
    assert torch.allclose(m(x), x, atol=1e-6)
    grid = m.coefficients(torch.rand(2, 3, 256, 256))
    assert grid.shape == (2, 12, 8, 16, 16)


def test_paper_sized_model_parameter_count():
    # The official HDRNet has ~482K parameters with these sizes.
    n = sum(p.numel() for p in HDRNet().parameters())
    assert 470_000 < n < 495_000


def test_config_validation():
    with pytest.raises(ValueError, match="power of two"):
        HDRNetConfig(lowres=200, grid_size=16)
    with pytest.raises(ValueError, match="input_encoding"):
        HDRNetConfig(input_encoding="gamma")
    for bad in (0.0, -1.0, 100.5):
        with pytest.raises(ValueError, match="white_percentile"):
            HDRNetConfig(white_percentile=bad)


def test_log_encoding_range():
    x = torch.tensor([0.0, 2.0**-20, 2.0**-10, 1.0, 1e9]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    e = encode_input(x, "log")[0, 0, 0]
    assert e[0] == 0 and abs(e[2].item() - 0.5) < 1e-4 and e[3] == 1 and e[4] == 1
    assert torch.all(e[1:] >= e[:-1])


def _images(n, size):
    """Per-image colour tint times a per-pixel intensity: the guide (one intensity) can index every pixel."""
    tint = 0.5 + 0.5 * torch.rand(n, 3, 1, 1)
    return tint * torch.rand(n, 1, size, size)


def test_student_learns_a_global_gamma_curve():
    """A few hundred steps on a global curve must reach a high PSNR: fails if slicing, guide or loss are wrong."""
    torch.manual_seed(0)
    teacher = GammaCurve(gamma=0.6)
    m = HDRNet(width=4, lowres=64, grid_size=8)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(300):
        x = _images(4, 48)
        loss = F.mse_loss(m(x), teacher(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = _images(2, 64)
    with torch.no_grad():
        mse = F.mse_loss(m(x).clamp(0, 1), teacher(x)).item()
    psnr = 10 * math.log10(1 / mse)
    assert psnr > 38, f"PSNR {psnr:.1f} dB"


def test_forward_points_equals_forward_at_those_pixels():
    torch.manual_seed(3)
    m = HDRNet(width=4, lowres=64, grid_size=8, input_encoding="log")
    with torch.no_grad():
        m.to_grid.bias.normal_()  # a non-identity grid
        m.slopes.add_(0.1 * torch.randn_like(m.slopes))
    x = torch.rand(2, 3, 37, 45)
    rows, cols = torch.randint(0, 37, (2, 30)), torch.randint(0, 45, (2, 30))
    with torch.no_grad():
        full = m(x)
        pts = m.forward_points(x, rows, cols)
    ref = torch.stack([full[b][:, rows[b], cols[b]] for b in range(2)])
    assert torch.allclose(pts, ref, atol=1e-6)


def test_luminance_histograms_known_answer_and_mass():
    from students.hdrnet import luminance_histograms

    bins, cells = 8, 4
    low = torch.full((1, 3, 32, 32), (3 + 0.5) / bins)  # every pixel at the centre of bin 3
    low[:, :, :8, :8] = (5 + 0.75) / bins  # top-left cell: 3/4 of the way from bin 5's centre to bin 6's
    cell, image = luminance_histograms(low, bins, cells)
    assert cell.shape == (1, bins, cells, cells) and image.shape == (1, bins)
    expect = torch.zeros(bins)
    expect[3] = bins
    torch.testing.assert_close(cell[0, :, 1, 2], expect)
    torch.testing.assert_close(cell[0, 5:7, 0, 0], torch.tensor([0.75, 0.25]) * bins)
    # Densities: each cell's (and the image's) histogram integrates to `bins`, extremes included.
    rnd = torch.rand(2, 3, 64, 64)
    rnd[:, :, 0] = 0.0
    rnd[:, :, 1] = 1.0
    c, i = luminance_histograms(rnd, bins, cells)
    torch.testing.assert_close(c.sum(1), torch.full((2, cells, cells), float(bins)))
    torch.testing.assert_close(i.sum(1), torch.full((2,), float(bins)))


def test_stats_bins_add_inputs_and_change_the_grid():
    torch.manual_seed(0)
    plain, stats = HDRNet(), HDRNet(stats_bins=16)
    n_plain = sum(p.numel() for p in plain.parameters())
    n_stats = sum(p.numel() for p in stats.parameters())
    c = 64  # splat width at the grid
    assert n_stats - n_plain == 16 * c * 9 + 16 * 4 * c  # local conv 3x3 inputs + global FC inputs
    with torch.no_grad():
        for p in stats.parameters():
            p.add_(0.02 * torch.randn_like(p))
    # The histogram inputs reach the grid: cutting their weights changes it.
    a = torch.rand(1, 3, 256, 256)
    out = stats.coefficients(a)
    with torch.no_grad():
        stats.local[0][0].weight[:, c:] = 0
        stats.global_fc[0].weight[:, -16:] = 0
    assert not torch.allclose(stats.coefficients(a), out)
    with pytest.raises(ValueError, match="stats_bins"):
        HDRNetConfig(stats_bins=-1)


def test_detail_energy_known_answers_and_size_independence():
    from students.hdrnet import detail_energy

    a = 0.1
    for side in (64, 128):
        yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        checker = (0.5 + a * (1 - 2 * ((yy + xx) % 2)).float()).expand(1, 3, side, side)
        e = detail_energy(checker, 16)
        # interior: 3x3 mean is c +- a/9, so the finest detail is +-8a/9 everywhere; x4 scale
        torch.testing.assert_close(e[0, 0, 1:-1, 1:-1], torch.full((14, 14), 4 * 8 * a / 9))
    ramp = torch.linspace(0, 1, 96).expand(1, 3, 96, 96).contiguous()
    assert detail_energy(ramp, 16)[0, 0, 1:-1, 1:-1].abs().max() < 1e-6  # a linear ramp has no detail
    assert detail_energy(torch.full((2, 3, 50, 70), 0.3), 16).abs().max() < 1e-6


def test_detail_input_adds_a_channel_and_reaches_the_grid():
    torch.manual_seed(0)
    plain, det = HDRNet(width=4, lowres=64, grid_size=8), HDRNet(width=4, lowres=64, grid_size=8, detail_input=True)
    assert det.splat[0][0].weight.shape[1] == 4 and plain.splat[0][0].weight.shape[1] == 3
    x = torch.rand(1, 3, 80, 120)
    assert det.lowres_input(x).shape == (1, 4, 64, 64)
    with torch.no_grad():
        det.to_grid.weight.normal_(std=0.1)
        x[..., :40, :] = 0.5 + 0.2 * (torch.rand(1, 1, 40, 120) - 0.5)  # texture on the top half
        x[..., 40:, :] = 0.5  # flat bottom half
        low = det.lowres_input(x)
        no_detail = low.clone()
        no_detail[:, 3] = 0
        assert low[0, 3, :30].mean() > 0.1 and low[0, 3, :30].min() > 0 and low[0, 3, 34:].max() < 1e-6
        # the network sees the texture that the low-res copy averages away
        assert not torch.allclose(det.coefficients(low), det.coefficients(no_detail))
    plain.load_state_dict(HDRNet(width=4, lowres=64, grid_size=8).state_dict())  # the default is unchanged


def test_percentile_matches_numpy_and_passes_gradient_to_its_elements():
    import numpy as np

    from students.hdrnet import percentile
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 7, 1000, 4099):
        v = torch.randn(3, n, generator=g)
        v[:, : n // 3] = 0.25  # ties
        for p in (0.0, 12.5, 50.0, 99.5, 100.0):
            ref = torch.from_numpy(np.percentile(v.numpy().astype(np.float64), p, axis=1)).float()
            assert torch.allclose(percentile(v, p), ref, atol=1e-6), (n, p)
    v = torch.arange(11.0).view(1, 11).requires_grad_()
    percentile(v, 95.0).sum().backward()  # pos 9.5: halfway between the values 9 and 10
    assert v.grad[0, 9] == 0.5 and v.grad[0, 10] == 0.5 and v.grad.sum() == 1.0


def test_white_normalisation_known_answer_on_the_identity_student():
    import numpy as np
    # An untrained student is the identity, so on a grey image its output luma is the image: the white level
    # must be numpy's 99.5th percentile of every other row and column, and the output the image divided by it.
    m = HDRNet(width=4, lowres=64, grid_size=8, white_percentile=99.5)
    grey = torch.rand(1, 1, 75, 90, generator=torch.Generator().manual_seed(3)) * 0.8
    x = grey.expand(1, 3, 75, 90).contiguous()
    with torch.no_grad():
        out = m(x)
    white = np.percentile(grey[0, 0, ::2, ::2].numpy().astype(np.float64), 99.5)
    assert 0.7 < white < 0.8
    assert torch.allclose(out, (x / white).clamp(0, 1), atol=1e-6)
    assert (out == 1).float().mean() < 0.01  # only the top half percent or so reaches white
    plain = HDRNet(width=4, lowres=64, grid_size=8)
    with torch.no_grad():
        assert torch.allclose(plain(x), x, atol=1e-6)  # off by default: the output is the grid's


def test_white_normalisation_makes_the_output_scale_free():
    # The point of the option: the student's global level (a scale on all coefficients) no longer matters.
    torch.manual_seed(1)
    m = HDRNet(width=4, lowres=64, grid_size=8, white_percentile=99.5, input_encoding="log")
    with torch.no_grad():
        m.to_grid.weight.normal_(std=0.05)
        x = torch.rand(2, 3, 70, 96) ** 4 * 5
        xe = encode_input(x, "log")
        grid = m.coefficients(m.lowres_input(xe))
        out = m(x)
        for scale in (0.5, 3.0):
            from students.hdrnet import normalise_white
            scaled = normalise_white(m.render(grid * scale, xe), m.white(grid * scale, xe))
            assert torch.allclose(scaled, out, atol=1e-5)
        # and without it, the scale shows
        assert (m.render(grid * 3.0, xe) - m.render(grid, xe)).abs().max() > 0.1
        rows = torch.randint(0, 70, (2, 64)); cols = torch.randint(0, 96, (2, 64))
        from students.hdrnet import gather_pixels
        assert torch.allclose(m.forward_points(x, rows, cols), gather_pixels(out, rows, cols), atol=1e-6)


def test_training_white_level_has_the_full_renders_value_and_gradient():
    # HDRNet.white renders only the two order-statistic pixels with autograd while training; it must give what
    # white_level on a fully differentiable render gives, value and gradient (grid and guide parameters).
    from students.hdrnet import white_level
    torch.manual_seed(2)
    m = HDRNet(width=4, lowres=64, grid_size=8, white_percentile=99.5, input_encoding="log")
    with torch.no_grad():
        m.to_grid.weight.normal_(std=0.05)
    xe = encode_input(torch.rand(3, 3, 90, 122) ** 4 * 5, "log")
    grid = m.coefficients(m.lowres_input(xe))
    params = [m.to_grid.weight, m.slopes, m.ccm]
    fast = m.white(grid, xe)
    g_fast = torch.autograd.grad(fast.sum(), params, retain_graph=True)
    ref = white_level(m.render(grid, xe[..., ::2, ::2]), 99.5)
    g_ref = torch.autograd.grad(ref.sum(), params)
    assert torch.allclose(fast, ref, atol=1e-6)
    assert g_ref[0].abs().max() > 1e-3  # the level does depend on the network
    for a, b in zip(g_fast, g_ref):
        assert torch.allclose(a, b, atol=1e-6)


def test_srgb_log_output_config_checks_and_identity_at_init():
    from distill.core.color import linear_to_srgb
    with pytest.raises(ValueError, match="output_encoding"):
        HDRNetConfig(input_encoding="log", output_encoding="srgb")
    with pytest.raises(ValueError, match="needs input_encoding 'log'"):
        HDRNetConfig(output_encoding="srgb_log")
    # An untrained student shows its (peak-normalised) HDR input as sRGB: the decode inverts the log window
    # (to 2^-20) and applies the sRGB curve, clipping above the peak.
    m = HDRNet(width=4, lowres=64, grid_size=8, input_encoding="log", output_encoding="srgb_log")
    x = torch.rand(2, 3, 37, 45) ** 3
    x[:, :, 0, 0] = 2.0
    with torch.no_grad():
        out = m(x)
    assert torch.allclose(out, linear_to_srgb(x), atol=2e-5) and (out[:, :, 0, 0] - 1).abs().max() < 1e-6


def test_srgb_log_turns_a_gain_into_a_grid_offset():
    # The reason for the encoding: a tone operator that multiplies radiance by a gain (here 1/4, two stops) is an
    # identity grid plus a constant offset, which an additive ("none") output cannot express exactly.
    from distill.core.color import linear_to_srgb
    from students.hdrnet import decode_output
    from students.grid import apply_coeffs, identity_grid, slice_grid
    x = torch.rand(1, 3, 20, 30) ** 2
    xe = encode_input(x, "log")
    grid = identity_grid(1, 8, 4, 4)
    grid[:, 3::4] -= 2.0 / 20.0  # offsets of the three output rows: log2 gain / (LOG_MIN + LOG_MAX)
    y = apply_coeffs(slice_grid(grid, xe.mean(1)), xe)
    assert torch.allclose(decode_output(y, "srgb_log"), linear_to_srgb((x + 2.0**-20) / 4), atol=1e-6)


def test_srgb_log_points_and_white_level_match_the_full_render():
    from students.hdrnet import gather_pixels, white_level
    torch.manual_seed(4)
    m = HDRNet(width=4, lowres=64, grid_size=8, white_percentile=99.5, input_encoding="log",
               output_encoding="srgb_log")
    with torch.no_grad():
        m.to_grid.weight.normal_(std=0.05)
    x = torch.rand(2, 3, 70, 96) ** 4 * 5
    with torch.no_grad():
        out = m(x)
    rows, cols = torch.randint(0, 70, (2, 64)), torch.randint(0, 96, (2, 64))
    with torch.no_grad():
        assert torch.allclose(m.forward_points(x, rows, cols), gather_pixels(out, rows, cols), atol=1e-6)
    xe = encode_input(x, "log")
    grid = m.coefficients(m.lowres_input(xe))
    fast = m.white(grid, xe)
    ref = white_level(m.render(grid, xe[..., ::2, ::2]), 99.5)
    assert torch.allclose(fast, ref, atol=1e-6)
    params = [m.to_grid.weight, m.slopes]
    for a, b in zip(torch.autograd.grad(fast.sum(), params, retain_graph=True),
                    torch.autograd.grad(ref.sum(), params)):
        assert torch.allclose(a, b, atol=1e-6)


def test_guide_luma_reads_log_luminance_at_init():
    from students.hdrnet import luma_guide_input
    with pytest.raises(ValueError, match="guide_luma needs input_encoding 'log'"):
        HDRNetConfig(guide_luma=True)
    # Known answer: the untrained guide is the encoded log of the Rec. 709 luminance, for grey and for
    # saturated pixels, where the default guide (mean of the log channels, a geometric mean) is stops away.
    x = torch.tensor([[0.5, 0.5, 0.5], [0.8, 1e-4, 1e-4], [1e-4, 0.8, 1e-4], [0.02, 0.3, 0.9]]).T.reshape(1, 3, 2, 2)
    lum = (x * torch.tensor([0.2126, 0.7152, 0.0722]).view(1, 3, 1, 1)).sum(1)
    m = HDRNet(width=4, lowres=64, grid_size=8, input_encoding="log", guide_luma=True)
    xe = encode_input(x, "log")
    with torch.no_grad():
        g = m.guide(xe)
        plain = HDRNet(width=4, lowres=64, grid_size=8, input_encoding="log").guide(xe)
    expect = (torch.log2(lum + 2.0**-20) + 20) / 20  # the decoded pixel is x + 2^-20; the weights sum to 1
    torch.testing.assert_close(g, expect, atol=2e-6, rtol=0)
    assert (plain - expect).abs().max() * 20 > 3  # the channel mean misses a saturated red pixel by > 3 stops
    # Only the channel mean is replaced: the log chroma (each channel minus the mean) is kept for the ccm.
    v = luma_guide_input(xe)
    torch.testing.assert_close(v.mean(1), expect, atol=2e-6, rtol=0)
    torch.testing.assert_close(v - v.mean(1, keepdim=True), xe - xe.mean(1, keepdim=True), atol=2e-6, rtol=0)


def test_stats_luma_counts_log_luminance(monkeypatch):
    with pytest.raises(ValueError, match="stats_luma needs input_encoding 'log'"):
        HDRNetConfig(stats_luma=True)
    torch.manual_seed(8)
    kw = dict(width=4, lowres=64, grid_size=8, input_encoding="log", stats_bins=8)
    plain, luma = HDRNet(**kw), HDRNet(stats_luma=True, **kw)
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(0.05 * torch.randn_like(p))
        luma.load_state_dict(plain.state_dict())
        grey = torch.rand(1, 1, 64, 64).expand(1, 3, 64, 64) ** 3
        # On grey pixels log luminance is the channel mean: the same histograms, the same grid.
        assert torch.allclose(plain.coefficients(encode_input(grey, "log")),
                              luma.coefficients(encode_input(grey, "log")), atol=1e-5)
        # A saturated red image: its log luminance (-3.2 stops) is 10 stops above its channel mean (-13.7 stops,
        # two black channels at the window's floor), so the histograms and the grid differ.
        red = torch.zeros(1, 3, 64, 64)
        red[:, 0] = 0.5
        low = encode_input(red, "log")
        assert not torch.allclose(plain.coefficients(low), luma.coefficients(low), atol=1e-3)
    # What the histograms count: the channel mean of their input is the encoded log luminance.
    import students.hdrnet as hd
    seen, real = [], hd.with_histograms
    monkeypatch.setattr(hd, "with_histograms", lambda low_in, *a: (seen.append(low_in), real(low_in, *a))[1])
    with torch.no_grad():
        luma.coefficients(low)
    expect = (math.log2(0.5 * 0.2126 + 2.0**-20) + 20) / 20
    torch.testing.assert_close(seen[0].mean(1), torch.full((1, 64, 64), expect), atol=1e-6, rtol=0)


def assert_points_equal_forward(**kw):
    """The training path (sampled pixels, white level from a quarter of the image) computes what forward does,
    for a student with ``kw`` (random grid weights). Returns (model, input, forward's output)."""
    from students.hdrnet import gather_pixels
    torch.manual_seed(5)
    m = HDRNet(white_percentile=99.5, output_encoding="srgb_log", **kw)
    with torch.no_grad():
        m.to_grid.weight.normal_(std=0.05)
        x = torch.rand(2, 3, 70, 96) ** 4 * 5
        out = m(x)
        rows, cols = torch.randint(0, 70, (2, 64)), torch.randint(0, 96, (2, 64))
        torch.testing.assert_close(m.forward_points(x, rows, cols), gather_pixels(out, rows, cols), atol=1e-6, rtol=0)
    return m, x, out


def test_guide_bilateral_reads_the_base_layer_texture_off_edges_kept():
    from students.grid import bilateral_base
    from students.hdrnet import encoded_log_luminance, luma_guide_input
    with pytest.raises(ValueError, match="needs input_encoding"):
        HDRNetConfig(guide_bilateral=0.02)
    # A 4-stop step edge at column 64, plus a +-0.25 stop checkerboard, on coloured pixels.
    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    base = torch.where(xx < 64, 0.01, 0.16).float()
    texture = 2.0 ** (0.25 * ((yy + xx) % 2 * 2 - 1).float())
    x = (base * texture) * torch.tensor([1.0, 0.7, 0.4]).view(1, 3, 1, 1)
    kw = dict(width=4, lowres=64, grid_size=8, input_encoding="log", guide_luma=True)
    m = HDRNet(guide_bilateral=0.02, **kw)
    with torch.no_grad():
        xe = encode_input(x, "log")
        src = m.guide_source(xe)
        g = luma_guide_input(src).mean(1)[0] * 20  # what the guide reads, in stops
        lum = encoded_log_luminance(xe)
    # The guide's log luminance is the bilateral base of the pixels' own, the chroma untouched.
    torch.testing.assert_close(g / 20, bilateral_base(lum, 0.02 * 128, 1.33 / 20)[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(src - src.mean(1, keepdim=True), xe - xe.mean(1, keepdim=True), atol=1e-6, rtol=0)
    far = (xx - 64).abs() > 8
    want = torch.log2(torch.where(xx < 64, 0.01, 0.16) * (0.2126 + 0.7152 * 0.7 + 0.0722 * 0.4)) + 20
    assert (g - want)[far].abs().max() < 0.05  # texture (+-0.25 stop) off the guide
    assert (g[:, 64] - g[:, 63]).mean() > 3.5  # the 4-stop edge stays (the Gaussian blur keeps < 1 stop)
    assert_points_equal_forward(guide_bilateral=0.03, **kw)


def test_white_base_percentile_exposes_as_the_teacher_and_is_exposure_invariant():
    with pytest.raises(ValueError, match="white_base_percentile needs"):
        HDRNetConfig(input_encoding="log", output_encoding="srgb_log", white_base_percentile=99.0)
    kw = dict(width=4, lowres=64, grid_size=8, input_encoding="log", guide_luma=True, guide_bilateral=0.05,
              output_encoding="srgb_log", white_base_percentile=99.0)
    torch.manual_seed(2)
    x = (torch.rand(1, 3, 80, 96) ** 3 * 0.05 + 0.001) * torch.linspace(1, 40, 96).view(1, 1, 1, 96)
    x = x / x.max() * 0.2  # peak-normalised HDR radiance, with room for two stops more inside the log window
    x = x[:, :1].expand(1, 3, 80, 96).contiguous()  # grey: a channel is the luminance
    m = HDRNet(**kw)
    with torch.no_grad():
        xe = encode_input(x, "log")
        grid = m.coefficients(m.lowres_input(xe))  # untrained: the identity, output radiance = input radiance
        c = m.base_white_offset(grid, xe)
        from students.hdrnet import encoded_log_luminance, percentile
        base = encoded_log_luminance(m.guide_source(xe[..., ::2, ::2])).flatten(1)
        hi = percentile(base, 99.0)
    # Identity student: log2 output - detail = the base, so the offset is the base's 99th percentile (log2).
    assert abs(float(c) - float(hi * 20 - 20)) < 0.05
    with torch.no_grad():
        y1, y2 = m(x), m(x * 4.0)  # two stops brighter: the same picture
    assert (y1 - y2).abs().max() < 0.01  # not exact: the base grid's intensity cells do not move with the image
    # The identity student's output radiance is x / 2^(20 hi - 20): below white exactly where the pixel's log
    # luminance is below the base's percentile hi, clipped at white above it (0.1 stop margin).
    e = encoded_log_luminance(xe)[0] * 20
    lum = y1[0, 0]
    assert bool((lum[e < hi * 20 - 0.1] < 0.999).all()) and bool((lum[e > hi * 20 + 0.1] > 0.999).all())
    # The training path (sampled pixels) computes what forward does, and trains.
    from students.hdrnet import gather_pixels
    with torch.no_grad():
        m.to_grid.weight.normal_(std=0.05)
        out = m(x)
        rows, cols = torch.randint(0, 80, (1, 64)), torch.randint(0, 96, (1, 64))
        torch.testing.assert_close(m.forward_points(x, rows, cols), gather_pixels(out, rows, cols), atol=1e-6, rtol=0)
    m.forward_points(x, rows, cols).sum().backward()
    assert m.to_grid.bias.grad.abs().sum() > 0

