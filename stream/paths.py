"""Output paths checked before any work starts: `output_file` and `output_folder` say in one line why a file
or a folder cannot be written, naming the setting or flag that gave it, and create nothing.

The reasons told: a folder where a file is wanted (or a file where a folder is), a path under a plain file,
a read-only file system, no write permission. Each is an `OutputPathError`, a ValueError (and an OSError, as
the outputs' own errors are) whose message starts with the setting: "sinks.clips_dir: cannot write to
/data/clips: /data is a file, not a folder".
"""

import os
from pathlib import Path


class OutputPathError(ValueError, OSError):
    """An output path that cannot be written; the message starts with its setting or flag."""


def _first_existing(path: Path) -> Path:
    """The path itself or its nearest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _why_not_writable(existing: Path) -> str | None:
    """Why nothing can be written in (or to) `existing`, an existing path; None when it can be."""
    try:
        if os.statvfs(existing).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError as error:
        return error.strerror or str(error)
    if not os.access(existing, os.W_OK | (os.X_OK if existing.is_dir() else 0)):
        return "permission denied"
    return None


def _under_a_file(existing: Path) -> str:
    return f"{existing} is a file, not a folder"


def output_folder(path: str | Path, setting: str) -> Path:
    """`path` as a Path when a folder there exists or can be made and written to; else OutputPathError."""
    path = Path(path)
    existing = _first_existing(path)
    if not existing.is_dir():
        why = "it is a file, not a folder" if existing == Path(os.path.abspath(path)) else _under_a_file(existing)
        raise OutputPathError(f"{setting}: cannot write to {path}: {why}")
    why = _why_not_writable(existing)
    if why:
        raise OutputPathError(f"{setting}: cannot write to {path}: {why}")
    return path


def output_file(path: str | Path, setting: str) -> Path:
    """`path` as a Path when a file there (and its folder) can be made or written to; else OutputPathError."""
    path = Path(path)
    existing = _first_existing(path)
    if existing == Path(os.path.abspath(path)):
        if existing.is_dir():
            raise OutputPathError(f"{setting}: cannot write {path}: it is a folder, not a file")
    elif not existing.is_dir():
        raise OutputPathError(f"{setting}: cannot write {path}: {_under_a_file(existing)}")
    why = _why_not_writable(existing)
    if why:
        raise OutputPathError(f"{setting}: cannot write {path}: {why}")
    return path
