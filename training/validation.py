"""Scoring weights on labelled soundscapes with event F1 (psds_eval, Table 3 protocol; a class never detected
counts 0).

Each epoch is validated (`validate`): clip and frame BCE, and the event rule tuned for event F1 on the
validation set: one median filter length and per-class thresholds, which the best epoch's checkpoint
carries. A saved checkpoint is scored on a held-out set by the path the shipped model takes
(`evaluate_checkpoint`).
"""

from pathlib import Path

import numpy as np

from htsat_live.training.data import SoundscapeSet
from htsat_live.training.loss import loss_terms
from htsat_live.training.settings import TrainSettings
from htsat_live.training.soundscape_folder import SoundscapeFolder

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)  # thresholds tried per class on validation
MEDIAN_TOKENS = (1, 3, 5, 7, 9)  # median filter lengths tried on validation, in tokens (0.3125 s each)


def token_probabilities(model, mels, batch_size: int = 32):
    """Eval-mode token probabilities: mels [N, T, F] -> numpy [N, tokens, C]."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(mels), batch_size):
            out.append(
                torch.sigmoid(model.token_logits(mels[start : start + batch_size].float())).transpose(1, 2).numpy()
            )
    return np.concatenate(out)


def token_events(
    names: list[str], probabilities: np.ndarray, thresholds: np.ndarray, labels: list[str], durations: list[float]
):
    """Runs of tokens over threshold as an event table (filename, onset, offset, event_label), each clip's
    events within its duration (a shorter clip was zero-padded to the 10-s window).

    A token is 32 identical frames of the framewise output, so this equals the official frame rule."""
    import pandas as pd

    from htsat_live.model.event_rule import runs_to_events
    from htsat_live.model.event_table import EVENT_COLUMNS
    from htsat_live.model.timebase import WINDOW_SECONDS

    token_seconds = WINDOW_SECONDS / probabilities.shape[1]
    rows = []
    for name, probs, duration in zip(names, probabilities, durations):
        rows += [
            (name, start * token_seconds, min(end * token_seconds, duration), label)
            for start, end, label in runs_to_events(probs > thresholds, labels)
            if start * token_seconds < duration
        ]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def tune_post_processing(
    data: SoundscapeSet, probabilities: np.ndarray, labels: list[str]
) -> tuple[int, np.ndarray, dict[str, float]]:
    """The event rule with the best event F1 on `data`: a median filter length of MEDIAN_TOKENS (one for
    all classes, the best macro) and, under it, per class the threshold of THRESHOLD_GRID with the best F1.
    Returns (median length in tokens, thresholds [C], per-class F1)."""
    from htsat_live.model.event_rule import median_over_frames
    from htsat_live.model.event_table import event_f1

    events, meta = data.folder.events, data.folder.durations  # overlaps merged when the folder was read
    truth = events[events["event_label"].isin(labels)]
    durations = list(meta["duration"])
    chosen = (-1.0, 1, np.full(len(labels), 0.5, np.float32), {})
    for median in MEDIAN_TOKENS:
        filtered = np.stack([median_over_frames(clip, median) for clip in probabilities])  # [N, tokens, C]
        best = {label: (-1.0, 0.5) for label in labels}
        for threshold in THRESHOLD_GRID:
            detections = token_events(data.names, filtered, np.full(len(labels), threshold), labels, durations)
            _, per_class = event_f1(truth, meta, detections)
            for label in labels:
                f1 = strict_f1(per_class, label)
                if f1 > best[label][0]:
                    best[label] = (f1, float(threshold))
        macro = float(np.mean([best[label][0] for label in labels]))
        if macro > chosen[0]:
            chosen = (
                macro,
                median,
                np.array([best[label][1] for label in labels], np.float32),
                {label: best[label][0] for label in labels},
            )
    return chosen[1], chosen[2], chosen[3]


def median_frames_of_tokens(median_tokens: int, tokens: int) -> int:
    """The grid-frame median filter that spans `median_tokens` of a model's `tokens` time tokens (odd;
    1 token = no filter)."""
    from htsat_live.model.htsat import MODEL_FRAMES

    return 1 if median_tokens == 1 else median_tokens * (MODEL_FRAMES // tokens) - 1


def validate(model, val_set: SoundscapeSet, labels: list[str], settings: TrainSettings) -> dict:
    """Validation of one set of weights: clip and frame BCE, and the tuned event rule with its event F1."""
    import torch

    probabilities = token_probabilities(model, val_set.mels)  # [N, tokens, C]
    with torch.no_grad():
        val_logits = torch.logit(torch.from_numpy(probabilities).clamp(1e-6, 1 - 1e-6)).transpose(1, 2)
        _, val_clip, val_frame = loss_terms(val_logits, val_set.clip_targets, val_set.token_targets, settings)
    median_tokens, thresholds, class_f1 = tune_post_processing(val_set, probabilities, labels)
    return {
        "val_clip_bce": val_clip.item(),
        "val_frame_bce": val_frame.item(),
        "macro_f1": float(np.mean(list(class_f1.values()))),
        "class_f1": class_f1,
        "thresholds": thresholds.tolist(),
        "median_tokens": median_tokens,
    }


def detect_set(predictor, folder: SoundscapeFolder, batch_size: int = 8, progress: bool = True):
    """Events of every clip of a soundscape folder (its first 10 s) by the offline rule with the predictor's
    own event settings (one pass, its median filter, its per-class thresholds, runs of active frames): the
    path the shipped model takes. Returns an event table."""
    import pandas as pd
    from tqdm import tqdm

    from htsat_live.model.audio import read_clip
    from htsat_live.model.event_rule import build_targets, events_from_scores
    from htsat_live.model.event_table import EVENT_COLUMNS
    from htsat_live.model.timebase import WINDOW_SAMPLES, zero_padded_batch

    if predictor.thresholds is None:
        raise ValueError("the model has no per-class thresholds to detect events with")
    targets = build_targets(predictor.labels, predictor.thresholds)  # one per class, the model's thresholds
    names = folder.names
    rows = []
    for start in tqdm(
        range(0, len(names), batch_size), desc=f"detecting {folder.directory.name}", unit="batch", disable=not progress
    ):
        batch = names[start : start + batch_size]
        waves = [read_clip(folder.path(name))[:WINDOW_SAMPLES] for name in batch]
        framewise = predictor.predict(zero_padded_batch(waves), short="pad")["framewise"]  # [B, 1024, C]
        for name, wave, scores in zip(batch, waves, framewise):
            events, _ = events_from_scores(scores, len(wave), targets, predictor.median_frames)
            rows += [(name, onset, offset, label) for onset, offset, label in events]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def evaluate_checkpoint(
    path: Path, folder: SoundscapeFolder, detections_path: Path, progress: bool = True
) -> tuple[float, dict[str, float]]:
    """Macro and per-class event F1 (psds_eval, Table 3 protocol; a class never detected counts 0) of a
    checkpoint on a soundscape folder (its events of the checkpoint's classes); writes its detections TSV."""
    from htsat_live.model import load_model
    from htsat_live.model.event_table import event_f1, write_events

    predictor = load_model(path)
    detections = detect_set(predictor, folder, progress=progress)
    write_events(detections_path, detections.itertuples(index=False))
    truth = folder.events[folder.events["event_label"].isin(predictor.labels)]
    _, per_class = event_f1(truth, folder.durations, detections)
    per_class = {label: strict_f1(per_class, label) for label in predictor.labels}
    return float(np.mean(list(per_class.values()))), per_class


def strict_f1(per_class: dict[str, float], label: str) -> float:
    """A class's F1 with 0 for a class never detected (psds_eval reports NaN and leaves it out of its macro)."""
    value = per_class.get(label, 0.0)
    return 0.0 if value != value else float(value)
