"""distill.data.sources: folder and embedded sources, content hashes, splits and the Hydra factory."""
import socket
import warnings

import cv2
import numpy as np
import pytest

from distill.core.color import srgb_to_linear
from distill.core.io import MIN_SIZE, ImageError
from distill.data.sources import (EMBEDDED_NAMES, HELDOUT_NAMES, EmbeddedSource, FolderSource, SourceImage,
                             default_split, list_image_files, make_source, split_names)


def _png(path, rng, h=20, w=24):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ------------------------------------------------------------------------------------------------------------
# SourceImage
# ------------------------------------------------------------------------------------------------------------

def test_content_hash_tracks_pixels_and_shape(rng):
    a = rng.random((16, 20, 3), dtype=np.float32)
    h = SourceImage("a", a).content_hash()
    assert h == SourceImage("other name", a.copy()).content_hash() and len(h) == 16
    b = a.copy()
    b[3, 4, 1] += 1e-6
    assert SourceImage("a", b).content_hash() != h
    assert SourceImage("a", a.reshape(20, 16, 3)).content_hash() != h  # same bytes, other shape
    assert SourceImage("a", np.asfortranarray(a)).content_hash() == h  # layout does not matter


# ------------------------------------------------------------------------------------------------------------
# Folders
# ------------------------------------------------------------------------------------------------------------

