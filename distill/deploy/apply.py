"""Run a trained student over a folder of images: ``hdr-distill apply checkpoint=... input=... output=...``.

Per image:

    file --read_image_raw--> stored pixels (uint8/uint16 display values, or float32 linear)
         --teacher's input space, as training made it--> x [H,W,3]
         --student (FastStudent: C++ low-res copy + network + fused guide/slice/apply; torch on CUDA)--> y
         --teacher's output space -> the file's encoding--> output file (atomic write)

Input space, exactly as the pair stream (distill.data.pairs) built the student's training input from a linear
image: ``srgb`` -> sRGB-encoded, ``linear`` -> clipped to [0, 1], ``hdr`` -> divided by the image's
maximum. An 8/16-bit sRGB file given to an ``srgb`` student goes straight in as display values (decoding
to linear and re-encoding would return the same values to ~1e-7).

Output files: same folder structure, same name (plus ``suffix``), and by default the input's format and
bit depth: 8-bit in -> 8-bit out, 16-bit in -> 16-bit out, float (HDR, EXR, float TIFF) in -> float out,
camera RAW -> 16-bit TIFF. Grey inputs come out as 3-channel RGB (the student may change colour); alpha
and metadata (EXIF, ICC) are not carried over. Float files always hold linear values, so an sRGB output
written to .exr/.hdr is decoded to linear first; an ``hdr`` output gets the input's exposure back.

A file that cannot be read, processed or written is reported and skipped; the others complete. So is any
other bad entry with an image's name: a symlink loop, a dangling symlink, a folder named ``x.png``, a pipe
or device (never opened: reading a FIFO would block). ``run`` exits with status 1 when any file failed
(after finishing the rest), so that scripts notice; Ctrl-C stops it with its summary written.
Inputs are never overwritten: an output path that is an input file is refused before anything runs. Files
that are this very command's earlier outputs (``suffix`` into the input folder) are not taken as inputs.
Existing outputs are replaced, and the run says how many (``skip_existing=true`` keeps them).

An input file holding values above 1 (HDR radiance, a float file) given to a student of an LDR teacher
(input space ``srgb`` or ``linear``, trained on [0, 1]) is refused: its highlights would be clipped
silently. ``clip_hdr=true`` clips them on purpose, with a warning per file.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import stat
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from distill.core.color import linear_to_srgb, srgb_to_linear
from distill.core.io import HDR_EXTENSIONS, IMAGE_EXTENSIONS, RAW_EXTENSIONS, ImageError, read_image_raw, \
    stored_to_linear, write_image

log = logging.getLogger(__name__)

SPACES = ("srgb", "linear", "hdr")
HDR_TOLERANCE = 1e-3  # a float input above 1 + this is HDR to an LDR student
_INT_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


# -- files and names ------------------------------------------------------------------------------------------
def _resolved(p: Path) -> Path | None:
    """``p.resolve()``, or None for a symlink loop (which ``resolve`` reports as RuntimeError or ELOOP)."""
    try:
        return p.resolve()
    except (RuntimeError, OSError):
        return None


def entry_problem(f: Path, recursive: bool = False) -> str | None:
    """Why a folder entry with an image's name is not an image file to read, or None when it is one.

    ``""`` means "not a problem, not a file": a sub-folder that ``recursive`` descends into anyway.
    """
    if f.is_symlink():
        try:
            os.stat(f)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return "a symlink loop; skipped"
            try:
                target = os.readlink(f)
            except OSError:
                target = "?"
            return f"a dangling symlink (to {target}, which does not exist); skipped"
    try:
        st = f.stat()
    except RuntimeError:
        return "a symlink loop; skipped"
    except OSError as e:
        return f"cannot be examined ({e.strerror or e}); skipped"
    if stat.S_ISDIR(st.st_mode):
        if f.is_symlink():
            return "a symlink to a folder (not followed); skipped"
        return "" if recursive else "a folder, not an image file (recursive=true descends into it); skipped"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, socket or device; never opened); skipped"
    return None


def list_inputs(input_path: str | os.PathLike, recursive: bool = False,
                exclude: str | os.PathLike | None = None,
                bad: list[tuple[str, str]] | None = None) -> tuple[Path, list[Path]]:
    """``(root, files)``: one image file, or the image files of a folder (sorted; hidden files skipped).

    Args:
        input_path: a file or a folder.
        recursive: descend into sub-folders (symlinked folders are not followed).
        exclude: a folder never listed (the output folder, when it lies inside the input folder).
        bad: if given, entries with an image's name that are no image file to read (a symlink loop, a
            dangling symlink, a folder, a pipe: see ``entry_problem``) are appended as ``(path, message)``.

    Raises:
        FileNotFoundError: ``input_path`` does not exist.
        ValueError: a file with an unsupported extension, or a folder with no images (nor bad entries).
    """
    p = Path(input_path)
    if not p.exists():
        raise FileNotFoundError(f"apply: input '{p}' does not exist")
    if p.is_file():
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ValueError(f"apply: input '{p}' has unsupported extension '{p.suffix}' "
                             f"(supported: {', '.join(sorted(IMAGE_EXTENSIONS))})")
        return p.parent, [p]
    skip = _resolved(Path(exclude)) if exclude else None
    if skip == p.resolve():  # output == input folder (with a suffix): nothing to exclude
        skip = None
    files, problems = [], []
    for f in sorted(p.rglob("*") if recursive else p.iterdir()):
        rel = f.relative_to(p)
        if any(part.startswith(".") for part in rel.parts) or f.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        problem = entry_problem(f, recursive)
        if problem == "":
            continue
        if problem is None:
            r = _resolved(f)
            if skip is not None and r is not None and r.is_relative_to(skip):
                continue
            files.append(f)
        elif skip is None or not f.is_relative_to(skip):
            problems.append((str(f), f"{f}: {problem}"))
    if bad is not None:
        bad.extend(problems)
    if not files and not (bad is not None and problems):
        raise ValueError(f"apply: no images in '{p}'{' (recursive)' if recursive else ''}; supported extensions: "
                         f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
    return p, files


def output_ext(src: Path, ext: str | None) -> str:
    """The output extension: ``ext`` if given, else the input's (camera RAW -> .tif)."""
    if ext:
        e = "." + str(ext).lower().lstrip(".")
        return e
    e = src.suffix.lower()
    return ".tif" if e in RAW_EXTENSIONS else e


