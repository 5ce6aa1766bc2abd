"""The on-disk cache of training features: the log-mels of a set of clips, computed once and kept outside the
data folder (which may be read-only or shared).

The cache lives in `--cache-dir`, else `$XDG_CACHE_HOME/htsat-live`, else `~/.cache/htsat-live`. An entry is
named by a key of what the features depend on: the front end's settings and, per clip, its path's name, size
and modification time (a clip rewritten is computed again; a folder moved or copied with its times is not).
Entries are written whole (to a temporary name, then renamed), so a run killed while writing leaves none.
Deleting the folder is always safe.
"""

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from htsat_live.model.cache import user_cache_dir
from htsat_live.model.frontend import F_MAX, F_MIN, N_FFT, N_MELS
from htsat_live.model.timebase import HOP_LENGTH, SAMPLE_RATE, WINDOW_SAMPLES

FEATURES = (
    f"logmel sr={SAMPLE_RATE} n_fft={N_FFT} hop={HOP_LENGTH} mels={N_MELS} fmin={F_MIN} fmax={F_MAX} "
    f"window={WINDOW_SAMPLES}"
)


def cache_home(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: `cache_dir`, else $XDG_CACHE_HOME/htsat-live, else ~/.cache/htsat-live."""
    return Path(cache_dir) if cache_dir else user_cache_dir()


def clips_key(paths: list[Path]) -> str:
    """The key of the features of these clips, in this order (see the module docstring)."""
    digest = hashlib.sha256(FEATURES.encode())
    for path in paths:
        stat = Path(path).stat()
        digest.update(f"\n{Path(path).name}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def cached_features(cache_dir: Path, kind: str, key: str, compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, Path]:
    """The array cached as <cache_dir>/<kind>/<key>.npy, computed by `compute()` and stored when absent.
    Returns the array and its file."""
    path = Path(cache_dir) / kind / f"{key}.npy"
    if path.is_file():
        return np.load(path), path
    features = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{key}.{os.getpid()}.partial.npy")
    np.save(partial, features)
    os.replace(partial, path)
    return features, path
