"""Atomic file writes: every checkpoint, cache entry, image, report and summary goes through here.

A temp file beside the destination is written, fsynced, given the mode a plain ``open()`` would give, and
renamed over the destination: a reader never sees half a file, and a failure (or Ctrl-C) leaves the
previous file untouched and no temp file behind.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` to fill a temp file, then move it to ``path`` atomically.

    The temp name is hidden (leading dot) and keeps ``path``'s extension, so writers that pick the
    format from the name (matplotlib, OpenEXR, np.savez) do the right thing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_savefig(fig, path: str | os.PathLike, **kwargs) -> Path:
    """``fig.savefig`` through a temp file (the format follows ``path``'s extension)."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, **kwargs))
