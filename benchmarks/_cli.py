"""The one argument parser every benchmark uses (not a benchmark itself: private, skipped by the --help test).

``parser(module, doc)`` gives an ``argparse.ArgumentParser`` whose usage line reads ``python -m <module>``,
whose description is the script's whole docstring (layout kept), and whose options show their defaults.
``comma_list(kind)`` is the type of a flag that takes one comma-separated list (``--sigmas 2,8,32``), the
value syntax of the ``key=value`` arguments these scripts took before.
"""
from __future__ import annotations

import argparse
from typing import Callable


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Docstring layout kept; ``(default: ...)`` appended to each option that has a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default in (None, False, argparse.SUPPRESS) or isinstance(
                action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        if isinstance(default, (list, tuple)):
            default = " ".join(str(v) for v in default)
        return f"{text} (default: {str(default).replace('%', '%%')})"


def parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """An argument parser for ``python -m <module>``, described by the script's docstring ``doc``."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=doc, formatter_class=_Formatter)


def comma_list(kind: Callable = str) -> Callable[[str], list]:
    """An argparse ``type``: ``"a,b,c"`` -> ``[kind("a"), kind("b"), kind("c")]``."""
    def convert(text: str) -> list:
        try:
            return [kind(v) for v in text.split(",")]
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
    convert.__name__ = "comma-separated list"
    return convert


def refuse_old_keys(ap: argparse.ArgumentParser, positionals: list[str], keys: dict[str, str]) -> None:
    """Stop with a hint when a positional is one of the old ``key=value`` options, which would otherwise be
    taken as a path or a Hydra override. ``keys``: old key -> its new form, ``{value}`` standing for the value
    (``{"sigmas": "--sigmas {value}", "leaves": "--leaves"}``)."""
    for arg in positionals:
        key, eq, value = arg.partition("=")
        if eq and key in keys:
            ap.error(f"{arg!r}: the old {key}=... argument is now {keys[key].format(value=value)}")
