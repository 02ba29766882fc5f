"""Build the fused inference library (students/csrc/) into a cached shared object.

``python -m students.build`` (run by ``make setup``) compiles the C++ sources with g++ into
``students/_lib/fused-<hash>.so``, where the hash covers every source and header in csrc/ (names and
contents), the flags, the compiler's version and the machine type. A second run finds the file and does
nothing; nothing is ever recompiled per call or per image size. Each kernel file (slice_apply.cpp,
lowres.cpp, bilateral.cpp, all built on the vector layer simd.h) is compiled once per instruction set
(AVX-512, AVX2+FMA, portable scalar), at most ``JOBS`` compiles at a time, and the dispatcher fused.cpp
picks one variant at run time with ``__builtin_cpu_supports``, so a library built on one x86-64 machine
runs on any other.

If the package directory is not writable (a read-only install), the cache goes to
``$HDR_DISTILL_CACHE`` or ``~/.cache/hdr-distill``. ``$CXX`` chooses the compiler (default g++).

Example:
    >>> from students.build import build
    >>> path = build()  # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CSRC = Path(__file__).resolve().parent / "csrc"
DISPATCH_SRC = "fused.cpp"  # the C ABI and run-time dispatch, compiled once for the baseline CPU
# One file per kernel, each compiled once per ISA; they share the headers simd.h and slice_tables.h.
KERNEL_SRCS = ("slice_apply.cpp", "lowres.cpp", "bilateral.cpp")
JOBS = 2  # compiles at a time

# -O3 without -ffast-math: the kernels must agree with the torch path to 1e-5, and NaN/inf handling
# must stay IEEE.
BASE_FLAGS = ["-O3", "-std=c++17", "-fPIC", "-fopenmp", "-fno-math-errno", "-Wall", "-Wno-unused-function"]
# Per-ISA flags of the kernel files; the dispatcher itself is compiled for the baseline CPU.
X86_ISAS = {
    "avx512": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma", "-mbmi2"],
    "avx2": ["-mavx2", "-mfma"],
    "scalar": [],
}


class BuildError(RuntimeError):
    """The library could not be compiled (no compiler, or a compile error)."""


def compiler() -> str | None:
    """Path of the C++ compiler to use ($CXX, else g++, else c++), or None."""
    for name in (os.environ.get("CXX"), "g++", "c++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def isas() -> dict[str, list[str]]:
    """Kernel variants to compile on this machine type."""
    if platform.machine().lower() in ("x86_64", "amd64", "i686", "i386"):
        return X86_ISAS
    return {"scalar": []}


def _compiler_version(cxx: str) -> str:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def cache_dirs() -> list[Path]:
    """Where the library may live, in order of preference."""
    dirs = [Path(__file__).resolve().parent / "_lib"]
    user = os.environ.get("HDR_DISTILL_CACHE")
    dirs.append(Path(user) if user else Path.home() / ".cache" / "hdr-distill")
    return dirs


def source_files() -> list[Path]:
    """Every source and header in csrc/ (sorted by name): what the library's hash covers."""
    return sorted(p for p in CSRC.iterdir() if p.suffix in (".cpp", ".h") and p.is_file())


def library_name(cxx: str | None = None) -> str:
    """``fused-<hash>.so``: the hash changes with any source or header, the flags, compiler and machine."""
    cxx = cxx or compiler() or "none"
    h = hashlib.sha256()
    for src in source_files():
        data = src.read_bytes()
        h.update(f"{src.name}\0{len(data)}\0".encode())
        h.update(data)
    h.update(repr((DISPATCH_SRC, KERNEL_SRCS, BASE_FLAGS, isas(), _compiler_version(cxx), platform.machine())).encode())
    return f"fused-{h.hexdigest()[:16]}.so"


def find_library() -> Path | None:
    """The built library for the current sources, if it exists in any cache directory."""
    name = library_name()
    for d in cache_dirs():
        if (d / name).is_file():
            return d / name
    return None


def _writable_dir() -> Path:
    for d in cache_dirs():
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = d / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
            return d
        except OSError:
            continue
    raise BuildError(f"no writable cache directory among {[str(d) for d in cache_dirs()]}")


def compile_commands(cxx: str, tmp: Path) -> tuple[list[list[str]], list[Path]]:
    """The compiler command lines and their object files (in ``tmp``): every kernel file once per ISA
    (``-DHD_ISA=<isa>`` and that ISA's flags), then the dispatcher with ``-DHD_HAVE_<ISA>`` per variant.
    The AVX-512 slice kernel, the longest compile, comes first, so the last job to start is a short one."""
    cmds, objs = [], []
    for isa, flags in isas().items():
        for src in KERNEL_SRCS:
            obj = tmp / f"{Path(src).stem}_{isa}.o"
            cmds.append([cxx, *BASE_FLAGS, *flags, f"-DHD_ISA={isa}", "-c", str(CSRC / src), "-o", str(obj)])
            objs.append(obj)
    defines = [f"-DHD_HAVE_{isa.upper()}" for isa in isas() if isa != "scalar"]
    obj = tmp / "fused.o"
    cmds.append([cxx, *BASE_FLAGS, *defines, "-c", str(CSRC / DISPATCH_SRC), "-o", str(obj)])
    objs.append(obj)
    return cmds, objs


def _compile(cmd: list[str]) -> tuple[int, str]:
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return res.returncode, res.stdout


def build(force: bool = False, verbose: bool = True) -> Path:
    """Compile the library if it is not built yet; return its path.

    Args:
        force: recompile even if the cached library exists.
        verbose: print what was done.

    Raises:
        BuildError: no C++ compiler, or compilation failed (the message holds the compiler's output).
    """
    cxx = compiler()
    if cxx is None:
        raise BuildError("no C++ compiler found (set $CXX or install g++); the fused student path is unavailable")
    existing = find_library()
    if existing is not None and not force:
        if verbose:
            print(f"students.build: up to date: {existing}")
        return existing
    out_dir = _writable_dir()
    target = out_dir / library_name(cxx)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        tmp = Path(tmp)
        cmds, objs = compile_commands(cxx, tmp)
        with concurrent.futures.ThreadPoolExecutor(max_workers=JOBS) as pool:
            futures = [pool.submit(_compile, cmd) for cmd in cmds]
            for cmd, fut in zip(cmds, futures):
                rc, log = fut.result()
                if rc != 0:
                    for f in futures:
                        f.cancel()  # the first error is reported without compiling the rest
                    raise BuildError(f"compile failed: {' '.join(cmd)}\n{log}")
        tmp_so = tmp / target.name
        cmd = [cxx, "-shared", "-fopenmp", *map(str, objs), "-o", str(tmp_so)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise BuildError(f"link failed: {' '.join(cmd)}\n{res.stdout}{res.stderr}")
        os.replace(tmp_so, target)  # atomic: a concurrent loader never sees a half-written file
    if verbose:
        print(f"students.build: compiled {target} ({len(KERNEL_SRCS)} kernel files x {', '.join(isas())}) in {time.perf_counter() - t0:.1f} s")
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m students.build", description=__doc__.splitlines()[0])
    p.add_argument("--force", action="store_true", help="recompile even if the cached library exists")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = p.parse_args(argv)
    try:
        build(force=args.force, verbose=not args.quiet)
    except BuildError as e:
        print(f"students.build: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
