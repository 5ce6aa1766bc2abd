"""Training and fine-tuning HTS-AT on strong-labelled soundscapes: the loop of `htsat-live train`.

Recipe: AdamW (0.9, 0.999, eps 1e-8, weight decay 0.05), linear warm-up then cosine decay per step
(`Schedule`), balanced sampling (clips weighted by the rarity of their labels, `data`), the augmentations of
`augment` and the clip + frame loss of `loss`, optionally under bfloat16 autocast and with an exponential moving average
of the weights. Each epoch is validated (`validation`: event F1 with a tuned median filter and per-class
thresholds) and the best epoch is kept in our checkpoint format, with its event rule. Training is
deterministic for a seed and resumes from the last finished epoch: a run resumed with its own number of epochs
is the run it would have been uninterrupted, learning rates included; one resumed with another number keeps
the rate it reached and spreads the rest of its decay over the epochs left (`Schedule.extended`).
"""

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from htsat_live.training.augment import augment
from htsat_live.training.data import balanced_weights, load_set
from htsat_live.training.loss import loss_terms
from htsat_live.training.mel_cache import cache_home
from htsat_live.training.settings import TrainSettings
from htsat_live.training.soundscape_folder import SoundscapeFolder
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


@dataclass(frozen=True)
class Schedule:
    """The learning rate of every optimizer step, as a factor of lr: a linear warm-up over the first `warmup`
    steps, step s at (s + 1) / warmup; then a cosine decay, 1 at progress 0 down to `floor` at progress 1,
    whose progress runs linearly from `progress_at` at step `start` to 1 at step `end` (and stays there).

    A run's own schedule (`planned`) starts its cosine after the warm-up at progress 0. It is kept with the
    run's state as these numbers, so that a resumed run computes the very same rates."""

    warmup: int
    start: int
    progress_at: float
    end: int
    floor: float

    @classmethod
    def planned(cls, total_steps: int, settings: TrainSettings) -> "Schedule":
        """Warm-up over warmup_fraction of the steps, then the cosine to lr * final_lr_fraction at the last step."""
        warmup = max(1, int(settings.warmup_fraction * total_steps))
        return cls(warmup, warmup, 0.0, total_steps, settings.final_lr_fraction)

    def progress(self, step: int) -> float:
        return min(
            1.0, self.progress_at + (1.0 - self.progress_at) * (step - self.start) / max(1, self.end - self.start)
        )

    def factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * self.progress(step)))

    def extended(self, step: int, end: int) -> "Schedule":
        """The schedule of a run resumed at `step` to finish at step `end` instead: the same one when `end`
        is its own; otherwise the same rates up to `step` (a warm-up under way goes on as planned), then the
        rest of the cosine, from the progress reached to the floor, spread over the steps up to `end`. The
        rate never jumps; a finished run resumed for more steps stays at the floor."""
        if end == self.end:
            return self
        if step <= self.start:  # the cosine has not begun: it begins where planned and ends at the new end
            return replace(self, end=end)
        return replace(self, start=step, progress_at=self.progress(step), end=end)


def schedule_steps(optimizer, schedule: Schedule, lr: float, first_step: int = 0):
    """torch's LambdaLR for `schedule` at peak rate `lr`, from optimizer step `first_step` on: it sets the rate of
    that step now and is to be stepped after every optimizer step."""
    from torch.optim.lr_scheduler import LambdaLR

    for group in optimizer.param_groups:  # a loaded optimizer state holds the last rate and the old peak
        group["lr"] = group["initial_lr"] = lr
    return LambdaLR(optimizer, lambda i: schedule.factor(first_step + i))


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


def saved_run(out_dir: Path) -> dict | None:
    """What a run in out_dir was started with (classes, settings, architecture), from its last.pt; None when
    there is none (or it predates this record)."""
    import torch

    path = Path(out_dir) / "last.pt"
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True).get("run")