def output_bit_depth(stored_dtype: np.dtype, ext: str, bit_depth: int | None) -> int:
    """Bit depth to write: 8/16 for display formats, 32 for float (what ``write_image`` takes).

    Default (``bit_depth=None``): the input's (uint8 -> 8, uint16 -> 16, float -> float), adapted to what
    the output format holds (JPEG: 8; .hdr/.exr: float; float input to PNG: 16).
    """
    if ext in HDR_EXTENSIONS:
        return 32
    if ext in (".jpg", ".jpeg"):
        return 8
    if bit_depth is not None:
        bd = int(bit_depth)
        if bd not in (8, 16, 32) or (bd == 32 and ext not in (".tif", ".tiff")):
            raise ValueError(f"apply: bit_depth={bd} cannot be written as {ext} (8 or 16; 32 only for TIFF)")
        return bd
    if stored_dtype == np.uint8:
        return 8
    if stored_dtype == np.uint16:
        return 16
    return 32 if ext in (".tif", ".tiff") else 16


def _output_path(root: Path, f: Path, output: Path, ext: str | None, suffix: str) -> Path:
    rel = f.relative_to(root)
    return output / rel.parent / f"{rel.stem}{suffix}{output_ext(f, ext)}"


def earlier_outputs(root: Path, files: list[Path], output: Path, ext: str | None, suffix: str = "") -> list[Path]:
    """Inputs that are the planned output of another input: the outputs of an earlier run of the same
    command into its own input folder (``suffix`` set). They are not inputs: the run would refuse to
    overwrite them, or process its own results."""
    outs = {}
    for f in files:
        dst = _resolved(_output_path(root, f, output, ext, suffix))
        if dst is not None and dst != _resolved(f):
            outs[dst] = f
    return [f for f in files if _resolved(f) in outs]


