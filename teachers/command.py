"""An external program as a teacher: it reads one image file and writes one.

    CommandTeacher("mytool --strength 3 {in} {out}")            # shlex-split, no shell
    CommandTeacher("convert {in} -sigmoidal-contrast 4x50% {out}", ext="png", bit_depth=16)
    CommandTeacher("mytool < {in} > {out}", shell=True)          # pipes/redirections need the shell

For each image of a batch: write it to a temp folder in the chosen format and bit depth, run the program
with ``{in}``/``{out}`` replaced by the two paths, read the result back, check it, delete the folder.
Images of one batch run in parallel in ``workers`` threads (the work is in the child processes).

Nothing bad becomes a training pair: a timeout, a non-zero exit, or an output that is missing, unreadable,
of the wrong size or with the wrong channels raises ``CommandTeacherError`` naming the command, and the error
propagates (a DataLoader worker re-raises it in the training process); nothing is skipped.
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import tifffile
import torch

from distill.core.protocols import COLOR_SPACES, check_images

# Format -> bit depths it can carry (32 = float32). "hdr" is Radiance RGBE: float, ~1% precision.
FORMATS = {
    "png": (8, 16),
    "tif": (8, 16, 32),
    "tiff": (8, 16, 32),
    "pfm": (32,),
    "hdr": (32,),
    "exr": (32,),
    "jpg": (8,),
    "jpeg": (8,),
}
_INTERPRETER = re.compile(r"(python|bash|sh|node|perl|ruby|Rscript)[0-9.]*(\.exe)?$")
_TAIL_LINES, _TAIL_CHARS = 20, 2000


class CommandTeacherError(RuntimeError):
    """The external program failed, hung, or wrote something that is not a usable image."""


class CommandTeacher:
    """A program that reads ``{in}`` and writes ``{out}``, as a Teacher (``[B,3,H,W]`` float32 in and out).

    Args:
        cmd: the command line with ``{in}`` and ``{out}`` placeholders (a string, split with shlex, or a list
            of arguments). A placeholder may sit inside an argument (``--input={in}``).
        ext: file format handed to the program (see ``FORMATS``).
        bit_depth: 8 or 16 (integer PNG/TIFF), 32 (float TIFF/PFM/HDR). Values in [0, 1] are rounded to the
            full integer scale; float formats carry the values as they are (needed for ``input_space="hdr"``).
        timeout: seconds one image may take before the program (and its process group) is killed.
        input_space / output_space: colour spaces the program reads and writes (distill.core.protocols).
        workers: images of one batch processed in parallel.
        name: the teacher's name (default: the program's name, or the script's for ``python script.py``).
        out_ext: format the program writes, if it differs from ``ext``.
        shell: run ``cmd`` with ``/bin/sh -c`` (the paths are shell-quoted); only for pipes and redirections.

    Output decoding: 8-bit files are divided by 255, 16-bit by 65535, float files are taken as they are.
    RGBA is accepted only with a fully opaque alpha (dropped); grey or other channel counts are refused.

    Example:
        >>> t = CommandTeacher("cp {in} {out}")          # the identity, through 16-bit PNG
        >>> y = t(torch.rand(1, 3, 8, 8))                 # equals the input within 1/65535
    """

    def __init__(self, cmd: str | Sequence[str], ext: str = "png", bit_depth: int = 16, timeout: float = 60,
                 input_space: str = "srgb", output_space: str = "srgb", workers: int = 1,
                 name: str | None = None, out_ext: str | None = None, shell: bool = False):
        self.shell = bool(shell)
        self.cmd = cmd if isinstance(cmd, str) else [str(a) for a in cmd]
        self.cmd_text = self.cmd if isinstance(self.cmd, str) else shlex.join(self.cmd)
        if self.shell:
            if not isinstance(self.cmd, str):
                raise ValueError("command teacher: shell=True needs cmd as one string")
            self.argv = None
        else:
            self.argv = shlex.split(self.cmd) if isinstance(self.cmd, str) else list(self.cmd)
        if not self.cmd_text.strip():
            raise ValueError("command teacher: cmd is empty")
        for ph in ("{in}", "{out}"):
            if ph not in self.cmd_text:
                raise ValueError(f"command teacher: cmd '{self.cmd_text}' has no {ph} placeholder "
                                 f"(the program must read {{in}} and write {{out}})")
        self.name = str(name) if name else self._default_name()
        self.ext = self._check_ext(ext, "ext")
        self.out_ext = self._check_ext(out_ext or self.ext, "out_ext")
        self.bit_depth = int(bit_depth)
        if self.bit_depth not in FORMATS[self.ext]:
            raise ValueError(f"command teacher '{self.name}': bit_depth {self.bit_depth} is not possible for "
                             f"ext '{self.ext}' (it carries {FORMATS[self.ext]}; 32 means float)")
        for key, space in (("input_space", input_space), ("output_space", output_space)):
            if space not in COLOR_SPACES:
                raise ValueError(f"command teacher '{self.name}': {key} '{space}' is not one of {COLOR_SPACES}")
        self.input_space, self.output_space = input_space, output_space
        if input_space == "hdr" and self.bit_depth != 32:
            raise ValueError(f"command teacher '{self.name}': input_space 'hdr' is unbounded radiance; an "
                             f"{self.bit_depth}-bit file would clip it. Use a float format: ext=tif "
                             f"bit_depth=32, or ext=pfm / ext=hdr")
        if self.ext in ("jpg", "jpeg"):
            warnings.warn(f"command teacher '{self.name}': JPEG input is lossy; the student learns the "
                          f"teacher's response to compression artefacts too. Prefer png/tif if the program reads them.")
        self.timeout = float(timeout)
        if not self.timeout > 0:
            raise ValueError(f"command teacher '{self.name}': timeout must be > 0 seconds, got {timeout}")
        self.workers = int(workers)
        if self.workers < 1:
            raise ValueError(f"command teacher '{self.name}': workers must be >= 1, got {workers}")
        if self.argv is not None and self._program_path() is None:
            raise CommandTeacherError(f"command teacher '{self.name}': program '{self.argv[0]}' not found "
                                      f"(not a file and not on PATH) in cmd '{self.cmd_text}'")
        self._files_sha: dict[str, str] | None = None
        self._warned_depth = False

    # ---- construction helpers -------------------------------------------------------------------------

    def _default_name(self) -> str:
        words = self.argv if self.argv is not None else shlex.split(self.cmd_text)
        prog = Path(words[0]).name
        if _INTERPRETER.match(prog) and len(words) > 1 and not words[1].startswith("-"):
            prog = Path(words[1]).stem  # "python my_tool.py": the script is the operator
        return prog or "command"

    def _check_ext(self, ext: str, key: str) -> str:
        ext = str(ext).lower().lstrip(".")
        if ext not in FORMATS:
            raise ValueError(f"command teacher '{self.name}': {key} '{ext}' is not one of {sorted(FORMATS)}")
        if ext == "exr" and not cv2.haveImageWriter(".exr"):
            raise ValueError(f"command teacher '{self.name}': this OpenCV build has no OpenEXR codec; use "
                             f"ext=tif with bit_depth=32 (float TIFF) or ext=pfm for float images")
        return ext

    def _program_path(self) -> str | None:
        prog = self.argv[0]
        if os.sep in prog or "/" in prog:
            return prog if os.path.isfile(prog) else None
        return shutil.which(prog)

    # ---- identity --------------------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """The command, the file format, and a hash of every file the command names (program, script)."""
        if self._files_sha is None:
            self._files_sha = self._hash_files()
        return {"cmd": self.cmd_text, "ext": self.ext, "out_ext": self.out_ext, "bit_depth": self.bit_depth,
                "shell": self.shell, "files_sha256": dict(self._files_sha)}

    def _hash_files(self) -> dict[str, str]:
        words = self.argv if self.argv is not None else shlex.split(self.cmd_text)
        paths = [self._program_path()] if self.argv is not None else []
        paths += [w for w in words[1:] if "{" not in w and os.path.isfile(w)]
        out = {}
        for p in paths:
            if p and os.path.getsize(p) < (256 << 20):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                out[os.path.basename(p)] = h.hexdigest()[:16]
        return out

    # ---- the call --------------------------------------------------------------------------------------

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``[B,3,H,W]`` float32 -> ``[B,3,H,W]`` float32; one program run per image."""
        check_images(images, f"teacher '{self.name}'")
        arr = images.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()  # [B,H,W,3]
        if self.workers == 1 or len(arr) == 1:
            outs = [self.run_one(img) for img in arr]
        else:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(arr))) as pool:
                futures = [pool.submit(self.run_one, img) for img in arr]
                try:
                    outs = [f.result() for f in futures]  # the first failure propagates, in batch order
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
        res = torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2).contiguous()
        return res.to(images.device)

    def run_one(self, img: np.ndarray) -> np.ndarray:
        """One ``HxWx3`` float32 image through the program -> ``HxWx3`` float32."""
        root = _shell_safe_tmp_root(self.name) if self.shell else None
        with tempfile.TemporaryDirectory(prefix="hdr-distill-cmd-", dir=root) as tmp:
            src, dst = os.path.join(tmp, f"in.{self.ext}"), os.path.join(tmp, f"out.{self.out_ext}")
            write_image(src, img, self.bit_depth)
            cmdline = self._run(src, dst)
            if not os.path.exists(dst):
                raise CommandTeacherError(f"teacher '{self.name}': the command exited 0 but wrote no output "
                                          f"file {dst} (does it write to {{out}}?)\n  command: {cmdline}")
            out, depth = self._read_output(dst, cmdline)
        if out.shape[:2] != img.shape[:2]:
            raise CommandTeacherError(
                f"teacher '{self.name}': output is {out.shape[1]}x{out.shape[0]} (WxH) but the input was "
                f"{img.shape[1]}x{img.shape[0]}; the program must keep the image size\n  command: {cmdline}")
        if depth == 8 and self.bit_depth > 8 and not self._warned_depth:
            self._warned_depth = True
            warnings.warn(f"teacher '{self.name}': the program wrote 8-bit output for {self.bit_depth}-bit "
                          f"input; the student will learn its quantisation too")
        return out

    def _run(self, src: str, dst: str) -> str:
        """Run the program once; raise with exit code and stderr tail if it fails or hangs."""
        if self.shell:
            args = self.cmd.replace("{in}", shlex.quote(src)).replace("{out}", shlex.quote(dst))
            cmdline = args
        else:
            args = [a.replace("{in}", src).replace("{out}", dst) for a in self.argv]
            cmdline = shlex.join(args)
        try:
            # A session of its own, so that a timeout kills the program's children too.
            proc = subprocess.Popen(args, shell=self.shell, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise CommandTeacherError(f"teacher '{self.name}': cannot start the command: {e}\n"
                                      f"  command: {cmdline}") from e
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise CommandTeacherError(
                f"teacher '{self.name}': the command timed out after {self.timeout:g} s (timeout={self.timeout:g}) "
                f"and was killed; raise teacher.timeout if it is just slow\n  command: {cmdline}") from None
        except BaseException:
            _kill_group(proc)
            proc.communicate()
            raise
        if proc.returncode != 0:
            code = proc.returncode
            how = (f"was killed by signal {signal.Signals(-code).name}" if code < 0 and -code in
                   signal.valid_signals() else f"failed with exit code {code}")
            tail = _tail(stderr) or _tail(stdout) or "(no output)"
            raise CommandTeacherError(f"teacher '{self.name}': the command {how}\n  command: {cmdline}\n"
                                      f"  stderr (last lines):\n{tail}")
        return cmdline

    def _read_output(self, path: str, cmdline: str) -> tuple[np.ndarray, int]:
        try:
            raw = read_image(path)
        except Exception as e:
            size = os.path.getsize(path)
            raise CommandTeacherError(f"teacher '{self.name}': cannot read the program's output {path} "
                                      f"({size} bytes) as .{self.out_ext}: {e}\n  command: {cmdline}") from e
        try:
            return to_float_rgb(raw)
        except ValueError as e:
            raise CommandTeacherError(f"teacher '{self.name}': output {path}: {e}\n  command: {cmdline}") from e

    def __repr__(self) -> str:
        return f"CommandTeacher({self.cmd_text!r}, ext={self.ext!r}, bit_depth={self.bit_depth})"


# ---- image files ---------------------------------------------------------------------------------------

def write_image(path: str, img: np.ndarray, bit_depth: int) -> None:
    """``HxWx3`` float32 RGB -> file; integer depths round [0, 1] to full scale, 32 writes float32."""
    ext = path.rsplit(".", 1)[-1].lower()
    if bit_depth == 32:
        data = np.ascontiguousarray(img, dtype=np.float32)
    else:
        top = 255 if bit_depth == 8 else 65535
        data = np.rint(np.clip(img, 0.0, 1.0) * top).astype(np.uint8 if bit_depth == 8 else np.uint16)
    if ext in ("tif", "tiff"):
        tifffile.imwrite(path, data, photometric="rgb")
        return
    params = [cv2.IMWRITE_JPEG_QUALITY, 100] if ext in ("jpg", "jpeg") else []
    if not cv2.imwrite(path, np.ascontiguousarray(data[..., ::-1]), params):  # OpenCV files are BGR
        raise OSError(f"OpenCV could not write {path}")


def read_image(path: str) -> np.ndarray:
    """File -> array as stored (RGB channel order), any dtype and channel count."""
    ext = path.rsplit(".", 1)[-1].lower()
    if ext in ("tif", "tiff"):
        return tifffile.imread(path)
    arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("OpenCV cannot decode it (not an image, truncated, or another format)")
    if arr.ndim == 3 and arr.shape[2] >= 3:
        arr = np.concatenate([arr[..., 2::-1], arr[..., 3:]], axis=2)  # BGR(A) -> RGB(A)
    return arr


def to_float_rgb(arr: np.ndarray) -> tuple[np.ndarray, int]:
    """Decoded pixels -> (``HxWx3`` float32 in [0, 1] for integer files, the bit depth)."""
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1):
        raise ValueError(f"it is a grey image (shape {arr.shape}); the teacher must write RGB")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        top, depth = 255.0, 8
    elif arr.dtype == np.uint16:
        top, depth = 65535.0, 16
    elif arr.dtype in (np.float32, np.float64, np.float16):
        top, depth = 1.0, 32
    else:
        raise ValueError(f"unsupported pixel type {arr.dtype} (expected 8/16-bit integer or float)")
    if arr.shape[2] == 4:
        if not np.all(arr[..., 3] == (top if depth < 32 else 1.0)):
            raise ValueError("it has a non-opaque alpha channel; the teacher must write RGB")
        arr = arr[..., :3]
    out = arr.astype(np.float32)
    if top != 1.0:
        out /= np.float32(top)
    return np.ascontiguousarray(out), depth


