"""Every benchmark runs as ``python -m benchmarks.<name>``: one argparse CLI each, package imports only.

The --help runs are real subprocesses (started together, so the suite pays for about one interpreter start
per core), so that a broken import or parser in any script fails here rather than when someone runs it.
``import benchmarks`` works under pytest from a clean clone with no install and no sys.path edit: tests/ and
tests/benchmarks/ are packages, so pytest's default (prepend) import mode puts the folder above tests/, the
repository root, on sys.path; the subprocesses run from the root, where ``python -m`` finds the package too.
"""
from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import benchmarks
from benchmarks._cli import comma_list, parser, refuse_old_keys

ROOT = Path(__file__).resolve().parents[2]
PKG = Path(benchmarks.__file__).parent
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(PKG)]) if not m.name.startswith("_"))


def test_the_package_is_the_repository_folder_and_holds_every_script():
    assert PKG == ROOT / "benchmarks"
    assert MODULES == sorted(p.stem for p in PKG.glob("*.py") if not p.stem.startswith("_"))
    assert len(MODULES) >= 9


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess]:
    """``python -m benchmarks.<name> --help`` for every module, run side by side from the repository root."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = {m: subprocess.Popen([sys.executable, "-m", f"benchmarks.{m}", "--help"], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in MODULES}
    done = {}
    for m, p in procs.items():
        out, err = p.communicate(timeout=300)
        done[m] = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    return done


@pytest.mark.parametrize("module", MODULES)
def test_help_runs_and_names_the_module(helps, module):
    res = helps[module]
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith(f"usage: python -m benchmarks.{module} "), res.stdout[:300]
    first_doc_line = ast.get_docstring(ast.parse((PKG / f"{module}.py").read_text())).splitlines()[0]
    assert first_doc_line in res.stdout  # the docstring is the description
    description = res.stdout.split("\n\n", 1)[1].split("\noptions:")[0]
    assert f"python -m benchmarks.{module}" in description  # the docstring's usage example is the new form


def test_package_docstring_lists_every_benchmark():
    doc = benchmarks.__doc__
    listed = {line.split()[0] for line in doc.splitlines() if line.startswith("  ") and line.split()}
    assert set(MODULES) <= listed, f"not listed in benchmarks/__init__.py: {set(MODULES) - listed}"


@pytest.mark.parametrize("module", MODULES)
def test_imports_go_through_the_package(module):
    """No ``from bench_student import ...`` (a sibling found through sys.path[0]), no sys.path edits, no
    re-invocation of a script by its file path."""
    src = (PKG / f"{module}.py").read_text()
    assert "sys.path" not in src
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
            assert node.level == 0, f"relative import in {module}: use 'from benchmarks.x import ...'"
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top not in MODULES and top != "_cli", f"{module} imports {name}: use benchmarks.{name}"
    assert "sys.executable, __file__" not in src


def test_parser_shows_defaults_and_parses_comma_lists(capsys):
    ap = parser("benchmarks.example", "Example.\n\n    keep   this layout")
    ap.add_argument("--sigmas", type=comma_list(float), default="2,8,32", help="blurs")
    ap.add_argument("--sizes", nargs="+", default=["1080p", "12mp"], help="sizes")
    ap.add_argument("--json", default=None, help="output")
    ap.add_argument("--flag", action="store_true", help="a switch")
    text = ap.format_help()
    assert text.startswith("usage: python -m benchmarks.example ")
    assert "    keep   this layout" in text
    assert "blurs (default: 2,8,32)" in text and "sizes (default: 1080p 12mp)" in text
    assert "output\n" in text and "a switch\n" in text  # no "(default: None)" / "(default: False)"
    assert ap.parse_args([]).sigmas == [2.0, 8.0, 32.0]
    assert ap.parse_args(["--sigmas", "4"]).sigmas == [4.0]
    with pytest.raises(SystemExit) as e:
        ap.parse_args(["--sigmas", "2,x"])
    assert e.value.code == 2 and "'2,x'" in capsys.readouterr().err


def test_old_key_value_arguments_are_refused_with_the_new_flag(capsys):
    ap = parser("benchmarks.example", None)
    refuse_old_keys(ap, ["runs/a.pt", "teacher=gamma"], {"sigmas": "--sigmas {value}"})  # others pass
    with pytest.raises(SystemExit) as e:
        refuse_old_keys(ap, ["runs/a.pt", "sigmas=2,8"], {"sigmas": "--sigmas {value}"})
    assert e.value.code == 2 and "now --sigmas 2,8" in capsys.readouterr().err


@pytest.mark.parametrize("module, argv, hint", [
    ("error_anatomy", ["missing.pt", "sigmas=2,8"], "--sigmas 2,8"),
    ("generalization_gap", ["missing.pt", "max_seen=4"], "--max-seen 4"),
    ("generalization_gap", ["missing.pt", "squares=1"], "--squares"),
    ("grid_ceiling", ["teacher=gamma", "steps=3"], "--steps 3"),
    ("durand_student_vs_fast_teacher", ["missing.pt", "work=4"], "--work 4"),
])
def test_scripts_that_took_key_value_arguments_point_to_their_flags(capsys, module, argv, hint):
    """Refused while parsing, before a checkpoint is loaded or a config composed."""
    import importlib

    main = importlib.import_module(f"benchmarks.{module}").main
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and hint in capsys.readouterr().err