def plan_outputs(root: Path, files: list[Path], output: Path, ext: str | None, suffix: str = "") -> list[Path]:
    """Output path per input; refuses a plan that would overwrite an input or write one file twice."""
    inputs = {f.resolve() for f in files}
    outs, seen = [], {}
    for f in files:
        dst = _output_path(root, f, output, ext, suffix)
        r = dst.resolve()
        if r in inputs:
            raise ValueError(f"apply: output '{dst}' would overwrite the input file '{r}'; choose another output "
                             "folder or set suffix=_student")
        if r in seen:
            raise ValueError(f"apply: inputs '{seen[r]}' and '{f}' would both be written to '{dst}'")
        seen[r] = f
        outs.append(dst)
    return outs


# -- colour spaces ------------------------------------------------------------------------------------------
def student_input(stored: np.ndarray, color_space: str, input_space: str) -> tuple[np.ndarray, float]:
    """Stored pixels -> the student's input ``[H,W,3]`` (uint for the sRGB shortcut, else float32), and the
    HDR peak (1.0 unless ``input_space == "hdr"``). Same values as ``to_space(stored_to_linear(...))``."""
    if input_space == "srgb" and color_space == "srgb" and stored.dtype in _INT_MAX:
        return stored, 1.0  # display values as they are: sRGB -> linear -> sRGB is the identity
    lin = stored_to_linear(stored, color_space)
    if input_space == "srgb":
        return np.ascontiguousarray(linear_to_srgb(lin)), 1.0
    if input_space == "linear":
        return np.clip(lin, 0.0, 1.0), 1.0
    if input_space == "hdr":
        peak = float(max(lin.max(), 1e-20))  # distill.core.color.to_space: exposure normalised to a peak of 1
        return lin / np.float32(peak), peak
    raise ValueError(f"apply: unknown teacher input space '{input_space}' (expected one of {SPACES})")


def to_file_values(y: np.ndarray, output_space: str, bit_depth: int, peak: float) -> tuple[np.ndarray, bool]:
    """Student output (float32, in ``output_space``) -> ``(image, encode_srgb)`` for ``write_image``."""
    if bit_depth == 32:  # float files hold linear values
        if output_space == "srgb":
            return srgb_to_linear(np.clip(y, 0.0, 1.0)), False
        return (y * np.float32(peak) if output_space == "hdr" else y), False
    return y, output_space != "srgb"  # display files: sRGB-encode linear outputs


# -- the student --------------------------------------------------------------------------------------------
class StudentRunner:
    """The student on numpy ``[H,W,3]`` images: FastStudent on the CPU, HDRNet.forward on CUDA.

    Integer images are normalised to [0, 1] and the output comes back in the same dtype (rounded, clamped).

    Args:
        model: an ``HDRNet``.
        device: "auto" (CUDA when present), "cpu" or "cuda[:i]".
        threads: CPU threads of the fused passes (None: torch's setting).
    """

    def __init__(self, model, device: str = "auto", threads: int | None = None):
        from students.fused import FastStudent

        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                           ("cpu" if device == "auto" else device))
        self.device = dev
        if dev.type == "cuda":
            self.model = model.to(dev).float().eval()
            self.engine = f"torch-{dev}"
        else:
            self.fast = FastStudent(model, threads=threads)
            self.engine = self.fast.engine

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.device.type != "cuda":
            return self.fast(x)
        top = _INT_MAX.get(x.dtype)
        t = torch.from_numpy(x).to(self.device).permute(2, 0, 1)[None].float()
        with torch.inference_mode():
            y = self.model(t / top if top else t)[0].permute(1, 2, 0)
            if top:
                y = (y * top).round_().clamp_(0, top)
            return y.cpu().numpy().astype(x.dtype)


