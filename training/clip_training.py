"""Fine-tuning (or training) HTS-AT on clip-labelled data: `htsat-live train --clips DATA`.

The recipe is the HTS-AT paper's for ESC-50 and Speech Commands (`ClipRecipe`): AdamW (0.9, 0.999, eps 1e-8,
weight decay 0.05); torch's SequentialLR of a LinearLR warm-up over the first `warmup_epochs` epochs then a
StepLR that halves the rate every `decay_every` epochs (both stepped per optimizer step); a balanced sampler
(windows drawn with the weight of their labels' rarity, `data.balanced_weights`); mixup with alpha 0.5 on
every batch; SpecAugment with two time masks of up to 128 frames and two frequency masks of up to 16 bins
(`augment`); an exponential moving average of the weights (`loop.weight_average`), validated beside the
trained weights each epoch. The loss is BCE on the clip output (the mean of the token logits), which is
multi-label aware and keeps the per-class probabilities that `detect` thresholds.

Log-mels of the un-augmented windows are cached on disk per file, keyed by the file's bytes (`mel_cache`),
so later epochs, folds and runs cost only the transformer. Each epoch is validated by clip accuracy
(single-label) or mAP (multi-label); the best epoch is kept as <out>/best.safetensors with its labels,
per-class thresholds tuned on validation (best clip-level F1 each) and its provenance.
"""

import functools
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from htsat_live.model.audio import AudioFileError
from htsat_live.model.clip_set import ClipSet, clip_scores, read_windows
from htsat_live.training.augment import augment
from htsat_live.training.data import balanced_weights
from htsat_live.training.loop import new_model, weight_average
from htsat_live.training.mel_cache import FEATURES, cached_features
from htsat_live.training.settings import OptimizerSettings, TrainSettings
from htsat_live.training.validation import THRESHOLD_GRID

if TYPE_CHECKING:  # torch only for the annotations: importing this module stays light
    import torch


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether the CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX), where bf16 autocast pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class ClipRecipe(OptimizerSettings):
    """The settings of clip training, with the paper's recipe as defaults (peak lr aside: 1e-3 suits the short
    runs of small data sets; the paper's 1e-4 suits the full-size model on all of ESC-50). The optimiser's
    defaults are those of `OptimizerSettings`."""

    epochs: int = 20
    warmup_epochs: int = 3
    decay_every: int = 10  # epochs after the warm-up between two halvings of the rate
    decay_factor: float = 0.5
    mixup_alpha: float = 0.5
    mixup_probability: float = 1.0
    time_mask_frames: int = 128
    freq_mask_bins: int = 16
    ema_decay: float = 0.999
    precision: str = field(default_factory=lambda: "bf16" if cpu_has_bf16() else "fp32")
    seed: int = 8
    threads: int = 2

    def __post_init__(self):
        super().__post_init__()
        TrainSettings(**self.augmentation_settings())  # the same checks as soundscape training

    def augmentation_settings(self) -> dict:
        shared = {f.name for f in fields(TrainSettings)} & {f.name for f in fields(ClipRecipe)}
        return {name: getattr(self, name) for name in shared}

    @property
    def schedule_name(self) -> str:
        return (
            f"SequentialLR(LinearLR warm-up over {self.warmup_epochs} epochs, then StepLR x{self.decay_factor:g} "
            f"every {self.decay_every} epochs)"
        )


def learning_rate_schedule(optimizer, steps_per_epoch: int, recipe: ClipRecipe):
    """torch's SequentialLR: LinearLR from lr / warm-up steps up to lr over the warm-up epochs, then StepLR
    multiplying it by decay_factor every decay_every epochs; stepped after every optimizer step."""
    from torch.optim.lr_scheduler import LinearLR, SequentialLR, StepLR

    warmup = max(1, recipe.warmup_epochs * steps_per_epoch)
    rise = LinearLR(optimizer, start_factor=1 / warmup, total_iters=max(1, warmup - 1))
    steps = StepLR(optimizer, step_size=max(1, recipe.decay_every * steps_per_epoch), gamma=recipe.decay_factor)
    return SequentialLR(optimizer, [rise, steps], milestones=[warmup])


