"""distill/data/pairs.py: augmentation pool, teacher in the loop, cache, batch order."""
import numpy as np
import pytest
import torch

from distill.data.pairs import Augment, PairDataset, StepBatchSampler, apply_augment, draw_augment
from distill.data.sources import SourceImage
from distill.train.loop import lr_factor
from teachers.curves import GammaCurve


def _source(n=2, h=40, w=50):
    rng = np.random.default_rng(0)
    return [SourceImage(f"img{i}", rng.random((h, w, 3), dtype=np.float32), {}) for i in range(n)]


def test_apply_augment_identity_and_known_rotation():
    img = np.random.default_rng(1).random((20, 20, 3), dtype=np.float32)
    assert np.array_equal(apply_augment(img, Augment(0, 0, 20, 0, False, 1.0), 20), img)
    rot = apply_augment(img, Augment(0, 0, 20, 1, True, 2.0), 20)
    assert np.allclose(rot, np.rot90(img, 1)[:, ::-1] * 2)


def test_colour_jitter_keeps_luminance_for_saturation():
    from distill.core.color import luminance

    img = np.random.default_rng(2).random((16, 16, 3), dtype=np.float32) * 0.5 + 0.25
    out = apply_augment(img, Augment(0, 0, 16, 0, False, 1.0, saturation=0.5), 16)
    assert np.allclose(luminance(out), luminance(img), atol=1e-6)
    assert np.abs(out - luminance(out)[..., None]).mean() < np.abs(img - luminance(img)[..., None]).mean()


def test_augment_pool_is_seeded():
    a = draw_augment(100, 120, np.random.default_rng([0, 1, 2]), (0.4, 1.0), True, 1.0, (0.6, 1.4), 0.25)
    b = draw_augment(100, 120, np.random.default_rng([0, 1, 2]), (0.4, 1.0), True, 1.0, (0.6, 1.4), 0.25)
    assert a == b and a.key() == b.key()
    assert 40 <= a.side <= 100 and a.y0 + a.side <= 100 and a.x0 + a.side <= 120


def test_pairs_are_teacher_outputs_and_cache_round_trips(tmp_path):
    t = GammaCurve(0.5)
    ds = PairDataset(_source(), t, crop_size=32, crops_per_image=3, cache_dir=tmp_path)
    x, y = ds[4]
    assert x.shape == (3, 32, 32) and torch.allclose(y, t(x[None])[0])
    x2, y2 = PairDataset(_source(), t, crop_size=32, crops_per_image=3, cache_dir=tmp_path)[4]
    assert torch.allclose(x2, x, atol=1e-3) and torch.allclose(y2, y, atol=1e-3)  # float16 store
    assert len(list(tmp_path.rglob("*.npz"))) == 1 and not list(tmp_path.rglob("*.tmp"))
    # another teacher (other parameters) never reads this teacher's cache
    ds3 = PairDataset(_source(), GammaCurve(0.8), crop_size=32, crops_per_image=3, cache_dir=tmp_path)
    ds3[4]
    assert ds3.cache_hits == 0 and len(list(tmp_path.rglob("*.npz"))) == 2
    # another crop size never reads a pair cached at this size (the augment key names the crop, not the
    # size it is resized to), neither when training nor when pre-generating (`hdr-distill pairs`)
    ds4 = PairDataset(_source(), t, crop_size=24, crops_per_image=3, cache_dir=tmp_path)
    assert ds4.ensure_cached(4) is True
    x4, _ = ds4[4]
    assert x4.shape == (3, 24, 24) and ds4.cache_hits == 1
    assert PairDataset(_source(), t, crop_size=32, crops_per_image=3, cache_dir=tmp_path)[4][0].shape == (3, 32, 32)


def test_bad_teacher_output_is_refused():
    class NaNTeacher(GammaCurve):
        def __call__(self, images):
            return images * float("nan")

    with pytest.raises(ValueError, match="NaN"):
        PairDataset(_source(), NaNTeacher(), crop_size=16, crops_per_image=1)[0]