def student_from_checkpoint(ckpt: dict[str, Any]):
    """``distill.train.checkpoint.build_student`` (which refuses a checkpoint without weights, or whose weights do
    not fit its student config, in one line)."""
    from distill.train.checkpoint import build_student

    return build_student(ckpt)


# -- the loop -----------------------------------------------------------------------------------------------
@dataclass
class ApplyResult:
    """What ``apply_files`` did: written (input, output) pairs, failures (input, message), and timings."""

    written: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    overwritten: list[str] = field(default_factory=list)  # outputs that existed and were replaced
    clipped_hdr: list[str] = field(default_factory=list)  # HDR inputs clipped for an LDR student (clip_hdr)
    interrupted: bool = False  # Ctrl-C: what was done so far is in here
    megapixels: float = 0.0
    wall_s: float = 0.0
    student_s: float = 0.0
    engine: str = ""

    def throughput(self) -> dict[str, float]:
        n, wall, st = len(self.written), max(self.wall_s, 1e-9), max(self.student_s, 1e-9)
        return {"images_per_s": n / wall, "mp_per_s": self.megapixels / wall,
                "student_images_per_s": n / st, "student_mp_per_s": self.megapixels / st}

    def summary(self) -> dict[str, Any]:
        return {"written": len(self.written), "failed": len(self.failed),
                "skipped_existing": len(self.skipped_existing), "overwritten": len(self.overwritten),
                "clipped_hdr": len(self.clipped_hdr), "interrupted": self.interrupted,
                "failures": [{"file": f, "error": e} for f, e in self.failed], "megapixels": round(self.megapixels, 3),
                "wall_s": round(self.wall_s, 3), "student_s": round(self.student_s, 3), "engine": self.engine,
                **{k: round(v, 3) for k, v in self.throughput().items()}}


def _read(path: Path):
    stored, meta = read_image_raw(path)
    return stored, meta


def _write(dst: Path, y: np.ndarray, bit_depth: int, encode_srgb: bool) -> None:
    write_image(dst, y, bit_depth=bit_depth, encode_srgb=encode_srgb)