@dataclass
class ClipFeatures:
    """Log-mels of the readable clips of a set, window by window."""

    clip_set: ClipSet  # the readable clips only
    mels: "torch.Tensor"  # float16 [W, T, 64]
    window_clip: np.ndarray  # [W] index of each window's clip in clip_set.clips
    skipped: list[str]  # one line per unreadable file


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def clip_features(clip_set: ClipSet, cache_dir: Path, progress: bool = True) -> ClipFeatures:
    """Every clip's windows as log-mels, each file's cached in <cache_dir>/clip-logmels/ under a key of its
    bytes and the front end's settings; unreadable files are skipped and reported."""
    import torch
    from tqdm import tqdm

    from htsat_live.model.frontend import LogMel

    frontend = LogMel()

    def logmels(path: Path):
        with torch.no_grad():
            return frontend(torch.from_numpy(read_windows(path))).numpy().astype(np.float16)  # [W, T, 64]

    kept, mels, window_clip, skipped = [], [], [], []
    for clip in tqdm(clip_set.clips, desc="log-mels", unit="clip", disable=not progress):
        try:
            key = hashlib.sha256(f"{FEATURES}\n{file_digest(clip.path)}".encode()).hexdigest()
            features, _ = cached_features(cache_dir, "clip-logmels", key, functools.partial(logmels, clip.path))
        except (OSError, AudioFileError) as error:
            skipped.append(f"{clip.path}: {getattr(error, 'strerror', None) or error}")
            continue
        window_clip += [len(kept)] * len(features)
        kept.append(clip)
        mels.append(features)
    if not kept:
        raise AudioFileError(f"{clip_set.root}: no clip could be read ({len(skipped)} tried)")
    return ClipFeatures(
        replace(clip_set, clips=kept), torch.from_numpy(np.concatenate(mels)), np.array(window_clip), skipped
    )


def dataset_hash(clip_set: ClipSet) -> str:
    """A hash of the clips (their bytes) and their labels, for the checkpoint's provenance."""
    digest = hashlib.sha256()
    for clip in sorted(clip_set.clips, key=lambda c: str(c.path)):
        digest.update(f"{file_digest(clip.path)}\t{','.join(clip.labels)}\n".encode())
    return digest.hexdigest()


def clip_probabilities(model, features: ClipFeatures, clips: list[int], bf16: bool, batch_size: int = 32) -> np.ndarray:
    """Eval-mode clip probabilities [len(clips), C]: the mean over each clip's windows of the clip output."""
    import torch

    windows = np.flatnonzero(np.isin(features.window_clip, clips))
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[start : start + batch_size])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model.token_logits(features.mels[batch].float())  # [B, C, tokens]
            out.append(torch.sigmoid(logits.float().mean(-1)).numpy())
    per_window = np.concatenate(out)  # [W', C]
    owners = features.window_clip[windows]
    return np.stack([per_window[owners == clip].mean(axis=0) for clip in clips])


def tune_thresholds(probabilities: np.ndarray, targets: np.ndarray) -> list[float]:
    """Per class, the threshold of THRESHOLD_GRID with the best clip-level F1 on validation (0.5 for a class
    without a validation clip)."""
    from sklearn.metrics import f1_score

    chosen = []
    for c in range(targets.shape[1]):
        if not targets[:, c].any():
            chosen.append(0.5)
            continue
        scores = [f1_score(targets[:, c] > 0, probabilities[:, c] >= t, zero_division=0.0) for t in THRESHOLD_GRID]
        chosen.append(float(THRESHOLD_GRID[int(np.argmax(scores))]))
    return chosen


def headline(scores: dict, multi_label: bool) -> float:
    """The figure epochs are chosen by: mAP for multi-label data, top-1 accuracy for single-label."""
    return scores["map"] if multi_label else scores["accuracy"]


