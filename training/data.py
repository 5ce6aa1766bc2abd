"""Training data: a folder of strong-labelled soundscapes (`soundscape_folder`: our own sets or DESED-style
folders), with its log-mels, its targets and a sampling weight per clip.

Log-mels are computed once per set and kept in the feature cache (`mel_cache`, outside the data folder), so an
epoch costs only the transformer. Targets: per clip the classes it holds, per time token the share of the token
that an event of each class covers. Sampling is balanced: clips are weighted by the rarity of their labels.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from htsat_live.training.soundscape_folder import SoundscapeFolder

if TYPE_CHECKING:  # torch only for the annotations: importing this module stays light
    import torch


@dataclass
class SoundscapeSet:
    folder: SoundscapeFolder
    mels: "torch.Tensor"  # [N, T, 64] float16 log-mel dB of each clip's first 10 s, zero-padded
    clip_targets: "torch.Tensor"  # [N, C] 0/1
    token_targets: "torch.Tensor"  # [N, tokens, C] share of each token covered by an event

    @property
    def names(self) -> list[str]:
        return self.folder.names


def token_targets(events: list[dict], labels: list[str], tokens: int, seconds: float) -> np.ndarray:
    """Strong labels -> [tokens, C]: the share of each token's span that an event of the class covers.
    Events of other classes than `labels` are left out."""
    target = np.zeros((tokens, len(labels)), np.float32)
    width = seconds / tokens
    starts = np.arange(tokens) * width
    for event in events:
        if event["label"] not in labels:
            continue
        overlap = (
            np.clip(np.minimum(event["offset"], starts + width) - np.maximum(event["onset"], starts), 0, None) / width
        )
        column = labels.index(event["label"])
        target[:, column] = np.maximum(target[:, column], overlap)
    return np.minimum(target, 1.0)


def folder_logmels(folder: SoundscapeFolder, progress: bool = True) -> np.ndarray:
    """float16 [N, T, 64]: the log-mels of each clip (any rate and channels, to 32 kHz mono) over its first
    10 s, zero-padded."""
    import torch
    from tqdm import tqdm

    from htsat_live.model.audio import read_clip
    from htsat_live.model.frontend import LogMel
    from htsat_live.model.timebase import WINDOW_SAMPLES, zero_padded_batch

    frontend = LogMel()
    mels = None
    for i, name in enumerate(
        tqdm(folder.names, desc=f"log-mels {folder.directory.name}", unit="clip", disable=not progress)
    ):
        wave = zero_padded_batch([read_clip(folder.path(name))[:WINDOW_SAMPLES]])  # [1, 320000]
        with torch.no_grad():
            mel = frontend(torch.from_numpy(wave))[0].numpy()  # [T, 64]
        if mels is None:
            mels = np.zeros((len(folder.names), *mel.shape), np.float16)
        mels[i] = mel
    return mels


def load_set(
    folder: SoundscapeFolder, labels: list[str], tokens: int, cache_dir: Path, progress: bool = True
) -> SoundscapeSet:
    """A soundscape folder as training data for the classes `labels`, its log-mels from the feature cache in
    `cache_dir` (computed and stored there the first time)."""
    import torch

    from htsat_live.model.timebase import WINDOW_SECONDS
    from htsat_live.training.mel_cache import cached_features, clips_key

    key = clips_key([folder.path(name) for name in folder.names])
    mels, _ = cached_features(cache_dir, "soundscape-logmels", key, lambda: folder_logmels(folder, progress))
    by_clip = {name: [] for name in folder.names}
    for name, onset, offset, label in folder.events.itertuples(index=False):
        by_clip[name].append({"onset": onset, "offset": offset, "label": label})
    frames = np.stack([token_targets(by_clip[name], labels, tokens, WINDOW_SECONDS) for name in folder.names])
    return SoundscapeSet(
        folder, torch.from_numpy(mels), torch.from_numpy(frames.max(axis=1) > 0).float(), torch.from_numpy(frames)
    )


def balanced_weights(clip_targets: np.ndarray) -> np.ndarray:
    """Sampling weight per clip: the mean over its labels of 1 / (clips holding that label)."""
    counts = np.maximum(clip_targets.sum(axis=0), 1)  # [C]
    per_clip = (clip_targets / counts).sum(axis=1) / np.maximum(clip_targets.sum(axis=1), 1)
    return per_clip / per_clip.sum()