def _tail(data: bytes) -> str:
    text = (data or b"").decode(errors="replace").strip()
    lines = text.splitlines()[-_TAIL_LINES:]
    text = "\n".join(lines)[-_TAIL_CHARS:]
    return "\n".join("    " + ln for ln in text.splitlines())


_SHELL_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")  # what shlex.quote leaves as it is


def _shell_safe_tmp_root(who: str) -> str:
    """A temp root whose absolute path needs no quoting in ``/bin/sh``: ``TMPDIR`` when it is one, else
    /tmp, /var/tmp or the current folder. A substituted path is then the same text whether the user's
    command quotes the placeholder (``'{in}'``, ``"{in}"``) or not, so a TMPDIR like ``/x;touch X;`` can
    never become shell code (``shlex.quote`` inside the user's own quotes would un-quote it)."""
    for cand in (tempfile.gettempdir(), "/tmp", "/var/tmp", os.getcwd()):
        path = os.path.abspath(cand)
        if _SHELL_SAFE.fullmatch(path) and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK):
            return path
    raise CommandTeacherError(f"teacher '{who}': shell=True needs a temp folder whose path has only letters, digits "
                              f"and _@%+=:,./- (TMPDIR is {tempfile.gettempdir()!r}; /tmp is not writable); set "
                              f"TMPDIR to such a folder")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