def test_list_image_files_recursive_sorted_known_extensions(tmp_path, rng):
    for rel in ["b.png", "a/z.JPG", "a/c.png", "a/deep/x.tif"]:
        _png(tmp_path / rel, rng)  # cv2 picks the encoder from the extension
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "._b.png").write_bytes(b"macOS resource fork")
    (tmp_path / ".hidden").mkdir()
    _png(tmp_path / ".hidden" / "h.png", rng)
    files = list_image_files(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a/c.png", "a/deep/x.tif", "a/z.JPG", "b.png"]
    # files and folders mixed, in the given order, no duplicates
    mixed = list_image_files([tmp_path / "b.png", tmp_path / "a", tmp_path / "a" / "c.png"])
    assert [f.name for f in mixed] == ["b.png", "c.png", "x.tif", "z.JPG"]


def test_list_image_files_errors_name_the_paths(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no image files found in .*empty"):
        list_image_files(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        list_image_files([tmp_path / "nowhere"])
    with pytest.raises(ImageError, match=r"readme\.txt: unsupported extension"):
        list_image_files(tmp_path / "empty" / "readme.txt")


def test_folder_source_reads_lazily_with_relative_names(tmp_path, rng):
    a = _png(tmp_path / "set" / "sub" / "a.png", rng)
    _png(tmp_path / "set" / "b.png", rng, h=MIN_SIZE, w=MIN_SIZE)
    src = FolderSource(str(tmp_path / "set"))
    assert len(src) == 2 and src.names == ["b.png", "sub/a.png"]
    item = src[1]
    assert item.name == "sub/a.png" and item.linear.shape == (20, 24, 3) and item.linear.dtype == np.float32
    expect = srgb_to_linear(cv2.imread(str(a))[:, :, ::-1] / 255.0)
    np.testing.assert_allclose(item.linear, expect, rtol=1e-5, atol=1e-7)
    assert item.meta["path"] == str(a) and src[-1].name == "sub/a.png"
    with pytest.raises(IndexError):
        src[2]
    _png(a, rng)  # lazy: the file is read on access, not at construction
    assert src[1].content_hash() != item.content_hash()
    assert len(FolderSource(tmp_path / "set", max_images=1)) == 1
    assert [s.name for s in src] == ["b.png", "sub/a.png"]


def test_folder_source_skip_bad(tmp_path, rng):
    _png(tmp_path / "a.png", rng)
    (tmp_path / "b.png").write_text("not a png")
    _png(tmp_path / "c.png", rng, h=8, w=8)  # too small
    _png(tmp_path / "d.png", rng)
    strict = FolderSource(tmp_path)
    with pytest.raises(ImageError, match=r"b\.png"):
        strict[1]
    src = FolderSource(tmp_path, skip_bad=True)
    assert len(src) == 4
    with pytest.warns(UserWarning) as caught:
        assert src[1].name == "d.png"  # the next readable image stands in
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and "b.png: cannot decode" in messages[0] and "c.png: image is 8x8" in messages[1]
    assert set(p.name for p in src.bad) == {"b.png", "c.png"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # each bad file is reported once
        assert [s.name for s in src] == ["a.png", "d.png"]
    with pytest.warns(UserWarning) as caught:  # iteration alone skips them too
        assert [s.name for s in FolderSource(tmp_path, skip_bad=True)] == ["a.png", "d.png"]
    assert len(caught) == 2 and "minimum is 16" in str(caught[1].message)


def test_folder_source_all_bad(tmp_path):
    (tmp_path / "x.png").write_text("nope")
    with pytest.warns(UserWarning), pytest.raises(ImageError, match="none of the 1 files could be read"):
        FolderSource(tmp_path, skip_bad=True)[0]


# ------------------------------------------------------------------------------------------------------------
# The embedded sample set
# ------------------------------------------------------------------------------------------------------------

def test_embedded_source_loads_every_name_offline(no_network):
    src = EmbeddedSource()
    assert src.names == list(EMBEDDED_NAMES) and len(EMBEDDED_NAMES) >= 8
    hashes = set()
    for item in src:
        img = item.linear
        assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] == 3, item.name
        assert min(img.shape[:2]) >= 256 and img.flags["C_CONTIGUOUS"], item.name
        assert 0 <= img.min() and img.max() <= 1 and img.std() > 0.02, item.name
        assert np.abs(img[..., 0] - img[..., 2]).mean() > 1e-3, f"{item.name} looks grey"
        assert item.meta["color_space"] == "srgb" and item.meta["bit_depth"] == 8
        hashes.add(item.content_hash())
    assert len(hashes) == len(EMBEDDED_NAMES)


def test_embedded_values_are_srgb_decoded():
    import skimage.data

    astro = EmbeddedSource(names=["astronaut"])[0].linear
    np.testing.assert_allclose(astro, srgb_to_linear(skimage.data.astronaut() / 255.0), rtol=1e-5, atol=1e-7)
    left = skimage.data.stereo_motorcycle()[0]
    assert EmbeddedSource(names=["stereo_motorcycle"])[0].linear.shape == left.shape


def test_embedded_names_exclude_and_errors():
    src = EmbeddedSource(names=["rocket", "coffee", "rocket"], exclude=["coffee"])
    assert src.names == ["rocket"] and src[0].name == "rocket"
    with pytest.raises(ValueError, match=r"unknown image name\(s\) \['lena'\]"):
        EmbeddedSource(names=["lena"])
    with pytest.raises(ValueError, match="unknown name.*in exclude"):
        EmbeddedSource(exclude=["cofee"])
    with pytest.raises(ValueError, match="no images left"):
        EmbeddedSource(names=["coffee"], exclude=["coffee"])


def test_default_split_is_fixed_and_disjoint():
    train, held = default_split()
    assert held == list(HELDOUT_NAMES) == ["coffee", "rocket"]
    assert not set(train) & set(held) and set(train) | set(held) == set(EMBEDDED_NAMES)
    assert EmbeddedSource(exclude=held).names == train


def test_split_names_seeded():
    names = [f"img{i}" for i in range(10)]
    t1, v1 = split_names(names, 3, seed=7)
    assert (t1, v1) == split_names(names, 3, seed=7)
    assert len(v1) == 3 and sorted(t1 + v1) == sorted(names)
    assert v1 == [n for n in names if n in v1]  # keeps input order
    assert any(split_names(names, 3, seed=s)[1] != v1 for s in range(8))
    with pytest.raises(ValueError, match="n_val"):
        split_names(names, 10)


# ------------------------------------------------------------------------------------------------------------
# Factory (what Hydra configs call)
# ------------------------------------------------------------------------------------------------------------

def test_make_source_from_config_path_and_name(tmp_path, rng):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"_target_": "distill.data.sources.EmbeddedSource", "names": None,
                            "exclude": ["coffee", "rocket"]})
    src = make_source(cfg)
    assert isinstance(src, EmbeddedSource) and src.names == default_split()[0]
    assert make_source({"_target_": "distill.data.sources.EmbeddedSource", "names": ["coffee"]}).names == ["coffee"]
    _png(tmp_path / "a.png", rng)
    folder = make_source(OmegaConf.create({"_target_": "distill.data.sources.FolderSource",
                                           "paths": [str(tmp_path)], "skip_bad": True}))
    assert isinstance(folder, FolderSource) and folder.names == ["a.png"]
    assert make_source(str(tmp_path)).names == ["a.png"]
    assert make_source([tmp_path / "a.png"]).names == ["a.png"]
    assert make_source("embedded").names == list(EMBEDDED_NAMES)
    assert make_source(folder) is folder
    with pytest.raises(ValueError, match="_target_"):
        make_source({"names": ["coffee"]})