def train_clips(
    features: ClipFeatures,
    train: list[int],
    val: list[int],
    out_dir: Path,
    recipe: ClipRecipe,
    config,
    init: Path | None = None,
    val_features: ClipFeatures | None = None,
    provenance: dict | None = None,
    progress: bool = True,
) -> dict:
    """Train on the clips `train` of `features`, validate each epoch on `val` (of `val_features` when given,
    else of `features`), keep the best epoch as out_dir/best.safetensors. Returns the history and the best."""
    import torch
    from tqdm import tqdm

    from htsat_live.model.checkpoint import save_checkpoint

    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    clip_set = features.clip_set
    labels, multi_label = clip_set.labels, clip_set.multi_label
    model = new_model(replace(config, num_classes=len(labels)), init, labels)
    average = weight_average(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
    targets = torch.from_numpy(clip_set.targets())  # [N, C]
    windows = np.flatnonzero(np.isin(features.window_clip, train))  # the training windows
    window_targets = targets[features.window_clip[windows]]  # [W, C]
    weights = torch.from_numpy(balanced_weights(window_targets.numpy()))
    optimizer = recipe.optimizer(model.parameters())
    steps_per_epoch = max(1, math.ceil(len(windows) / recipe.batch_size))
    schedule = learning_rate_schedule(optimizer, steps_per_epoch, recipe)
    augmentation = TrainSettings(**recipe.augmentation_settings())
    val_features = val_features or features
    val_targets = val_features.clip_set.targets()[val]
    bf16 = recipe.precision == "bf16"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    history, best = [], {"score": -1.0}
    for epoch in range(recipe.epochs):
        generator = torch.Generator().manual_seed(recipe.seed * 1000 + epoch)
        torch.manual_seed(recipe.seed * 1000 + epoch)  # drop path
        order = torch.multinomial(weights, len(windows), replacement=True, generator=generator)
        model.train()
        loss_sum, started = 0.0, time.perf_counter()
        bar = tqdm(
            range(steps_per_epoch), desc=f"epoch {epoch + 1}/{recipe.epochs}", unit="batch", disable=not progress
        )
        for i in bar:
            pick = order[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            target = window_targets[pick]  # [B, C]
            mel, target, _ = augment(
                features.mels[windows[pick]].float(), target, target[:, None], augmentation, generator
            )
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model.token_logits(mel)  # [B, C, tokens]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float().mean(-1), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update_parameters(model)
            schedule.step()
            loss_sum += loss.item()
            seen = min((i + 1) * recipe.batch_size, len(windows))
            bar.set_postfix(
                loss=f"{loss_sum / (i + 1):.4f}",
                lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                clips_s=f"{seen / (time.perf_counter() - started):.1f}",
            )
        train_seconds = time.perf_counter() - started
        candidates = {"trained": model} if average is None else {"trained": model, "averaged": average.module}
        probabilities = {name: clip_probabilities(m, val_features, val, bf16) for name, m in candidates.items()}
        scores = {name: clip_scores(p, val_targets, labels, multi_label) for name, p in probabilities.items()}
        chosen = max(scores, key=lambda name: headline(scores[name], multi_label))  # the trained weights on a tie
        score = headline(scores[chosen], multi_label)
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / steps_per_epoch,
            "weights": chosen,
            "val_accuracy": scores[chosen]["accuracy"],
            "val_map": scores[chosen]["map"],
            "seconds": round(time.perf_counter() - started, 1),
            "train_clips_per_second": round(len(windows) / train_seconds, 1),
        }
        history.append(record)
        tqdm.write(
            f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}, "
            + (f"val mAP {score:.3f}" if multi_label else f"val accuracy {score:.3f}")
            + f" ({chosen} weights), {record['train_clips_per_second']} clips/s, {record['seconds']} s"
        )
        if score > best["score"]:
            thresholds = tune_thresholds(probabilities[chosen], val_targets)
            best = {
                "score": score,
                "epoch": epoch + 1,
                "weights": chosen,
                "accuracy": record["val_accuracy"],
                "map": record["val_map"],
            }
            metrics = {"validation": scores[chosen], "epoch": epoch + 1, "weights": chosen}
            save_checkpoint(
                out_dir / "best.safetensors",
                candidates[chosen],
                labels,
                thresholds,
                {
                    **(provenance or {}),
                    "recipe": {**asdict(recipe), "schedule": recipe.schedule_name, "init": str(init) if init else None},
                    "metrics": metrics,
                },
            )
        (out_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
    return {"history": history, "best": best}
