"""Training data: the mixed soundscape sets written by `htsat_live.training.soundscapes.make_set` (10-s clips,
soundscapes.tsv strong labels, manifest.json), with their targets and a sampling weight per clip.

Log-mels are computed once per folder and cached beside the clips (logmels.npy, keyed by the manifest hash),
so an epoch costs only the transformer. Targets: per clip the labels it holds, per time token the share of
the token that a strong label of each class covers. Sampling is balanced: clips are weighted by the rarity
of their labels.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch only for the annotations: importing this module stays light
    import torch


@dataclass
class SoundscapeSet:
    directory: Path
    names: list[str]
    mels: "torch.Tensor"  # [N, T, 64] float16 log-mel dB
    clip_targets: "torch.Tensor"  # [N, C] 0/1
    token_targets: "torch.Tensor"  # [N, tokens, C] share of each token covered by a label
    manifest_hash: str


def token_targets(events: list[dict], labels: list[str], tokens: int, seconds: float) -> np.ndarray:
    """Strong labels -> [tokens, C]: the share of each token's span that an event of the class covers."""
    target = np.zeros((tokens, len(labels)), np.float32)
    width = seconds / tokens
    starts = np.arange(tokens) * width
    for event in events:
        overlap = np.clip(np.minimum(event["offset"], starts + width) - np.maximum(event["onset"], starts), 0, None) / width
        column = labels.index(event["label"])
        target[:, column] = np.maximum(target[:, column], overlap)
    return np.minimum(target, 1.0)


def load_set(directory: Path, labels: list[str], tokens: int, progress: bool = True) -> SoundscapeSet:
    """A mixed set with its log-mels (computed once, cached as logmels.npy beside the clips)."""
    import soundfile as sf
    import torch
    from tqdm import tqdm

    from htsat_live.model.frontend import LogMel

    directory = Path(directory)
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    unknown = set(manifest["labels"]) - set(labels)
    if unknown:
        raise ValueError(f"{directory}: labels {sorted(unknown)} are not among the model's {labels}")
    names = [clip["filename"] for clip in manifest["clips"]]
    seconds = manifest["settings"]["clip_seconds"]
    cache, key = directory / "logmels.npy", directory / "logmels.hash"
    if cache.is_file() and key.is_file() and key.read_text().strip() == manifest["hash"]:
        mels = np.load(cache)
    else:
        frontend = LogMel()
        mels = None
        for i, name in enumerate(tqdm(names, desc=f"log-mels {directory.name}", unit="clip", disable=not progress)):
            wave = sf.read(str(directory / name), dtype="float32")[0]
            with torch.no_grad():
                mel = frontend(torch.from_numpy(wave)[None])[0].numpy()  # [T, 64]
            if mels is None:
                mels = np.zeros((len(names), *mel.shape), np.float16)
            mels[i] = mel
        np.save(cache, mels)
        key.write_text(manifest["hash"] + "\n")
    frames = np.stack([token_targets(clip["events"], labels, tokens, seconds) for clip in manifest["clips"]])
    return SoundscapeSet(directory, names, torch.from_numpy(mels), torch.from_numpy(frames.max(axis=1) > 0).float(),
                         torch.from_numpy(frames), manifest["hash"])


def balanced_weights(clip_targets: np.ndarray) -> np.ndarray:
    """Sampling weight per clip: the mean over its labels of 1 / (clips holding that label)."""
    counts = np.maximum(clip_targets.sum(axis=0), 1)  # [C]
    per_clip = (clip_targets / counts).sum(axis=1) / np.maximum(clip_targets.sum(axis=1), 1)
    return per_clip / per_clip.sum()
