"""Training and fine-tuning HTS-AT on strong-labelled soundscapes: `htsat-live train`.

Data: folders written by `model.soundscapes.make_set` (10-s clips, soundscapes.tsv strong labels,
manifest.json). Log-mels are computed once per folder and cached beside the clips (logmels.npy, keyed
by the manifest hash), so an epoch costs only the transformer.

Recipe: AdamW (0.9, 0.999, eps 1e-8, weight decay 0.05), linear warm-up then cosine decay per step,
balanced sampling (clips weighted by the rarity of their labels), per-example gain, equalizer and pitch
shift of the mel bands, band limit, SpecAugment (time and frequency masks), mixup of log-mels; loss =
clip-level BCE (on the mean of the token logits, the model's clipwise output) + a frame-level BCE on the
token-semantic map against the share of each 312.5-ms token that a strong label covers. Each epoch is
validated: a median filter length and per-class thresholds are tuned for event F1 (psds_eval, Table 3
protocol) on the validation set and the best epoch is kept in our checkpoint format, with them. Training is
deterministic for a seed and resumes from the last finished epoch.
"""

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)  # thresholds tried per class on validation
MEDIAN_TOKENS = (1, 3, 5, 7, 9)  # median filter lengths tried on validation, in tokens (0.3125 s each)
# Band limits of common low-rate sources (8, 11.025, 16, 22.05 kHz: phone lines, IP cameras, old files),
# whose resampled audio is empty above them; the band-limit augmentation draws one of these.
BAND_LIMITS_HZ = (4000.0, 5512.5, 8000.0, 11025.0)
EQUALIZER_POINTS = 5  # random gains at this many evenly spaced mel bands, linear between them
PRECISIONS = ("fp32", "bf16")  # training arithmetic; validation and the saved weights are always fp32


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 8
    batch_size: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.05
    warmup_fraction: float = 0.06  # of all steps
    final_lr_fraction: float = 0.01  # cosine decays to lr * this
    gain_db: float = 6.0  # per-example level change, uniform in +-gain_db
    time_masks: int = 2
    time_mask_frames: int = 80  # of 1001 frames
    freq_masks: int = 2
    freq_mask_bins: int = 8  # of 64 bins
    mixup_probability: float = 0.5  # share of batches mixed
    mixup_alpha: float = 1.0
    frame_loss_weight: float = 1.0
    band_limit_probability: float = 0.0  # share of examples whose mel bands above a BAND_LIMITS_HZ cut are emptied
    equalizer_db: float = 0.0  # per-example random tilt and bumps across the mel bands, within +-equalizer_db
    pitch_shift_bins: int = 0  # per-example shift of the mel bands, uniform in +-pitch_shift_bins
    ema_decay: float = 0.0  # > 0: also validate an exponential moving average of the weights (per step) each epoch
    precision: str = "fp32"  # "bf16": forward and backward under bfloat16 autocast (weights and optimizer stay fp32)
    seed: int = 8
    threads: int = 2

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and lr must be positive")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.equalizer_db < 0 or self.pitch_shift_bins < 0:
            raise ValueError(f"equalizer_db and pitch_shift_bins must be >= 0, got {self.equalizer_db}, {self.pitch_shift_bins}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


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


def learning_rate(step: int, total: int, settings: TrainSettings) -> float:
    """Linear warm-up to lr, then cosine decay to lr * final_lr_fraction."""
    warmup = max(1, int(settings.warmup_fraction * total))
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    floor = settings.lr * settings.final_lr_fraction
    return floor + (settings.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def augment(mel, clip_target, token_target, settings: TrainSettings, generator):
    """Gain, equalizer, pitch shift, band limit, SpecAugment and mixup on a batch. mel [B, T, F]; targets
    [B, C], [B, tokens, C].

    The equalizer and the pitch shift stand in for recordings not in the training set: another microphone
    or room colours the spectrum (a smooth random gain curve over the mel bands), another individual of a
    species calls higher or lower (the mel bands moved by a few bins, the edge band repeated)."""
    import torch
    from torch.nn import functional as F

    from htsat_live.model.frontend import AMIN, mel_band_centres_hz

    b, t, f = mel.shape
    mel = mel + (torch.rand(b, 1, 1, generator=generator) * 2 - 1) * settings.gain_db
    if settings.equalizer_db > 0:
        points = (torch.rand(b, 1, EQUALIZER_POINTS, generator=generator) * 2 - 1) * settings.equalizer_db  # [B, 1, P]
        mel = mel + F.interpolate(points, size=f, mode="linear", align_corners=True)  # + [B, 1, F]
    if settings.pitch_shift_bins > 0:
        shift = torch.randint(-settings.pitch_shift_bins, settings.pitch_shift_bins + 1, (b,), generator=generator)  # [B]
        source_bin = (torch.arange(f)[None] - shift[:, None]).clamp(0, f - 1)  # [B, F]
        mel = torch.gather(mel, 2, source_bin[:, None, :].expand(b, t, f))
    limited = torch.rand(b, generator=generator) < settings.band_limit_probability  # [B]
    cut_hz = torch.tensor(BAND_LIMITS_HZ)[torch.randint(0, len(BAND_LIMITS_HZ), (b,), generator=generator)]  # [B]
    above = torch.from_numpy(mel_band_centres_hz(n_mels=f)).float()[None] > cut_hz[:, None]  # [B, F]
    mel = torch.where((limited[:, None] & above)[:, None, :], torch.tensor(10 * math.log10(AMIN)), mel)
    fill = mel.mean(dim=(1, 2), keepdim=True).expand(b, t, f)
    keep = torch.ones(b, t, f, dtype=torch.bool)
    for _ in range(settings.time_masks):
        width = torch.randint(0, settings.time_mask_frames + 1, (b,), generator=generator)
        start = (torch.rand(b, generator=generator) * (t - width)).long()
        frames = torch.arange(t)[None]
        keep &= ~((frames >= start[:, None]) & (frames < (start + width)[:, None]))[:, :, None]
    for _ in range(settings.freq_masks):
        width = torch.randint(0, settings.freq_mask_bins + 1, (b,), generator=generator)
        start = (torch.rand(b, generator=generator) * (f - width)).long()
        bins = torch.arange(f)[None]
        keep &= ~((bins >= start[:, None]) & (bins < (start + width)[:, None]))[:, None, :]
    mel = torch.where(keep, mel, fill)
    if torch.rand(1, generator=generator).item() < settings.mixup_probability:
        lam = float(np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator))).beta(settings.mixup_alpha, settings.mixup_alpha))
        order = torch.randperm(b, generator=generator)
        mel = lam * mel + (1 - lam) * mel[order]
        clip_target = lam * clip_target + (1 - lam) * clip_target[order]
        token_target = lam * token_target + (1 - lam) * token_target[order]
    return mel, clip_target, token_target