def test_make_pair_is_used_when_present():
    class Paired(GammaCurve):
        def make_pair(self, images):
            return images * 0.5, images

    x, y = PairDataset(_source(), Paired(), crop_size=16, crops_per_image=1)[1]
    assert torch.allclose(x * 2, y)


def test_step_batches_are_a_function_of_the_step():
    s1 = StepBatchSampler(10, 4, seed=3, start_step=0, total_steps=6)
    s2 = StepBatchSampler(10, 4, seed=3, start_step=4, total_steps=6)
    assert list(s1)[4:] == list(s2) and len(s2) == 2


def test_cosine_lr_schedule_endpoints():
    assert lr_factor(0, 100, "cosine") == 1.0
    assert lr_factor(100, 100, "cosine") == pytest.approx(0.1)
    assert lr_factor(50, 100, "cosine") == pytest.approx(0.55)
    assert lr_factor(7, 100, "none") == 1.0
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_factor(0, 10, "step")


def test_side_px_range_sets_crop_side_in_pixels_whatever_the_image_size():
    for h, w in [(300, 451), (1411, 1411)]:
        sides = [draw_augment(h, w, np.random.default_rng([3, k]), (0.4, 1.0), side_px_range=(192, 384)).side
                 for k in range(200)]
        assert 192 <= min(sides) and max(sides) <= min(384, h, w)
        assert max(sides) - min(sides) > 50  # drawn from the range, not a constant
    # A range above the image's short side clips to the whole short side.
    assert draw_augment(100, 120, np.random.default_rng(0), side_px_range=(192, 384)).side == 100


def test_several_crop_sizes_share_one_augmentation_pool(tmp_path):
    t = GammaCurve(0.5)
    ds = PairDataset(_source(), t, crop_size=[16, 24], crops_per_image=3, cache_dir=tmp_path)
    assert len(ds) == 2 * 2 * 3 and ds.pairs_per_size == 6
    x16, y16 = ds[4]
    x24, y24 = ds[6 + 4]  # pool entry 4 at the second size
    assert x16.shape == (3, 16, 16) and x24.shape == (3, 24, 24)
    assert ds.augment_for(4) == ds.augment_for(10)
    assert torch.allclose(y24, t(x24[None])[0])
    # the same crop box at both sizes: the larger one, shrunk, is the smaller one
    shrunk = torch.nn.functional.interpolate(x24[None], size=16, mode="area")[0]
    assert (shrunk - x16).abs().mean() < 0.05
    # each size has its own cache folder; a single-size dataset reads the same files
    assert {p.parent.parent.name for p in tmp_path.rglob("*.npz")} == {"16px", "24px"}
    one = PairDataset(_source(), t, crop_size=24, crops_per_image=3, cache_dir=tmp_path)
    assert torch.allclose(one[4][0], x24, atol=1e-3) and one.cache_hits == 1
    with pytest.raises(ValueError, match="distinct"):
        PairDataset(_source(), t, crop_size=[16, 16])
    assert PairDataset(_source(), t, crop_size=(16, 24)).crop_sizes == [16, 24]  # a tuple lists sides too


