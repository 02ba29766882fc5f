"""students.build: what the library's hash covers, what is compiled per ISA, and what the library exports."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from students import build

needs_cxx = pytest.mark.skipif(build.compiler() is None, reason="no C++ compiler")


@pytest.fixture
def csrc_copy(tmp_path, monkeypatch):
    """A private copy of students/csrc that build.CSRC points at."""
    d = tmp_path / "csrc"
    shutil.copytree(build.CSRC, d)
    monkeypatch.setattr(build, "CSRC", d)
    return d


def test_hash_covers_every_source_and_header(csrc_copy):
    name = build.library_name()
    assert re.fullmatch(r"fused-[0-9a-f]{16}\.so", name)
    assert build.library_name() == name  # deterministic
    for f in ["simd.h", "slice_tables.h", "slice_apply.cpp", "lowres.cpp", "bilateral.cpp", "fused.cpp"]:
        p = csrc_copy / f
        text = p.read_text()
        p.write_text(text + "\n// edited\n")
        assert build.library_name() != name, f"an edit of {f} must rebuild the library"
        p.write_text(text)
        assert build.library_name() == name
    (csrc_copy / "new.h").write_text("// a new header\n")
    assert build.library_name() != name, "a new header must rebuild the library"
    (csrc_copy / "new.h").unlink()
    (csrc_copy / "notes.txt").write_text("not a source\n")
    assert build.library_name() == name


def test_hash_sees_a_renamed_file(csrc_copy):
    # Same bytes under another name (an #include would now miss it) is another library.
    name = build.library_name()
    (csrc_copy / "slice_tables.h").rename(csrc_copy / "tables.h")
    assert build.library_name() != name


def test_every_source_is_compiled_and_every_header_used():
    cpps = {p.name for p in build.CSRC.glob("*.cpp")}
    assert cpps == {build.DISPATCH_SRC, *build.KERNEL_SRCS}, "a .cpp in csrc/ that build.py does not compile"
    includes = set()
    for p in build.CSRC.glob("*.*"):
        includes |= set(re.findall(r'#include "([^"]+)"', p.read_text()))
    assert {p.name for p in build.CSRC.glob("*.h")} == includes
    for src in build.KERNEL_SRCS:  # every kernel file stands on the one vector layer
        assert '#include "simd.h"' in (build.CSRC / src).read_text()
    assert "#include \"" not in (build.CSRC / build.DISPATCH_SRC).read_text()  # baseline: no ISA headers


def test_each_kernel_file_is_compiled_once_per_isa(tmp_path):
    cmds, objs = build.compile_commands("g++", tmp_path)
    assert len(cmds) == len(objs) == len(build.KERNEL_SRCS) * len(build.isas()) + 1
    assert len(set(objs)) == len(objs)
    seen = set()
    for cmd in cmds[:-1]:
        isa = next(a for a in cmd if a.startswith("-DHD_ISA="))[len("-DHD_ISA="):]
        src = Path(cmd[cmd.index("-c") + 1]).name
        for flag in build.isas()[isa]:
            assert flag in cmd
        seen.add((src, isa))
    assert seen == {(s, i) for s in build.KERNEL_SRCS for i in build.isas()}
    dispatch = cmds[-1]
    assert Path(dispatch[dispatch.index("-c") + 1]).name == build.DISPATCH_SRC
    assert not any(a.startswith("-m") or a.startswith("-DHD_ISA") for a in dispatch)
    assert {f"-DHD_HAVE_{i.upper()}" for i in build.isas() if i != "scalar"} <= set(dispatch)


@needs_cxx
def test_second_build_does_nothing(monkeypatch):
    path = build.build(verbose=False)
    assert path == build.find_library() and path.name == build.library_name()
    mtime = path.stat().st_mtime_ns

    def no_compile(*args):
        raise AssertionError(f"started a build: {args}")

    monkeypatch.setattr(build, "_compile", no_compile)
    monkeypatch.setattr(build, "_writable_dir", no_compile)  # the build's first step
    assert build.build(verbose=False) == path
    assert path.stat().st_mtime_ns == mtime


@needs_cxx
@pytest.mark.skipif(shutil.which("nm") is None, reason="no nm")
def test_library_exports_the_c_abi_only():
    # Kernel internals have internal linkage (anonymous namespace): the linker cannot pick an AVX-512 copy of
    # a shared inline function for code that runs on a CPU without AVX-512.
    path = build.build(verbose=False)
    out = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True)
    exported = {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}
    kernels = ["hd_slice_apply", "hd_bilateral_splat", "hd_bilateral_base_map", "hd_downsample", "hd_detail",
               "hd_lanes"]
    expected = {"hd_abi_version", "hd_isa", "hd_set_isa", "hd_compiled_isas", *kernels}
    expected |= {f"{k}_{isa}" for k in kernels for isa in build.isas()}
    assert exported == expected
    allsyms = subprocess.run(["nm", "-C", str(path)], capture_output=True, text=True, check=True).stdout
    weak = [line for line in allsyms.splitlines() if re.match(r"\S*\s+[WVu]\s", line)]
    assert not weak, f"weak (mergeable) symbols: {weak[:5]}"


@needs_cxx
def test_compile_error_is_reported_and_leaves_no_library(csrc_copy, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "cache_dirs", lambda: [tmp_path / "lib"])
    with open(csrc_copy / "simd.h", "a") as f:
        f.write('\n#error "deliberately broken"\n')
    with pytest.raises(build.BuildError, match="deliberately broken"):
        build.build(verbose=False)
    assert not list((tmp_path / "lib").glob("*.so"))
    assert build.find_library() is None