def loss_terms(logits, clip_target, token_target, settings: TrainSettings):
    """logits [B, C, tokens] -> (total, clip BCE, frame BCE)."""
    from torch.nn import functional as F

    clip = F.binary_cross_entropy_with_logits(logits.mean(-1), clip_target)
    frame = F.binary_cross_entropy_with_logits(logits.transpose(1, 2), token_target)
    return clip + settings.frame_loss_weight * frame, clip, frame


def token_probabilities(model, mels, batch_size: int = 32):
    """Eval-mode token probabilities: mels [N, T, F] -> numpy [N, tokens, C]."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(mels), batch_size):
            out.append(torch.sigmoid(model.token_logits(mels[start: start + batch_size].float())).transpose(1, 2).numpy())
    return np.concatenate(out)


def token_events(names: list[str], probabilities: np.ndarray, thresholds: np.ndarray, labels: list[str], seconds: float):
    """Runs of tokens over threshold as an event table (filename, onset, offset, event_label).

    A token is 32 identical frames of the framewise output, so this equals the official frame rule."""
    import pandas as pd

    from htsat_live.model.event_rule import runs_to_events
    from htsat_live.model.event_table import EVENT_COLUMNS

    token_seconds = seconds / probabilities.shape[1]
    rows = []
    for name, probs in zip(names, probabilities):
        rows += [(name, start * token_seconds, end * token_seconds, label)
                 for start, end, label in runs_to_events(probs > thresholds, labels)]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def tune_post_processing(data: SoundscapeSet, probabilities: np.ndarray, labels: list[str]) -> tuple[int, np.ndarray, dict[str, float]]:
    """The event rule with the best event F1 on `data`: a median filter length of MEDIAN_TOKENS (one for
    all classes, the best macro) and, under it, per class the threshold of THRESHOLD_GRID with the best F1.
    Returns (median length in tokens, thresholds [C], per-class F1)."""
    from htsat_live.model.event_rule import median_over_frames
    from htsat_live.model.event_table import event_f1, read_events, read_metadata

    truth = read_events(data.directory / "soundscapes.tsv")
    meta = read_metadata(data.directory / "soundscapes_metadata.tsv")
    seconds = float(meta["duration"].iloc[0])
    chosen = (-1.0, 1, np.full(len(labels), 0.5, np.float32), {})
    for median in MEDIAN_TOKENS:
        filtered = np.stack([median_over_frames(clip, median) for clip in probabilities])  # [N, tokens, C]
        best = {label: (-1.0, 0.5) for label in labels}
        for threshold in THRESHOLD_GRID:
            detections = token_events(data.names, filtered, np.full(len(labels), threshold), labels, seconds)
            _, per_class = event_f1(truth, meta, detections)
            for label in labels:
                f1 = strict_f1(per_class, label)
                if f1 > best[label][0]:
                    best[label] = (f1, float(threshold))
        macro = float(np.mean([best[label][0] for label in labels]))
        if macro > chosen[0]:
            chosen = (macro, median, np.array([best[label][1] for label in labels], np.float32),
                      {label: best[label][0] for label in labels})
    return chosen[1], chosen[2], chosen[3]


def median_frames_of_tokens(median_tokens: int, tokens: int) -> int:
    """The grid-frame median filter that spans `median_tokens` of a model's `tokens` time tokens (odd;
    1 token = no filter)."""
    from htsat_live.model.htsat import MODEL_FRAMES

    return 1 if median_tokens == 1 else median_tokens * (MODEL_FRAMES // tokens) - 1


def new_model(config, init: Path | None, labels: list[str] | None = None):
    """A fresh HTSAT, or one initialised from any checkpoint load_model reads: the whole model when the
    checkpoint already has these labels, else everything but the head, which is re-sized and re-initialised."""
    import torch

    from htsat_live.model.checkpoint import build_model, read_checkpoint
    from htsat_live.model.htsat import HTSAT

    if init is None:
        return HTSAT(config)
    source = read_checkpoint(init)
    if labels is not None and source.labels == list(labels):
        return build_model(source, init).train()
    model = HTSAT(replace(source.config, num_classes=config.num_classes))
    own = model.state_dict()
    taken = {k: v for k, v in source.state_dict.items() if k in own and not k.startswith("tscam_conv.")}
    misshapen = [k for k, v in taken.items() if tuple(v.shape) != tuple(own[k].shape)]
    left = sorted(set(own) - set(taken) - {"tscam_conv.weight", "tscam_conv.bias"})
    if misshapen or left:
        raise ValueError(f"{init}: cannot initialise from it: misshapen {misshapen[:5]}, missing {left[:5]}")
    own.update(taken)
    model.load_state_dict(own)
    with torch.no_grad():
        model.tscam_conv.reset_parameters()
    return model


class WeightAverage:
    """An exponential moving average of a model's weights, updated after every optimizer step. Its decay
    ramps up over the first steps ((1 + step) / (10 + step)) so that the random start fades out quickly;
    buffers (the mel batch-norm statistics) are copied from the trained model."""

    def __init__(self, model, decay: float):
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def update(self, model, step: int) -> None:
        import torch

        decay = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.model.parameters()), [p.detach() for p in model.parameters()], 1 - decay)
            for own, trained in zip(self.model.buffers(), model.buffers()):
                own.copy_(trained)


def validate(model, val_set: SoundscapeSet, labels: list[str], settings: TrainSettings) -> dict:
    """Validation of one set of weights: clip and frame BCE, and the tuned event rule with its event F1."""
    import torch

    probabilities = token_probabilities(model, val_set.mels)  # [N, tokens, C]
    with torch.no_grad():
        val_logits = torch.logit(torch.from_numpy(probabilities).clamp(1e-6, 1 - 1e-6)).transpose(1, 2)
        _, val_clip, val_frame = loss_terms(val_logits, val_set.clip_targets, val_set.token_targets, settings)
    median_tokens, thresholds, class_f1 = tune_post_processing(val_set, probabilities, labels)
    return {"val_clip_bce": val_clip.item(), "val_frame_bce": val_frame.item(),
            "macro_f1": float(np.mean(list(class_f1.values()))), "class_f1": class_f1,
            "thresholds": thresholds.tolist(), "median_tokens": median_tokens}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train(train_dir: Path, val_dir: Path, out_dir: Path, config, settings: TrainSettings, init: Path | None = None,
          resume: bool = False, sources_manifest: Path | None = None, progress: bool = True) -> dict:
    """Train, validate each epoch, keep the best epoch as out_dir/best.safetensors; returns the history."""
    import torch
    from tqdm import tqdm

    from htsat_live.model.checkpoint import save_checkpoint

    torch.set_num_threads(settings.threads)
    labels = json.loads((Path(train_dir) / "manifest.json").read_text(encoding="utf-8"))["labels"]
    config = replace(config, num_classes=len(labels))
    torch.manual_seed(settings.seed)
    model = new_model(config, init, labels)
    average = WeightAverage(model, settings.ema_decay) if settings.ema_decay > 0 else None
    tokens = model.config.time_tokens
    train_set = load_set(train_dir, labels, tokens, progress)
    val_set = load_set(val_dir, labels, tokens, progress)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=settings.betas, eps=settings.eps,
                                  weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(train_set.names) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    weights = torch.from_numpy(balanced_weights(train_set.clip_targets.numpy()))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "last.pt"
    history, best, first_epoch = [], {"macro_f1": -1.0}, 0
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if average is not None:
            average.model.load_state_dict(state.get("ema", state["model"]))  # a run without one starts it here
        history, best, first_epoch = state["history"], state["best"], state["epoch"] + 1
    provenance = {
        "data": {"train": train_set.manifest_hash, "val": val_set.manifest_hash,
                 "sources_manifest": file_sha256(sources_manifest) if sources_manifest else None},
        "training": {**asdict(settings), "init": str(init) if init else None},
    }
    for epoch in range(first_epoch, settings.epochs):
        torch.manual_seed(settings.seed * 1000 + epoch)  # drop path and augmentation of this epoch
        generator = torch.Generator().manual_seed(settings.seed * 1000 + epoch)
        order = torch.multinomial(weights, len(train_set.names), replacement=True, generator=generator)
        model.train()
        sums = np.zeros(3)
        started = time.time()
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch", disable=not progress)
        for i in bar:
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total_steps, settings)
            index = order[i * settings.batch_size: (i + 1) * settings.batch_size]
            mel, clip_target, token_target = augment(train_set.mels[index].float(), train_set.clip_targets[index],
                                                     train_set.token_targets[index], settings, generator)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.precision == "bf16"):
                logits = model.token_logits(mel)  # [B, C, tokens]
            total, clip, frame = loss_terms(logits.float(), clip_target, token_target, settings)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            if average is not None:
                average.update(model, step)
            sums += [total.item(), clip.item(), frame.item()]
            bar.set_postfix(loss=f"{sums[0] / (i + 1):.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        candidates = {"trained": model} if average is None else {"trained": model, "averaged": average.model}
        results = {name: validate(candidate, val_set, labels, settings) for name, candidate in candidates.items()}
        chosen = max(results, key=lambda name: results[name]["macro_f1"])  # the first on a tie: the trained weights
        mean = (sums / steps_per_epoch).tolist()  # python floats: the resume state loads with weights_only
        record = {"epoch": epoch + 1, "train_loss": mean[0], "train_clip_bce": mean[1], "train_frame_bce": mean[2],
                  **results[chosen], "weights": chosen, "candidates_f1": {k: v["macro_f1"] for k, v in results.items()},
                  "seconds": round(time.time() - started, 1)}
        history.append(record)
        print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}, val frame BCE {record['val_frame_bce']:.4f}, "
              f"val event F1 {record['macro_f1']:.3f} ({chosen} weights, median {record['median_tokens']} tokens) "
              + " ".join(f"{k} {v:.2f}" for k, v in record["class_f1"].items())
              + ("" if average is None else f"; trained {results['trained']['macro_f1']:.3f}, averaged {results['averaged']['macro_f1']:.3f}"),
              flush=True)
        if record["macro_f1"] > best["macro_f1"]:
            best = {"macro_f1": record["macro_f1"], "epoch": epoch + 1, "weights": chosen}
            metrics = {"val_event_f1_macro": record["macro_f1"], "val_event_f1": record["class_f1"], "epoch": epoch + 1,
                       "weights": chosen}
            save_checkpoint(out_dir / "best.safetensors", candidates[chosen], labels, record["thresholds"],
                            {**provenance, "metrics": metrics}, median_frames_of_tokens(record["median_tokens"], tokens))
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "history": history, "best": best}
        if average is not None:
            state["ema"] = average.model.state_dict()
        torch.save(state, state_path)
        (out_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
    return {"history": history, "best": best}


def detect_set(predictor, directory: Path, batch_size: int = 8, progress: bool = True):
    """Events of every 10-s clip of a mixed set by the offline rule with the predictor's own event settings
    (one pass, its median filter, its per-class thresholds, runs of active frames): the path the shipped
    model takes. Returns an event table."""
    import pandas as pd
    import soundfile as sf
    from tqdm import tqdm

    from htsat_live.model.event_rule import build_targets, events_from_scores
    from htsat_live.model.event_table import EVENT_COLUMNS

    if predictor.thresholds is None:
        raise ValueError("the model has no per-class thresholds to detect events with")
    targets = build_targets(predictor.labels, predictor.thresholds)  # one per class, the model's thresholds
    names = [clip["filename"] for clip in json.loads((Path(directory) / "manifest.json").read_text())["clips"]]
    rows = []
    for start in tqdm(range(0, len(names), batch_size), desc=f"detecting {Path(directory).name}", unit="batch", disable=not progress):
        batch = names[start: start + batch_size]
        waves = np.stack([sf.read(str(Path(directory) / name), dtype="float32")[0] for name in batch])  # [B, N]
        framewise = predictor.predict(waves, short="pad")["framewise"]  # [B, 1024, C]
        for name, scores in zip(batch, framewise):
            events, _ = events_from_scores(scores, waves.shape[1], targets, predictor.median_frames)
            rows += [(name, onset, offset, label) for onset, offset, label in events]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def evaluate_checkpoint(path: Path, directory: Path, detections_path: Path, progress: bool = True) -> tuple[float, dict[str, float]]:
    """Macro and per-class event F1 (psds_eval, Table 3 protocol; a class never detected counts 0) of a
    checkpoint on a mixed set; writes its detections TSV."""
    from htsat_live.model import load_model
    from htsat_live.model.event_table import (
        event_f1,
        read_events,
        read_metadata,
        write_events,
    )

    predictor = load_model(path)
    detections = detect_set(predictor, directory, progress=progress)
    write_events(detections_path, detections.itertuples(index=False))
    _, per_class = event_f1(read_events(Path(directory) / "soundscapes.tsv"),
                            read_metadata(Path(directory) / "soundscapes_metadata.tsv"), detections)
    per_class = {label: strict_f1(per_class, label) for label in predictor.labels}
    return float(np.mean(list(per_class.values()))), per_class


def strict_f1(per_class: dict[str, float], label: str) -> float:
    """A class's F1 with 0 for a class never detected (psds_eval reports NaN and leaves it out of its macro)."""
    value = per_class.get(label, 0.0)
    return 0.0 if value != value else float(value)


