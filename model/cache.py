"""The user's cache folder, where htsat-live keeps what it computes once and reuses: the ONNX exports and the
OpenVINO trunks of checkpoints (model/onnx.py, model/openvino.py) and the log-mels of training sets
(training/mel_cache.py), each in a folder of its own. Deleting it is always safe."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/htsat-live, else ~/.cache/htsat-live."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "htsat-live"


@contextlib.contextmanager
def cache_entry(path: Path) -> Iterator[Path]:
    """Where to write the cache entry `path`: a path of the same name in a new folder beside it. On success the
    files written there (`path` and its companions, such as an OpenVINO IR's .bin) are moved into place, `path`
    itself last, so that a process that finds `path` finds the entry whole, even while another process writes
    the same entry. The folder is removed either way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}-", dir=path.parent))
    try:
        yield staging / path.name
        for written in sorted(staging.iterdir(), key=lambda file: file.name == path.name):
            os.replace(written, path.parent / written.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
