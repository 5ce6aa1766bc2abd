"""Training and fine-tuning HTS-AT on strong-labelled soundscapes: the loop of `htsat-live train`.

Recipe: AdamW (0.9, 0.999, eps 1e-8, weight decay 0.05), linear warm-up then cosine decay per step,
balanced sampling (clips weighted by the rarity of their labels, `data`), the augmentations of `augment` and
the clip + frame loss of `loss`, optionally under bfloat16 autocast and with an exponential moving average
of the weights. Each epoch is validated (`validation`: event F1 with a tuned median filter and per-class
thresholds) and the best epoch is kept in our checkpoint format, with its event rule. Training is
deterministic for a seed and resumes from the last finished epoch.
"""

import hashlib
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from htsat_live.training.augment import augment
from htsat_live.training.data import balanced_weights, load_set
from htsat_live.training.loss import loss_terms
from htsat_live.training.settings import TrainSettings
from htsat_live.training.validation import median_frames_of_tokens, validate


def new_model(config, init: Path | None, labels: list[str] | None = None):
    """A fresh HTSAT, or one initialised from any checkpoint load_model reads: the whole model when the
    checkpoint already has these labels, else everything but the head, which is re-sized and re-initialised."""
    from htsat_live.model.checkpoint import load_weights, read_checkpoint
    from htsat_live.model.htsat import HTSAT

    if init is None:
        return HTSAT(config)
    source = read_checkpoint(init)
    same_labels = labels is not None and source.labels == list(labels)
    return load_weights(source, init, num_classes=None if same_labels else config.num_classes)


def learning_rate_schedule(optimizer, total_steps: int, settings: TrainSettings):
    """Linear warm-up to lr over the first warmup_fraction of the steps, then cosine decay to
    lr * final_lr_fraction at the last step; to be stepped after every optimizer step."""
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    warmup = max(1, int(settings.warmup_fraction * total_steps))
    # step s < warmup runs at lr * (s + 1) / warmup: 1 / warmup at step 0, the full lr at step warmup - 1
    rise = LinearLR(optimizer, start_factor=1 / warmup, total_iters=max(1, warmup - 1))
    fall = CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup), eta_min=settings.lr * settings.final_lr_fraction)
    return SequentialLR(optimizer, [rise, fall], milestones=[warmup])


def replay_schedule(schedule, steps: int) -> None:
    """Move a new schedule `steps` steps on: how a run resumed with more epochs (or another lr) joins its new
    schedule at the step it reached. torch's schedulers compute each rate from the previous one, so the
    steps are replayed."""
    import warnings

    for group, lr in zip(schedule.optimizer.param_groups, schedule.get_last_lr()):
        group["lr"] = lr  # the schedule's first rate; the loaded optimizer state holds the old schedule's last
    with warnings.catch_warnings():  # torch warns of a scheduler stepped before its optimizer: here by design
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
        for _ in range(steps):
            schedule.step()


def weight_average(model, decay: float):
    """An exponential moving average of the model's weights (torch's AveragedModel; the averaged HTSAT is its
    `.module`), updated by `update_parameters(model)` after every optimizer step. Its decay ramps up over the
    first steps, min(decay, (1 + step) / (10 + step)), so that the random start fades out quickly."""
    from torch.optim.swa_utils import AveragedModel

    # our own averaging function: torch's get_ema_avg_fn keeps one decay from the first step, with no ramp
    def towards(averaged, trained, updates):
        step = int(updates) - 1  # the update at construction, below, counts as the one before step 0
        return averaged.lerp(trained, 1 - min(decay, (1 + step) / (10 + step)))

    # use_buffers=False copies the buffers (the mel batch-norm statistics) from the trained model at every
    # update, as they must follow it; True would average them, and the integer index buffers with them.
    average = AveragedModel(model, avg_fn=towards, use_buffers=False)
    average.update_parameters(model)  # AveragedModel's first update copies: done here, step 0's one averages
    return average.requires_grad_(False)


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
    average = weight_average(model, settings.ema_decay) if settings.ema_decay > 0 else None
    tokens = model.config.time_tokens
    train_set = load_set(train_dir, labels, tokens, progress)
    val_set = load_set(val_dir, labels, tokens, progress)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=settings.betas, eps=settings.eps,
                                  weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(train_set.names) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    schedule = learning_rate_schedule(optimizer, total_steps, settings)
    schedule_for = [total_steps, settings.lr, settings.warmup_fraction, settings.final_lr_fraction]  # its curve's
    weights = torch.from_numpy(balanced_weights(train_set.clip_targets.numpy()))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "last.pt"
    history, best, first_epoch = [], {"macro_f1": -1.0}, 0
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, best, first_epoch = state["history"], state["best"], state["epoch"] + 1
        if state.get("schedule", {}).get("for") == schedule_for:
            schedule.load_state_dict(state["schedule"]["state"])
        else:  # resumed with more epochs (or another lr): the saved curve would end too soon
            replay_schedule(schedule, first_epoch * steps_per_epoch)
        if average is not None:
            average.module.load_state_dict(state.get("ema", state["model"]))  # a run without one starts it here
            average.n_averaged.fill_(1 + first_epoch * steps_per_epoch)  # its decay ramp goes by the steps taken
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
                average.update_parameters(model)
            sums += [total.item(), clip.item(), frame.item()]
            bar.set_postfix(loss=f"{sums[0] / (i + 1):.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            schedule.step()  # the next step's rate
        candidates = {"trained": model} if average is None else {"trained": model, "averaged": average.module}
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
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "schedule": {"for": schedule_for, "state": schedule.state_dict()}, "epoch": epoch, "history": history,
                 "best": best}
        if average is not None:
            state["ema"] = average.module.state_dict()
        torch.save(state, state_path)
        (out_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
    return {"history": history, "best": best}