def add_train_arguments(parser) -> None:
    parser.add_argument("--train-dir", type=Path, required=True, help="training soundscapes (model.soundscapes.make_set)")
    parser.add_argument("--val-dir", type=Path, required=True, help="validation soundscapes: best epoch and thresholds")
    parser.add_argument("--test-dir", type=Path, help="held-out soundscapes to score the best checkpoint on at the end")
    parser.add_argument("--out", type=Path, default=Path("runs/train"), help="run directory (best.safetensors, last.pt, history.json)")
    parser.add_argument("--init", type=Path, help="start from this checkpoint (any file load_model reads; its architecture wins over "
                             "--embed-dim/--depths/--heads); the head is re-sized unless it has the same labels")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    parser.add_argument("--sources-manifest", type=Path, default=Path("model/data/sources_manifest.json"),
                        help="manifest of the source recordings, hashed into the checkpoint's provenance")
    parser.add_argument("--embed-dim", type=int, default=32)
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 2, 2, 2])
    parser.add_argument("--heads", type=int, nargs="+", default=[1, 2, 4, 8])
    defaults = TrainSettings()
    for name in ("epochs", "batch_size", "lr", "weight_decay", "mixup_probability", "frame_loss_weight",
                 "band_limit_probability", "equalizer_db", "pitch_shift_bins", "ema_decay", "seed", "threads"):
        parser.add_argument("--" + name.replace("_", "-"), type=type(getattr(defaults, name)), default=getattr(defaults, name))
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                        help="training arithmetic: bf16 autocast is about 1.8x faster on CPUs with AVX-512 BF16 or AMX")


