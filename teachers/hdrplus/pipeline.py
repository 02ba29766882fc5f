"""The HDR+ teacher: synthesise (or read) a raw burst, align, merge, finish.

``HdrPlus`` follows the Teacher protocol of ``distill.core.protocols`` (linear RGB in, display sRGB out). Since
a student sees only one frame, the pair stream uses ``make_pair``: the input ``x`` is the burst's reference
frame developed linearly (white balance, demosaic, colour matrix, no tone curve), the target ``y`` is the
whole pipeline's output, as in the HDRNet paper's HDR+ experiment.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from distill.core.protocols import check_images
from teachers.hdrplus.align import AlignParams, align_burst, bin_grey
from teachers.hdrplus.burst import Burst, content_seed, estimate_noise_model, synthesize_burst
from teachers.hdrplus.finish import FinishParams, develop_linear, finish
from teachers.hdrplus.merge import from_planes, merge_planes, pad_planes, to_planes


class HdrPlus:
    """HDR+-style burst pipeline teacher (Hasinoff et al. 2016, IPOL 2021 defaults).

    Args:
        n_frames: frames per synthesised burst.
        iso: ISO-like noise level of synthesised bursts (see ``burst.iso_noise``).
        max_shift, max_rotation_deg, local_motion: hand-shake and scene motion of synthesised bursts.
        exposure: scene scale before capture (HDR+ underexposes; 1 keeps the source exposure).
        seed: salt mixed into the content-derived seed (same image + same seed -> same burst).
        factors, tile_sizes, search_radii, distances, subpixels: alignment pyramid (``AlignParams``).
        temporal_factor, spatial_factor: merge robustness and spatial denoising strength (``merge_planes``).
        tone_gain, fusion_sigma, sharpen_amount, sharpen_sigma: finishing (``FinishParams``).
    """

    name = "hdrplus"
    input_space = "linear"
    output_space = "srgb"

    def __init__(
        self,
        n_frames: int = 8,
        iso: float = 400.0,
        max_shift: float = 4.0,
        max_rotation_deg: float = 0.3,
        local_motion: float = 0.5,
        exposure: float = 1.0,
        seed: int = 0,
        factors: tuple[int, ...] = (1, 2, 4, 4),
        tile_sizes: tuple[int, ...] = (16, 16, 16, 8),
        search_radii: tuple[int, ...] = (1, 4, 4, 4),
        distances: tuple[str, ...] = ("L1", "L2", "L2", "L2"),
        subpixels: tuple[bool, ...] = (False, True, True, True),
        temporal_factor: float = 8.0,
        spatial_factor: float = 1.0,
        tone_gain: float = 4.0,
        fusion_sigma: float = 0.2,
        sharpen_amount: float = 0.3,
        sharpen_sigma: float = 1.0,
    ) -> None:
        if n_frames < 1:
            raise ValueError(f"HdrPlus: n_frames must be >= 1, got {n_frames}")
        if iso <= 0 or exposure <= 0:
            raise ValueError(f"HdrPlus: iso and exposure must be > 0, got iso={iso}, exposure={exposure}")
        if temporal_factor < 0 or spatial_factor < 0:
            raise ValueError("HdrPlus: temporal_factor and spatial_factor must be >= 0")
        self.n_frames, self.iso, self.exposure, self.seed = int(n_frames), float(iso), float(exposure), int(seed)
        self.max_shift, self.max_rotation_deg, self.local_motion = max_shift, max_rotation_deg, local_motion
        self.align_params = AlignParams(
            tuple(factors), tuple(tile_sizes), tuple(search_radii), tuple(distances), tuple(subpixels)
        )
        self.temporal_factor, self.spatial_factor = float(temporal_factor), float(spatial_factor)
        self.finish_params = FinishParams(tone_gain, fusion_sigma, sharpen_amount, sharpen_sigma)

    # ----------------------------------------------------------------------------------------- identity
    def params(self) -> dict[str, Any]:
        return {
            "n_frames": self.n_frames,
            "iso": self.iso,
            "max_shift": self.max_shift,
            "max_rotation_deg": self.max_rotation_deg,
            "local_motion": self.local_motion,
            "exposure": self.exposure,
            "seed": self.seed,
            **{k: list(v) for k, v in asdict(self.align_params).items()},
            "merge_tile": self.align_params.tile_sizes[0],
            "temporal_factor": self.temporal_factor,
            "spatial_factor": self.spatial_factor,
            **asdict(self.finish_params),
        }

    def __repr__(self) -> str:
        return f"HdrPlus({self.params()})"

    # ------------------------------------------------------------------------------------------ bursts
    def synthesize(self, linear_rgb: np.ndarray) -> Burst:
        """The burst this teacher simulates for a clean linear image [H, W, 3] (H, W even)."""
        return synthesize_burst(
            linear_rgb,
            n_frames=self.n_frames,
            seed=content_seed(linear_rgb, self.seed),
            iso=self.iso,
            max_shift=self.max_shift,
            max_rotation_deg=self.max_rotation_deg,
            local_motion=self.local_motion,
            exposure=self.exposure,
        )

    def merge_burst(self, burst: Burst) -> np.ndarray:
        """Align and merge: the burst -> one denoised normalised Bayer mosaic [H, W] float32."""
        tile = self.align_params.tile_sizes[0]
        norm = burst.normalized()  # [N, H, W], black level 0, white level 1
        planes = to_planes(norm)  # [N, 4, H/2, W/2]
        padded, (top, bottom, left, right) = pad_planes(planes, tile)
        noise = burst.noise_model or estimate_noise_model(norm[burst.ref_index])
        # align on the 2x2-binned grey image; level-0 tiles are the merge tiles
        disp = align_burst(bin_grey(padded), burst.ref_index, self.align_params)  # [N, ny, nx, 2]
        merged = merge_planes(
            padded, disp, burst.ref_index, noise, tile, self.temporal_factor, self.spatial_factor
        )  # [4, Hp, Wp]
        h, w = planes.shape[-2:]
        return from_planes(merged[:, top : top + h, left : left + w])

    def process_burst(self, burst: Burst) -> np.ndarray:
        """The whole pipeline: burst -> display sRGB [H, W, 3] float32 in [0, 1]."""
        merged = self.merge_burst(burst)
        return finish(merged, burst.cfa_pattern, burst.wb_gains, burst.rgb_from_cam(), self.finish_params)

    def bench_callable(self, linear_rgb: np.ndarray):
        """For ``hdr-distill bench``: synthesise the burst once, time align + merge + finish only."""
        burst = self.synthesize(linear_rgb)
        return lambda: self.process_burst(burst)

    @staticmethod
    def reference_linear(burst: Burst) -> np.ndarray:
        """The reference frame developed linearly (no merge, no tone curve): linear sRGB [H, W, 3] in [0, 1]."""
        ref = burst.normalized(burst.ref_index)
        return develop_linear(ref, burst.cfa_pattern, burst.wb_gains, burst.rgb_from_cam())

    # ----------------------------------------------------------------------------------------- batches
    def _pair_np(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Bayer mosaics need even sizes: reflect-pad odd images by one pixel, crop the results back
        h, w = image.shape[:2]
        padded = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
        burst = self.synthesize(padded)
        return self.reference_linear(burst)[:h, :w], self.process_burst(burst)[:h, :w]

    def make_pair(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Student input and teacher target for a batch of clean linear images.

        Args:
            images: [B, 3, H, W] float linear RGB in [0, 1].
        Returns:
            (x, y): x [B, 3, H, W] the reference frame developed linearly (linear RGB, noisy);
            y [B, 3, H, W] the pipeline's display sRGB. float32, on the input's device.
        """
        check_images(images, f"teacher '{self.name}'")
        if min(images.shape[-2:]) < 4:
            raise ValueError(f"teacher 'hdrplus': images must be at least 4x4, got {tuple(images.shape)}")
        arr = images.detach().to("cpu", torch.float32).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        xs, ys = zip(*(self._pair_np(np.ascontiguousarray(img)) for img in arr))

        def stack(items: tuple[np.ndarray, ...]) -> torch.Tensor:
            return torch.from_numpy(np.stack(items)).permute(0, 3, 1, 2).contiguous().to(images.device)

        return stack(xs), stack(ys)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Teacher protocol: the pipeline output for a burst synthesised from each image, [B, 3, H, W] sRGB."""
        return self.make_pair(images)[1]