def apply_files(runner: StudentRunner, files: list[Path], outputs: list[Path], input_space: str,
                output_space: str, ext: str | None = None, bit_depth: int | None = None, skip_existing: bool = False,
                io_threads: int = 2, progress: bool = True, clip_hdr: bool = False,
                clip_hdr_key: str = "clip_hdr") -> ApplyResult:
    """Run ``runner`` over ``files`` and write ``outputs`` (same order); never raises for a bad file.

    Reads run ahead and writes run behind in ``io_threads`` background threads (decoders and encoders
    release the GIL), so file I/O overlaps with the student. Ctrl-C stops it: the writes already started
    finish, and the result (``interrupted=True``) says what was done.

    An input with values above 1 (HDR) fails unless ``input_space`` is ``hdr`` or ``clip_hdr`` is set.
    """
    for space, what in ((input_space, "input"), (output_space, "output")):
        if space not in SPACES:
            raise ValueError(f"apply: unknown teacher {what} space '{space}' (expected one of {SPACES})")
    res = ApplyResult(engine=runner.engine)
    todo = []
    for f, dst in zip(files, outputs):
        # An output older than its input is stale (the input changed, perhaps to a corrupt file): redo it.
        if skip_existing and dst.exists() and dst.stat().st_mtime >= f.stat().st_mtime:
            res.skipped_existing.append(str(f))
        else:
            todo.append((f, dst))
            if dst.exists():
                res.overwritten.append(str(dst))
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc="apply", unit="img", disable=not progress, dynamic_ncols=True)
    ahead = max(1, int(io_threads))
    with ThreadPoolExecutor(max_workers=ahead) as pool:
        reads: deque[tuple[Path, Path, Future]] = deque()
        writes: deque[tuple[Path, Path, float, Future]] = deque()
        queue = iter(todo)

        def refill():
            while len(reads) < ahead:
                nxt = next(queue, None)
                if nxt is None:
                    return
                reads.append((*nxt, pool.submit(_read, nxt[0])))

        def settle(limit: int):  # wait for writes beyond `limit` pending ones, recording their outcome
            while len(writes) > limit:
                src, dst, mp, fut = writes.popleft()
                try:
                    fut.result()
                    res.written.append((str(src), str(dst)))
                    res.megapixels += mp
                except Exception as e:  # noqa: BLE001 - one bad file must not stop the folder
                    _fail(res, src, e)
                bar.update(1)

        def one(src, dst, fut):
            try:
                stored, meta = fut.result()
                if input_space != "hdr" and stored.dtype.kind == "f" and stored.size:
                    top = float(stored.max())
                    if top > 1 + HDR_TOLERANCE:
                        if not clip_hdr:
                            raise ValueError(
                                f"{src}: holds values up to {top:.4g} (HDR), but this student's teacher takes "
                                f"'{input_space}' input in [0, 1]: everything above 1 would be clipped and the "
                                f"highlights lost. Use the student of an HDR teacher (input space 'hdr', a tone "
                                f"mapper), or set {clip_hdr_key}=true to clip on purpose")
                        res.clipped_hdr.append(str(src))
                        log.warning("%s: values up to %.4g clipped to 1 for a '%s' student (clip_hdr=true)", src, top,
                                    input_space)
                out_ext = output_ext(src, ext)
                bd = output_bit_depth(stored.dtype, out_ext, bit_depth)
                x, peak = student_input(stored, meta["color_space"], input_space)
                # integer in, same bit depth out, sRGB out: keep the student's own rounding to integers
                if x.dtype in _INT_MAX and not (output_space == "srgb" and bd == 8 * x.dtype.itemsize):
                    x = x.astype(np.float32) / np.float32(_INT_MAX[x.dtype])
                ts = time.perf_counter()
                y = runner(x)
                res.student_s += time.perf_counter() - ts
                if y.dtype in _INT_MAX:
                    y = y.astype(np.float32) / np.float32(_INT_MAX[y.dtype])  # exact: write_image re-quantises
                y, encode = to_file_values(y, output_space, bd, peak)
                if not np.isfinite(y).all():
                    raise ValueError("the student produced NaN/Inf values")
                mp = stored.shape[0] * stored.shape[1] / 1e6
                writes.append((src, dst, mp, pool.submit(_write, dst, y, bd, encode)))
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the folder
                _fail(res, src, e)
                bar.update(1)

        try:
            refill()
            while reads:
                src, dst, fut = reads.popleft()
                refill()
                one(src, dst, fut)
                settle(ahead)
                bar.set_postfix(failed=len(res.failed), refresh=False)
            settle(0)
        except KeyboardInterrupt:
            res.interrupted = True
            for _, _, fut in reads:
                fut.cancel()
            settle(0)  # the writes already started finish (atomically) and are counted
    bar.close()
    res.wall_s = time.perf_counter() - t0
    return res


def _fail(res: ApplyResult, src: Path, e: Exception) -> None:
    text = str(e) if isinstance(e, (ImageError, ValueError, OSError)) else f"{type(e).__name__}: {e}"
    msg = text if str(src) in text else f"{src}: {text}"
    res.failed.append((str(src), msg))
    log.warning("skipped %s", msg)


