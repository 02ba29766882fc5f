"""Raw bursts for the HDR+ teacher: the ``Burst`` container, synthesis from a clean linear image, DNG I/O.

A burst is N Bayer mosaics of one scene plus the metadata a DNG carries (CFA pattern, black/white levels,
white balance, colour matrix, noise profile). Frames are kept as raw digital numbers; ``normalized()``
maps them to [0, 1] sensor units (black -> 0, white -> 1), which is the space the noise model lives in.

Synthesis follows the physical order: the scene moves (global sub-pixel translation + rotation, and a
smooth local flow), the sensor sees it through the camera's colour response and channel sensitivities,
samples it through the colour filter array, adds Poisson-Gaussian noise, and quantises between the black
and white levels.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from teachers.hdrplus.finish import black_white_level

# CIE XYZ (D65) <-> linear sRGB (IEC 61966-2-1).
XYZ_FROM_SRGB = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
SRGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_SRGB)

# The synthetic camera: how its R, G, B filters mix the scene's linear sRGB (rows sum to 1, so a white
# object is neutral after white balance), and the channel sensitivities that white balance undoes.
SYNTH_CAM_FROM_SRGB = np.array([[0.75, 0.20, 0.05], [0.10, 0.80, 0.10], [0.02, 0.18, 0.80]])
SYNTH_WB_GAINS = np.array([2.0, 1.0, 1.6])

BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


def iso_noise(iso: float) -> tuple[float, float]:
    """Poisson-Gaussian noise at an ISO-like gain, in [0, 1] sensor units: ``var(x) = shot * x + read``.

    The ISO-100 baseline (shot 3.24e-4, read 4.3e-6) is the IPOL article's average over phone DNGs that
    carry a NoiseProfile tag; the shot coefficient scales with the analogue gain (ISO / 100) and the read
    variance with its square, as in that article.
    """
    if iso <= 0:
        raise ValueError(f"iso must be > 0, got {iso}")
    gain = iso / 100.0
    return 3.24e-4 * gain, 4.3e-6 * gain**2


@dataclass
class Burst:
    """N raw Bayer frames of one scene and the metadata needed to develop them.

    Attributes:
        frames: [N, H, W] raw digital numbers (uint16 or float), H and W even.
        cfa_pattern: colour of the 2x2 CFA cell read row by row, one of RGGB, BGGR, GRBG, GBRG.
        black_level: [4] black level per CFA position (same order as ``cfa_pattern``).
        white_level: saturation level (digital number).
        wb_gains: [3] R, G, B white-balance multipliers (green = 1), i.e. 1 / AsShotNeutral.
        xyz_to_cam: [3, 3] DNG ColorMatrix1: CIE XYZ (D65) -> camera native RGB.
        noise_model: (shot, read): variance of a normalised raw value x is ``shot * x + read``; None if
            unknown (the pipeline then estimates it from the reference frame).
        ref_index: which frame the others are aligned to.
    """

    frames: np.ndarray
    cfa_pattern: str = "RGGB"
    black_level: np.ndarray = field(default_factory=lambda: np.zeros(4))
    white_level: float = 65535.0
    wb_gains: np.ndarray = field(default_factory=lambda: np.ones(3))
    xyz_to_cam: np.ndarray = field(default_factory=lambda: SRGB_FROM_XYZ.copy())
    noise_model: tuple[float, float] | None = None
    ref_index: int = 0

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames)
        if frames.ndim != 3:
            raise ValueError(f"Burst.frames: expected [N,H,W] Bayer mosaics, got shape {frames.shape}")
        n, h, w = frames.shape
        if n < 1 or h < 4 or w < 4 or h % 2 or w % 2:
            raise ValueError(f"Burst.frames: need N>=1 frames of even H, W >= 4, got shape {frames.shape}")
        if self.cfa_pattern not in BAYER_PATTERNS:
            raise ValueError(f"Burst.cfa_pattern: expected one of {BAYER_PATTERNS}, got {self.cfa_pattern!r}")
        black = np.broadcast_to(np.asarray(self.black_level, dtype=np.float64).ravel(), (4,)).copy()
        if not np.all(black < self.white_level):
            raise ValueError(f"Burst: black level {black} must be below white level {self.white_level}")
        wb = np.asarray(self.wb_gains, dtype=np.float64).ravel()
        if wb.shape != (3,) or not np.all(wb > 0) or not np.all(np.isfinite(wb)):
            raise ValueError(f"Burst.wb_gains: expected 3 positive finite gains, got {wb}")
        cm = np.asarray(self.xyz_to_cam, dtype=np.float64)
        if cm.shape != (3, 3) or not np.all(np.isfinite(cm)) or abs(np.linalg.det(cm)) < 1e-12:
            raise ValueError(f"Burst.xyz_to_cam: expected an invertible 3x3 matrix, got {cm.tolist()}")
        if not 0 <= self.ref_index < n:
            raise ValueError(f"Burst.ref_index: {self.ref_index} is out of range for {n} frames")
        if self.noise_model is not None:
            shot, read = (float(v) for v in self.noise_model)
            if shot < 0 or read < 0:
                raise ValueError(f"Burst.noise_model: (shot, read) must be >= 0, got {self.noise_model}")
            self.noise_model = (shot, read)
        self.frames, self.black_level, self.wb_gains, self.xyz_to_cam = frames, black, wb / wb[1], cm
        self.white_level = float(self.white_level)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    def channel_of_position(self) -> np.ndarray:
        """[4] index (0=R, 1=G, 2=B) of each CFA position (0,0), (0,1), (1,0), (1,1)."""
        return np.array(["RGB".index(c) for c in self.cfa_pattern])

    def normalized(self, index: int | None = None) -> np.ndarray:
        """Frames in [0, 1] sensor units (black -> 0, white -> 1), float32; [N,H,W], or [H,W] for one index.

        This is the DNG "BlackLevel / WhiteLevel" linearisation, per CFA position.
        """
        raw = self.frames if index is None else self.frames[index]
        return black_white_level(raw, self.black_level, self.white_level)

    def rgb_from_cam(self) -> np.ndarray:
        """[3, 3] white-balanced camera RGB -> linear sRGB, from ColorMatrix1 the way dcraw/LibRaw do it.

        cam_rgb = ColorMatrix1 @ XYZ_from_sRGB, each row scaled to sum to 1 (so that white-balanced white
        stays white), then inverted.
        """
        cam_rgb = self.xyz_to_cam @ XYZ_FROM_SRGB
        cam_rgb = cam_rgb / cam_rgb.sum(axis=1, keepdims=True)
        return np.linalg.inv(cam_rgb)


# ---------------------------------------------------------------------------------------------------------
# Synthesis
# ---------------------------------------------------------------------------------------------------------


def estimate_noise_model(frame: np.ndarray, block: int = 8) -> tuple[float, float]:
    """Fit ``var = shot * x + read`` to a normalised Bayer frame (for DNGs without a NoiseProfile).

    Per Bayer plane, the residual of a 3x3 box filter (variance 8/9 sigma^2 for white noise) is measured in
    ``block x block`` blocks; in each of (up to) 16 brightness bins the 10th percentile of the block variances is
    taken (blocks of texture only ever add variance), and a line is fitted through those points.
    """
    frame = np.asarray(frame, np.float32)
    means, variances = [], []
    for dy in (0, 1):
        for dx in (0, 1):
            plane = np.ascontiguousarray(frame[dy::2, dx::2])
            resid = plane - cv2.blur(plane, (3, 3), borderType=cv2.BORDER_REFLECT_101)
            h, w = (plane.shape[0] // block) * block, (plane.shape[1] // block) * block
            shape = (h // block, block, w // block, block)
            means.append(plane[:h, :w].reshape(shape).mean(axis=(1, 3)).ravel())
            variances.append(resid[:h, :w].reshape(shape).var(axis=(1, 3)).ravel() * (9.0 / 8.0))
    mu, var = np.concatenate(means), np.concatenate(variances)
    if mu.size < 16:
        raise ValueError(f"estimate_noise_model: frame {frame.shape} too small to estimate noise")
    n_bins = max(2, min(16, mu.size // 16))
    edges = np.quantile(mu, np.linspace(0, 1, n_bins + 1))
    xs, ys = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (mu >= lo) & (mu <= hi) & (mu < 0.95)  # clipped highlights carry no noise
        if sel.sum() >= 4:
            xs.append(mu[sel].mean())
            ys.append(np.percentile(var[sel], 10) / 0.8)  # 10th pct of a chi2(63)/63 is ~0.8
    if len(xs) < 2:
        raise ValueError("estimate_noise_model: not enough unclipped blocks to fit a noise curve")
    shot, read = np.polyfit(np.asarray(xs), np.asarray(ys), 1)
    if shot < 0:  # a flat scene cannot separate the two terms; fall back to a constant variance
        shot, read = 0.0, float(np.median(ys))
    return float(max(shot, 0.0)), float(max(read, 1e-10))


def content_seed(image: np.ndarray, salt: int = 0) -> int:
    """A seed derived from the image content, so that the same image always gets the same burst."""
    img = np.ascontiguousarray(np.asarray(image, dtype=np.float32)[::3, ::3])
    digest = hashlib.sha256(img.tobytes() + str((image.shape, salt)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFFFFFF


def mosaic(rgb: np.ndarray, pattern: str = "RGGB") -> np.ndarray:
    """Sample an [H,W,3] image through a Bayer CFA -> [H,W] (H, W even)."""
    out = np.empty(rgb.shape[:2], dtype=rgb.dtype)
    for k, c in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "RGB".index(c)]
    return out


def _motion_maps(
    h: int, w: int, rng: np.random.Generator, shift: tuple[float, float], angle_deg: float, local_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps for cv2.remap: frame(p) = scene(p + m(p)), m = global rigid motion + smooth local flow."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    a = np.deg2rad(angle_deg)
    # global: rotation about the centre, then translation (hand shake)
    map_x = cx + np.cos(a) * (xx - cx) - np.sin(a) * (yy - cy) + shift[1]
    map_y = cy + np.sin(a) * (xx - cx) + np.cos(a) * (yy - cy) + shift[0]
    if local_px > 0:
        # local: a random low-frequency flow (things in the scene moving a little), amplitude ~local_px
        grid = rng.normal(0.0, local_px, size=(2, 4, 4)).astype(np.float32)
        map_x += cv2.resize(grid[1], (w, h), interpolation=cv2.INTER_CUBIC)
        map_y += cv2.resize(grid[0], (w, h), interpolation=cv2.INTER_CUBIC)
    return map_x.astype(np.float32), map_y.astype(np.float32)


def synthesize_burst(
    linear_rgb: np.ndarray,
    n_frames: int = 8,
    seed: int | None = None,
    iso: float = 400.0,
    noise_model: tuple[float, float] | None = None,
    max_shift: float = 4.0,
    max_rotation_deg: float = 0.3,
    local_motion: float = 0.5,
    shifts: Sequence[tuple[float, float]] | None = None,
    exposure: float = 1.0,
    cfa_pattern: str = "RGGB",
    black_level: int = 256,
    white_level: int = 4095,
    ref_index: int = 0,
) -> Burst:
    """Simulate a handheld raw burst of a clean linear sRGB image.

    Args:
        linear_rgb: [H,W,3] float scene-linear sRGB, nominally [0, 1]; H, W even.
        n_frames: frames in the burst (HDR+ uses 2-8; IPOL's experiments use 8-ish).
        seed: RNG seed; None derives it from the image content (deterministic pairs).
        iso: ISO-like gain setting the Poisson-Gaussian noise (see ``iso_noise``); ignored if
            ``noise_model`` is given.
        noise_model: explicit (shot, read) variance coefficients in [0, 1] sensor units.
        max_shift: global translation of each non-reference frame, uniform in [-max_shift, max_shift]
            pixels per axis (sub-pixel).
        max_rotation_deg: global rotation, uniform in +-max_rotation_deg.
        local_motion: standard deviation (pixels) of a smooth random local flow per frame.
        shifts: explicit [N] (dy, dx) global translations (pixels) overriding the random ones; used by
            tests to plant a known motion. Frame z then shows ``scene(p + shifts[z])``.
        exposure: multiplies the scene before capture (< 1 underexposes, as HDR+ does).
        cfa_pattern, black_level, white_level: sensor layout and levels (12-bit by default).
        ref_index: the reference frame; it gets no motion.

    Returns:
        A ``Burst`` of uint16 frames with the metadata a DNG would carry.
    """
    img = np.asarray(linear_rgb, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"synthesize_burst: linear_rgb must be [H,W,3], got shape {img.shape}")
    h, w = img.shape[:2]
    if h % 2 or w % 2 or h < 4 or w < 4:
        raise ValueError(f"synthesize_burst: H and W must be even and >= 4, got {h}x{w}")
    if not np.all(np.isfinite(img)):
        raise ValueError("synthesize_burst: linear_rgb contains NaN or Inf")
    if n_frames < 1:
        raise ValueError(f"synthesize_burst: n_frames must be >= 1, got {n_frames}")
    if shifts is not None and len(shifts) != n_frames:
        raise ValueError(f"synthesize_burst: got {len(shifts)} shifts for {n_frames} frames")
    if not 0 <= ref_index < n_frames:
        raise ValueError(f"synthesize_burst: ref_index {ref_index} out of range for {n_frames} frames")
    rng = np.random.default_rng(content_seed(img) if seed is None else seed)
    shot, read = iso_noise(iso) if noise_model is None else noise_model

    # camera response: colour mixing, then per-channel sensitivity (what white balance will undo)
    cam_from_srgb = (SYNTH_CAM_FROM_SRGB / SYNTH_WB_GAINS[:, None]).astype(np.float32)
    scene = np.clip(img * exposure, 0, None)

    frames = np.empty((n_frames, h, w), dtype=np.uint16)
    for z in range(n_frames):
        if shifts is not None:
            shift, angle, local = tuple(shifts[z]), 0.0, 0.0
        elif z == ref_index:
            shift, angle, local = (0.0, 0.0), 0.0, 0.0
        else:
            shift = tuple(rng.uniform(-max_shift, max_shift, size=2))
            angle, local = rng.uniform(-max_rotation_deg, max_rotation_deg), local_motion
        if shift == (0.0, 0.0) and angle == 0.0 and local == 0.0:
            moved = scene
        else:
            map_x, map_y = _motion_maps(h, w, rng, shift, angle, local)
            moved = cv2.remap(scene, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
            moved = np.clip(moved, 0, None)
        raw = mosaic(moved @ cam_from_srgb.T, cfa_pattern)  # [H,W] in [0,1] sensor units
        # Poisson-Gaussian noise: photon counts at 1/shot electrons per unit, plus Gaussian read noise
        if shot > 0:
            raw = rng.poisson(np.clip(raw, 0, None) / shot) * shot
        raw = raw + rng.normal(0.0, np.sqrt(read), size=raw.shape) if read > 0 else raw
        # quantise between the black and white levels (the sensor clips at both ends)
        dn = np.round(black_level + raw * (white_level - black_level))
        frames[z] = np.clip(dn, 0, white_level).astype(np.uint16)

    return Burst(
        frames=frames,
        cfa_pattern=cfa_pattern,
        black_level=np.full(4, float(black_level)),
        white_level=float(white_level),
        wb_gains=SYNTH_WB_GAINS.copy(),
        xyz_to_cam=(np.diag(1 / SYNTH_WB_GAINS) @ SYNTH_CAM_FROM_SRGB @ SRGB_FROM_XYZ),
        noise_model=(float(shot), float(read)),
        ref_index=ref_index,
    )


# ---------------------------------------------------------------------------------------------------------
# DNG files
# ---------------------------------------------------------------------------------------------------------

# TIFF/EP and DNG tag numbers
_CFA_REPEAT, _CFA_PATTERN = 33421, 33422
_DNG_VERSION, _DNG_BACKWARD, _CAMERA_MODEL = 50706, 50707, 50708
_BLACK_REPEAT, _BLACK_LEVEL, _WHITE_LEVEL = 50713, 50714, 50717
_COLOR_MATRIX1, _AS_SHOT_NEUTRAL, _ILLUMINANT1, _NOISE_PROFILE = 50721, 50728, 50778, 51041


def _rationals(values: Sequence[float]) -> list[int]:
    out: list[int] = []
    for v in values:
        f = Fraction(float(v)).limit_denominator(1_000_000)
        out += [f.numerator, f.denominator]
    return out


def write_dng_burst(burst: Burst, folder: str | os.PathLike, prefix: str = "frame") -> list[Path]:
    """Save each frame as a DNG (uncompressed CFA, DNG 1.4 tags) that rawpy/LibRaw can read.

    The reference frame is written first (``frame_000.dng``) so that reading the folder back in name order
    restores ``ref_index = 0``.

    Returns:
        The written paths, in burst order starting from the reference.
    """
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if burst.frames.dtype != np.uint16:
        raise ValueError(f"write_dng_burst: frames must be uint16 digital numbers, got {burst.frames.dtype}")
    order = [burst.ref_index] + [z for z in range(burst.n_frames) if z != burst.ref_index]
    cfa = tuple("RGB".index(c) for c in burst.cfa_pattern)
    neutral = 1.0 / burst.wb_gains
    tags = [
        (_DNG_VERSION, "B", 4, (1, 4, 0, 0), True),
        (_DNG_BACKWARD, "B", 4, (1, 1, 0, 0), True),
        (_CAMERA_MODEL, "s", 0, "hdr-distill synthetic", True),
        (_CFA_REPEAT, "H", 2, (2, 2), True),
        (_CFA_PATTERN, "B", 4, cfa, True),
        (_BLACK_REPEAT, "H", 2, (2, 2), True),
        (_BLACK_LEVEL, "2I", 4, _rationals(burst.black_level), True),
        (_WHITE_LEVEL, "I", 1, (int(round(burst.white_level)),), True),
        (_COLOR_MATRIX1, "2i", 9, _rationals(burst.xyz_to_cam.ravel()), True),
        (_AS_SHOT_NEUTRAL, "2I", 3, _rationals(neutral), True),
        (_ILLUMINANT1, "H", 1, (21,), True),  # D65
    ]
    if burst.noise_model is not None:
        tags.append((_NOISE_PROFILE, "d", 2, tuple(burst.noise_model), True))
    paths = []
    for k, z in enumerate(order):
        path = folder / f"{prefix}_{k:03d}.dng"
        tifffile.imwrite(path, burst.frames[z], photometric="cfa", subfiletype=0, extratags=tags)
        paths.append(path)
    return paths


def _dng_tags(path: Path) -> dict[int, object]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        # the raw image is the IFD with NewSubfileType 0 (full resolution), possibly a SubIFD
        pages = list(tif.pages) + [sub for p in tif.pages for sub in (p.pages or [])]
        tags = {}
        for page in pages:
            tags.update({t.code: t.value for t in page.tags.values()})
        return tags


def _pairs(value: object, n: int, what: str, path: Path) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).ravel()
    if arr.size == 2 * n:
        return arr[0::2] / arr[1::2]
    if arr.size == n:
        return arr
    raise ValueError(f"{path}: DNG tag {what} has {arr.size} values, expected {n}")


def read_dng_burst(source: str | os.PathLike | Sequence[str | os.PathLike], ref_index: int = 0) -> Burst:
    """Read a burst of DNG frames (a folder's ``*.dng`` in name order, or an explicit list).

    Raw data, CFA pattern, black/white levels and white balance come from rawpy (LibRaw); ColorMatrix1 and
    NoiseProfile from the DNG tags (tifffile), falling back to LibRaw's camera->sRGB matrix when
    ColorMatrix1 is absent.

    Raises:
        FileNotFoundError: no DNG files.
        ValueError: a frame is not a 2x2 Bayer mosaic, lacks white balance or a colour matrix, or differs
            from the first frame in size, CFA pattern or levels. The message names the file.
    """
    import rawpy

    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        paths = sorted(p for p in Path(source).iterdir() if p.suffix.lower() == ".dng")
        if not paths:
            raise FileNotFoundError(f"read_dng_burst: no .dng files in {source}")
    elif isinstance(source, (str, os.PathLike)):
        paths = [Path(source)]
    else:
        paths = [Path(p) for p in source]
        if not paths:
            raise FileNotFoundError("read_dng_burst: empty list of files")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"read_dng_burst: {p} does not exist")

    frames, first = [], None
    for path in paths:
        try:
            raw = rawpy.imread(str(path))
        except Exception as exc:  # LibRaw's errors do not name the file
            raise ValueError(f"{path}: not a readable raw file ({type(exc).__name__}: {exc})") from exc
        with raw:
            pattern = raw.raw_pattern
            desc = raw.color_desc.decode()
            if pattern is None or np.asarray(pattern).shape != (2, 2) or raw.num_colors != 3:
                raise ValueError(f"{path}: not a 2x2 Bayer raw (pattern {pattern}, colours {desc})")
            cfa = "".join(desc[i] for i in np.asarray(pattern).ravel())
            cfa = cfa.replace("g", "G")
            meta = {
                "size": raw.raw_image_visible.shape,
                "cfa": cfa,
                "black": np.asarray(raw.black_level_per_channel, np.float64)[np.asarray(pattern).ravel()],
                "white": float(raw.white_level),
                "wb": np.asarray(raw.camera_whitebalance[:3], np.float64),
                "rgb_cam": np.asarray(raw.color_matrix, np.float64)[:3, :3],
            }
            frames.append(raw.raw_image_visible.copy())
        if cfa not in BAYER_PATTERNS:
            raise ValueError(f"{path}: unsupported CFA pattern {cfa!r} (expected one of {BAYER_PATTERNS})")
        if first is None:
            first = meta
            first["path"] = path
            continue
        for key in ("size", "cfa", "black", "white"):
            if not np.array_equal(np.asarray(meta[key]), np.asarray(first[key])):
                raise ValueError(
                    f"{path}: {key} {meta[key]} differs from {first['path'].name}'s {first[key]}: "
                    "a burst must come from one camera setting"
                )

    assert first is not None
    path0 = first["path"]
    if not np.all(first["wb"] > 0):
        raise ValueError(f"{path0}: missing white balance (AsShotNeutral), LibRaw reports {first['wb']}")
    tags = _dng_tags(path0)
    if _COLOR_MATRIX1 in tags:
        xyz_to_cam = _pairs(tags[_COLOR_MATRIX1], 9, "ColorMatrix1", path0).reshape(3, 3)
    elif np.any(first["rgb_cam"]):
        # rgb_cam = inv(rownorm(cam_xyz @ XYZ_from_sRGB)) -> cam_xyz up to a row scale, which rownorm removes
        xyz_to_cam = np.linalg.inv(first["rgb_cam"]) @ SRGB_FROM_XYZ
    else:
        raise ValueError(f"{path0}: missing colour matrix (no ColorMatrix1 tag, LibRaw has none either)")
    noise = None
    if _NOISE_PROFILE in tags:
        prof = np.asarray(tags[_NOISE_PROFILE], np.float64).ravel()
        if prof.size < 2 or prof.size % 2:
            raise ValueError(f"{path0}: NoiseProfile has {prof.size} values, expected (S, O) pairs")
        noise = (float(prof[0::2].mean()), float(prof[1::2].mean()))
    return Burst(
        frames=np.stack(frames),
        cfa_pattern=first["cfa"],
        black_level=first["black"],
        white_level=first["white"],
        wb_gains=first["wb"] / first["wb"][1],
        xyz_to_cam=xyz_to_cam,
        noise_model=noise,
        ref_index=ref_index,
    )