def train(
    train_folder: SoundscapeFolder,
    val_folder: SoundscapeFolder,
    out_dir: Path,
    config,
    settings: TrainSettings,
    labels: list[str],
    init: Path | None = None,
    resume: bool = False,
    sources_manifest: Path | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> dict:
    """Train the classes `labels`, validate each epoch, keep the best epoch as out_dir/best.safetensors; returns
    the history. Log-mels are cached in `cache_dir` (default: `mel_cache.cache_home()`)."""
    import torch
    from tqdm import tqdm

    from htsat_live.model.checkpoint import save_checkpoint

    torch.set_num_threads(settings.threads)
    config = replace(config, num_classes=len(labels))
    torch.manual_seed(settings.seed)
    model = new_model(config, init, labels)
    average = weight_average(model, settings.ema_decay) if settings.ema_decay > 0 else None
    tokens = model.config.time_tokens
    cache_dir = cache_home(cache_dir)
    train_set = load_set(train_folder, labels, tokens, cache_dir, progress)
    val_set = load_set(val_folder, labels, tokens, cache_dir, progress)
    optimizer = settings.optimizer(model.parameters())
    steps_per_epoch = math.ceil(len(train_set.names) / settings.batch_size)
    plan = Schedule.planned(steps_per_epoch * settings.epochs, settings)
    weights = torch.from_numpy(balanced_weights(train_set.clip_targets.numpy()))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "last.pt"
    history, best, first_epoch, step = [], {"macro_f1": -1.0}, 0, 0
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("run", {}).get("labels", labels) != labels:
            raise ValueError(
                f"{state_path}: the run trains {', '.join(state['run']['labels'])}, not {', '.join(labels)}"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, best, first_epoch = state["history"], state["best"], state["epoch"] + 1
        step = state.get("step", first_epoch * steps_per_epoch)
        saved = Schedule(**state["schedule"]) if "warmup" in state.get("schedule", {}) else plan
        plan = saved.extended(step, step + (settings.epochs - first_epoch) * steps_per_epoch)
        print(
            f"resuming after epoch {first_epoch} (step {step}) at learning rate {settings.lr * plan.factor(step):.3g}"
            + (
                ""
                if plan == saved
                else f"; its decay now ends at step {plan.end} (epoch {settings.epochs}), not {saved.end}"
            ),
            flush=True,
        )
        if average is not None:
            average.module.load_state_dict(state.get("ema", state["model"]))  # a run without one starts it here
            average.n_averaged.fill_(1 + step)  # its decay ramp goes by the steps taken
    schedule = schedule_steps(optimizer, plan, settings.lr, step)
    provenance = {
        "data": {
            "train": train_folder.data_hash,
            "val": val_folder.data_hash,
            "sources_manifest": file_sha256(sources_manifest) if sources_manifest else None,
        },
        "training": {**asdict(settings), "init": str(init) if init else None},
    }
    run = {"labels": list(labels), "settings": asdict(settings), "config": asdict(model.config)}
    for epoch in range(first_epoch, settings.epochs):
        torch.manual_seed(settings.seed * 1000 + epoch)  # drop path and augmentation of this epoch
        generator = torch.Generator().manual_seed(settings.seed * 1000 + epoch)
        order = torch.multinomial(weights, len(train_set.names), replacement=True, generator=generator)
        model.train()
        sums, rates = np.zeros(3), []
        started = time.time()
        bar = tqdm(
            range(steps_per_epoch), desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch", disable=not progress
        )
        for i in bar:
            index = order[i * settings.batch_size : (i + 1) * settings.batch_size]
            mel, clip_target, token_target = augment(
                train_set.mels[index].float(),
                train_set.clip_targets[index],
                train_set.token_targets[index],
                settings,
                generator,
            )
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.precision == "bf16"):
                logits = model.token_logits(mel)  # [B, C, tokens]
            total, clip, frame = loss_terms(logits.float(), clip_target, token_target, settings)
            optimizer.zero_grad()
            total.backward()
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if average is not None:
                average.update_parameters(model)
            sums += [total.item(), clip.item(), frame.item()]
            bar.set_postfix(loss=f"{sums[0] / (i + 1):.4f}", lr=f"{rates[-1]:.2e}")
            schedule.step()  # the next step's rate
        step += steps_per_epoch
        candidates = {"trained": model} if average is None else {"trained": model, "averaged": average.module}
        results = {name: validate(candidate, val_set, labels, settings) for name, candidate in candidates.items()}
        chosen = max(results, key=lambda name: results[name]["macro_f1"])  # the first on a tie: the trained weights
        mean = (sums / steps_per_epoch).tolist()  # python floats: the resume state loads with weights_only
        record = {
            "epoch": epoch + 1,
            "train_loss": mean[0],
            "train_clip_bce": mean[1],
            "train_frame_bce": mean[2],
            "lr": [rates[0], rates[-1]],
            **results[chosen],
            "weights": chosen,
            "candidates_f1": {k: v["macro_f1"] for k, v in results.items()},
            "seconds": round(time.time() - started, 1),
        }
        history.append(record)
        print(
            f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}, val frame BCE {record['val_frame_bce']:.4f}, "
            f"val event F1 {record['macro_f1']:.3f} ({chosen} weights, median {record['median_tokens']} tokens) "
            + " ".join(f"{k} {v:.3f}" for k, v in record["class_f1"].items())
            + (
                ""
                if average is None
                else f"; trained {results['trained']['macro_f1']:.3f}, averaged {results['averaged']['macro_f1']:.3f}"
            ),
            flush=True,
        )
        if record["macro_f1"] > best["macro_f1"]:
            best = {"macro_f1": record["macro_f1"], "epoch": epoch + 1, "weights": chosen}
            metrics = {
                "val_event_f1_macro": record["macro_f1"],
                "val_event_f1": record["class_f1"],
                "epoch": epoch + 1,
                "weights": chosen,
            }
            save_checkpoint(
                out_dir / "best.safetensors",
                candidates[chosen],
                labels,
                record["thresholds"],
                {**provenance, "metrics": metrics},
                median_frames_of_tokens(record["median_tokens"], tokens),
            )
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": asdict(plan),
            "step": step,
            "epoch": epoch,
            "history": history,
            "best": best,
            "run": run,
        }
        if average is not None:
            state["ema"] = average.module.state_dict()
        torch.save(state, state_path)
        (out_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
    return {"history": history, "best": best}