def run_train(args) -> int:
    from htsat_live.model.checkpoint import (
        build_model,
        read_checkpoint,
        save_checkpoint,
    )
    from htsat_live.model.htsat import HTSATConfig

    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                             mixup_probability=args.mixup_probability, frame_loss_weight=args.frame_loss_weight,
                             band_limit_probability=args.band_limit_probability, equalizer_db=args.equalizer_db,
                             pitch_shift_bins=args.pitch_shift_bins, ema_decay=args.ema_decay,
                             precision=args.precision, seed=args.seed, threads=args.threads)
    config = HTSATConfig(embed_dim=args.embed_dim, depths=tuple(args.depths), num_heads=tuple(args.heads))
    manifest = args.sources_manifest if args.sources_manifest.is_file() else None
    result = train(args.train_dir, args.val_dir, args.out, config, settings, args.init, args.resume, manifest)
    best = args.out / "best.safetensors"
    print(f"best epoch {result['best'].get('epoch')}: validation event F1 {result['best']['macro_f1']:.3f} -> {best}")
    if args.test_dir:
        macro, per_class = evaluate_checkpoint(best, args.test_dir, args.out / "test_detections.tsv")
        checkpoint = read_checkpoint(best)
        provenance = dict(checkpoint.metadata.get("provenance", {}))
        metrics = {**provenance.get("metrics", {}), "test_event_f1_macro": macro, "test_event_f1": per_class,
                   "test": {"clips": len(json.loads((args.test_dir / "manifest.json").read_text())["clips"]),
                            "hash": json.loads((args.test_dir / "manifest.json").read_text())["hash"]}}
        save_checkpoint(best, build_model(checkpoint, best), checkpoint.labels, checkpoint.thresholds, {**provenance, "metrics": metrics},
                        checkpoint.median_frames)
        print(f"test event F1 (psds_eval, Table 3 protocol): macro {macro:.3f} " + " ".join(f"{k} {v:.3f}" for k, v in per_class.items()))
        print(f"detections: {args.out / 'test_detections.tsv'}")
    return 0
