#!/usr/bin/env python3
"""A tiny stand-in for an external image tool: ``python my_tool.py [--strength S] IN OUT``.

It reads an 8- or 16-bit RGB PNG/TIFF, applies a "cross-process" look (per-channel tone curves: an
S-curve on red and green, lifted blacks and compressed highlights on blue, then a saturation boost), and
writes the result with the input's bit depth. It knows nothing about hdr-distill; the command teacher
runs it once per image:

    hdr-distill train teacher=command "teacher.cmd='python examples/my_tool.py --strength 0.8 {in} {out}'"
    hdr-distill train --config-dir examples teacher=my_tool
"""
import argparse
import sys

import cv2
import numpy as np


def cross_process(rgb: np.ndarray, strength: float) -> np.ndarray:
    """HxWx3 float32 RGB in [0, 1] -> the same, with the look applied at ``strength`` (0: identity)."""
    s = rgb * rgb * (3 - 2 * rgb)  # smoothstep S-curve
    look = np.empty_like(rgb)
    look[..., 0] = s[..., 0]
    look[..., 1] = 0.5 * (rgb[..., 1] + s[..., 1])
    look[..., 2] = 0.12 + 0.76 * rgb[..., 2]  # lifted blacks, compressed highlights
    grey = look.mean(-1, keepdims=True)
    look = grey + 1.2 * (look - grey)  # saturation boost
    return np.clip(rgb + strength * (look - rgb), 0.0, 1.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--strength", type=float, default=1.0)
    args = ap.parse_args(argv)
    img = cv2.imread(args.input, cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 3 or img.dtype not in (np.uint8, np.uint16):
        print(f"my_tool: {args.input}: expected an 8/16-bit RGB image", file=sys.stderr)
        return 2
    top = np.iinfo(img.dtype).max
    rgb = img[..., ::-1].astype(np.float32) / top  # OpenCV reads BGR
    out = cross_process(rgb, args.strength)
    ok = cv2.imwrite(args.output, np.rint(out[..., ::-1] * top).astype(img.dtype))
    if not ok:
        print(f"my_tool: cannot write {args.output}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