# -- the command --------------------------------------------------------------------------------------------
def run(cfg) -> dict[str, Any]:
    """``hdr-distill apply``: exit status 1 if any file failed (the others are still written)."""
    from distill.train.checkpoint import load_checkpoint

    for key in ("checkpoint", "input", "output"):
        if cfg.get(key) in (None, ""):
            raise ValueError(f"apply: {key}=... is required (hdr-distill apply checkpoint=... input=... output=...)")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    ckpt = load_checkpoint(cfg.checkpoint)
    teacher = ckpt.get("teacher", {})
    model = student_from_checkpoint(ckpt)
    output = Path(cfg.output)
    suffix = str(cfg.suffix or "")
    bad: list[tuple[str, str]] = []
    root, files = list_inputs(cfg.input, bool(cfg.recursive), exclude=output, bad=bad)
    earlier = set(earlier_outputs(root, files, output, cfg.ext, suffix))
    if earlier:
        files = [f for f in files if f not in earlier]
        print(f"apply: {len(earlier)} file(s) in {cfg.input} are this command's earlier outputs "
              f"(*{suffix}); not taken as inputs")
    outputs = plan_outputs(root, files, output, cfg.ext, suffix)
    skip_existing = bool(cfg.skip_existing)
    replaced = 0 if skip_existing else sum(o.exists() for o in outputs)
    runner = StudentRunner(model, str(cfg.device), int(cfg.threads) if cfg.threads else None)
    print(f"apply: {len(files)} image(s) from {cfg.input} -> {output}; student of teacher "
          f"'{teacher.get('name')}' ({teacher.get('input_space')} -> {teacher.get('output_space')}), "
          f"engine {runner.engine}, {torch.get_num_threads()} threads")
    if replaced:
        print(f"apply: {replaced} existing output(s) in {output} will be replaced (skip_existing=true keeps them)")
    for _, msg in bad:
        log.warning("skipped %s", msg)
    res = apply_files(runner, files, outputs, teacher.get("input_space", "srgb"), teacher.get("output_space", "srgb"),
                      ext=cfg.ext, bit_depth=cfg.bit_depth, skip_existing=skip_existing,
                      io_threads=int(cfg.io_threads), progress=bool(cfg.progress),
                      clip_hdr=bool(cfg.get("clip_hdr", False)),
                      clip_hdr_key="clip_hdr" if "clip_hdr" in cfg else "+clip_hdr")  # '+' while conf/ lacks it
    res.failed[:0] = bad  # bad entries are failures too: reported, skipped and counted
    summary = {"checkpoint": str(cfg.checkpoint), "input": str(cfg.input), "output": str(output), **res.summary()}
    tp = res.throughput()
    print(f"apply: wrote {len(res.written)} (replacing {len(res.overwritten)}), failed {len(res.failed)}, "
          f"skipped (existing) {len(res.skipped_existing)}; {res.megapixels:.1f} MP in {res.wall_s:.2f} s: "
          f"{tp['images_per_s']:.2f} images/s, {tp['mp_per_s']:.1f} MP/s end to end "
          f"(student alone {tp['student_mp_per_s']:.1f} MP/s)")
    for f, msg in res.failed:
        print(f"  FAILED {msg}", file=sys.stderr)
    if res.clipped_hdr:
        print(f"apply: WARNING: {len(res.clipped_hdr)} HDR input(s) had values above 1 clipped for this "
              f"'{teacher.get('input_space')}' student (clip_hdr=true); their highlights are lost: "
              + ", ".join(res.clipped_hdr[:5]) + (", ..." if len(res.clipped_hdr) > 5 else ""), file=sys.stderr)
    if cfg.get("report_dir"):
        rd = Path(cfg.report_dir)
        rd.mkdir(parents=True, exist_ok=True)
        tmp = rd / "apply_summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2))
        os.replace(tmp, rd / "apply_summary.json")
    if res.interrupted:
        print(f"apply: interrupted (Ctrl-C) after {len(res.written) + len(res.failed) - len(bad)} of {len(files)} "
              f"image(s); a rerun with skip_existing=true continues", file=sys.stderr)
        raise KeyboardInterrupt
    if res.failed:
        raise SystemExit(1)
    return summary
