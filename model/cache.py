"""The user's cache folder, where htsat-live keeps what it computes once and reuses: the ONNX exports and the
OpenVINO trunks of checkpoints (model/onnx.py, model/openvino.py) and the log-mels of training sets
(training/mel_cache.py), each in a folder of its own. Deleting it is always safe."""

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/htsat-live, else ~/.cache/htsat-live."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "htsat-live"