def test_grouped_batches_stay_in_one_group_and_one_group_is_the_old_stream():
    s = StepBatchSampler(30, 5, seed=1, start_step=0, total_steps=40, groups=3)
    groups = [{i // 10 for i in b} for b in s]
    assert all(len(g) == 1 for g in groups)  # a batch never mixes crop sizes
    assert {next(iter(g)) for g in groups} == {0, 1, 2}  # every size is used
    assert list(StepBatchSampler(30, 5, 1, 0, 40, groups=1)) == list(StepBatchSampler(30, 5, 1, 0, 40))
    with pytest.raises(ValueError, match="equal groups"):
        StepBatchSampler(31, 5, 1, 0, 4, groups=3)


def test_a_full_disk_costs_the_cache_not_the_run(tmp_path, monkeypatch):
    import errno

    import distill.data.pairs as pairs_mod

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pairs_mod, "atomic_write", full)
    t = GammaCurve(0.5)
    ds = PairDataset(_source(), t, crop_size=16, crops_per_image=2, cache_dir=tmp_path)
    with pytest.warns(RuntimeWarning, match="No space left"):
        x, y = ds[1]
    assert torch.allclose(y, t(x[None])[0])  # the pair is still served
    x2, _ = ds[2]  # and the next one, warned about once only
    assert x2.shape == (3, 16, 16) and ds.cache.write_failed and not list(tmp_path.rglob("*.npz"))


def test_crop_shape_spellings():
    from distill.data.pairs import crop_shape

    assert crop_shape(320) == crop_shape("320") == crop_shape(320.0) == (320, 320)
    assert crop_shape("427x640") == crop_shape(" 427 X 640 ") == (427, 640)
    for bad in ("abc", "3x4x5", "x640", True, 32.5, [427, 640]):
        with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
            crop_shape(bad)


def test_rectangular_boxes_keep_their_shape_and_share_the_seeded_draws():
    for seed in range(20):
        sq = draw_augment(300, 500, np.random.default_rng(seed), (0.5, 1.0), True, 1.0)
        r = draw_augment(300, 500, np.random.default_rng(seed), (0.5, 1.0), True, 1.0, aspect=(2, 3))
        bh, bw = r.box
        assert abs(bw / bh - 1.5) < 0.02 and r.y0 + bh <= 300 and r.x0 + bw <= 500
        assert 0.5 * 300 - 1 <= bh <= 300  # a fraction of the largest 2:3 box (300x450)
        assert r.rot90 in (0, 2) and r.rot90 == sq.rot90 // 2 * 2
        assert (r.flip, r.gain) == (sq.flip, sq.gain) and r.key() != sq.key() and r.key().endswith(f"_w{bw}")
    # a box wider than the image is cut to its width
    assert draw_augment(100, 120, np.random.default_rng(0), (1.0, 1.0), False, aspect=(1, 4)).box == (30, 120)


def test_apply_augment_rectangle_known_answer():
    img = np.random.default_rng(3).random((30, 40, 3), dtype=np.float32)
    out = apply_augment(img, Augment(5, 7, 20, 2, True, 1.0, side_w=30), "20x30")
    assert np.array_equal(out, np.rot90(img[5:25, 7:37], 2)[:, ::-1])
    with pytest.raises(ValueError, match="quarter turn"):
        apply_augment(img, Augment(0, 0, 20, 1, False, 1.0, side_w=30), (20, 30))


def test_rectangular_crop_sizes_make_rectangular_pairs(tmp_path):
    t = GammaCurve(0.5)
    ds = PairDataset(_source(), t, crop_size=["16x24", 16], crops_per_image=3, cache_dir=tmp_path)
    assert ds.crop_sizes == ["16x24", 16] and len(ds) == 12
    x, y = ds[2]
    assert x.shape == (3, 16, 24) and torch.allclose(y, t(x[None])[0])
    assert ds[6 + 2][0].shape == (3, 16, 16)
    assert {p.parent.parent.name for p in tmp_path.rglob("*.npz")} == {"16x24px", "16px"}
    again = PairDataset(_source(), t, crop_size="16x24", crops_per_image=3, cache_dir=tmp_path)
    assert torch.allclose(again[2][0], x, atol=1e-3) and again.cache_hits == 1
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        PairDataset(_source(), t, crop_size="16by24")
    with pytest.raises(ValueError, match="distinct"):
        PairDataset(_source(), t, crop_size=["16x24", "16X24"])


def _gamma_in_place(img):
    img **= 0.8  # edits its argument, as careless NumPy code does
    return img


@pytest.mark.parametrize("space", ["srgb", "linear", "hdr"])
def test_pair_keeps_the_input_as_it_was_before_a_teacher_that_edits_it(space, tmp_path):
    # The pair stream hands over crops in channels-last memory (HxWx3 arrays permuted), where a NumPy view
    # of the batch is already contiguous: a teacher writing into it used to turn x into y (identity pairs,
    # loss 0, "inf dB", a passing report).
    from distill.core.color import to_space
    from distill.data.pairs import image_pair
    from teachers.python import PythonTeacher

    src = _source(1)
    t = PythonTeacher(_gamma_in_place, name="inplace", input_space=space, output_space=space)
    ds = PairDataset(src, t, crop_size=24, crops_per_image=2, cache_dir=tmp_path)
    x, y = ds[0]
    want = to_space(torch.from_numpy(apply_augment(src[0].linear, ds.augment_for(0), 24)).permute(2, 0, 1)[None],
                    space)[0]
    assert torch.equal(x, want)
    assert float((x - y).abs().max()) > 1e-3
    cx, cy = ds.cache.load(src[0].content_hash(), ds.augment_for(0).key())  # the cache holds the same
    assert np.abs(cx - want.numpy()).max() < 2e-3 and np.abs(cx - cy).max() > 1e-3
    xi, yi = image_pair(t, src[0].linear)  # whole images (validation, reports) too
    assert torch.equal(xi, to_space(torch.from_numpy(src[0].linear).permute(2, 0, 1)[None], space))
    assert float((xi - yi).abs().max()) > 1e-3


def test_pair_input_is_kept_even_for_a_protocol_teacher_that_writes_into_its_argument():
    class Raw:
        name, input_space, output_space = "raw_inplace", "srgb", "srgb"

        def params(self):
            return {}

        def __call__(self, images):
            return images.mul_(0.5)

    x, y = PairDataset(_source(1), Raw(), crop_size=24, crops_per_image=1)[0]
    assert torch.allclose(y, x * 0.5)


class _Scaled(GammaCurve):
    """Passes the 64x64 probe (output in [0, 1] there), returns 0..255 on anything larger: a real crop."""

    def __init__(self, scale=255.0, space="srgb"):
        super().__init__()
        self.scale, self.output_space = scale, space

    def __call__(self, images):
        y = super().__call__(images)
        return y * self.scale if images.shape[-1] > 64 or images.shape[-2] > 64 else y


def test_every_pair_is_range_checked_and_the_stop_names_the_teacher_and_the_range():
    from distill.data.pairs import image_pair

    src = _source(1, 80, 100)
    with pytest.raises(ValueError, match=r"teacher 'gamma_curve'.*values in \[.*, 2\d\d.*\] for crop .* of image 'img0'.*'srgb'.*0\.\.255"):
        PairDataset(src, _Scaled(), crop_size=72, crops_per_image=1)[0]
    with pytest.raises(ValueError, match=r"teacher 'gamma_curve'.*values in \[.*, 2\d\d.*\] for a whole image"):
        image_pair(_Scaled(), src[0].linear)
    with pytest.raises(ValueError, match=r"teacher 'gamma_curve'.*values in \[-1\.99.*'hdr' allows >= -0.05"):
        PairDataset(src, _Scaled(-2.0, "hdr"), crop_size=72, crops_per_image=1)[0]
    # hdr outputs may be large; LDR outputs within the validation slack pass as they are
    assert float(PairDataset(src, _Scaled(60.0, "hdr"), crop_size=72, crops_per_image=1)[0][1].max()) > 1
    assert float(PairDataset(src, _Scaled(1.04), crop_size=72, crops_per_image=1)[0][1].max()) > 1


def test_make_pair_input_is_checked_for_nan_too():
    class Paired(GammaCurve):
        def make_pair(self, images):
            return images * float("nan"), images

    with pytest.raises(ValueError, match="NaN"):
        PairDataset(_source(), Paired(), crop_size=16, crops_per_image=1)[0]


def test_a_crop_size_far_above_the_image_warns_once():
    ds = PairDataset(_source(1, 40, 50), GammaCurve(), crop_size=400, crops_per_image=2, scale_range=(0.5, 1.0))
    with pytest.warns(UserWarning, match=r"crop_size 400 .* image 'img0' .*upsampl"):
        ds[0]
    import warnings as w

    with w.catch_warnings():
        w.simplefilter("error")
        ds[1]  # once per image, not per crop
    with w.catch_warnings():
        w.simplefilter("error")
        PairDataset(_source(1, 40, 50), GammaCurve(), crop_size=32, crops_per_image=1)[0]
