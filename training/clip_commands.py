"""`htsat-live train --clips DATA`: its own arguments and the run (hold-out, --val-clips, or k folds)."""

import sys
from pathlib import Path

import numpy as np

from htsat_live.model.audio import AudioFileError
from htsat_live.model.clip_set import ClipSetError, read_clip_set
from htsat_live.stream.paths import output_folder
from htsat_live.training.architecture import architecture_config
from htsat_live.training.clip_splits import HOLDOUT_SHARE, draw_splits, require_split
from htsat_live.training.clip_training import (
    ClipRecipe,
    clip_features,
    dataset_hash,
    train_clips,
)
from htsat_live.training.mel_cache import cache_home

CLIPS_HELP = (
    "train on clip-labelled data instead of soundscapes: a folder per class, an ESC-50 folder "
    "(meta/esc50.csv, audio/), "
    "a Speech Commands folder (validation_list.txt, testing_list.txt) or a CSV of filename,labels (multi-label). "
    "Clips under 10 s are tiled, longer ones cut into 10-s windows; unreadable files are skipped and counted. Without "
    "--val-clips or --folds a stratified 15%% of each class is held out for validation (Speech Commands: its "
    "validation list). The paper's recipe is the default: AdamW (0.9, 0.999, eps 1e-8, weight decay 0.05), "
    "{schedule} stepped per batch, balanced sampling, mixup alpha 0.5 on every batch, SpecAugment (2 time masks "
    "of up to 128 frames, 2 frequency masks of up to 16 bins), BCE on the clip output, and a moving average of the "
    "weights (--ema-decay, default {ema}) validated beside them; defaults here: --epochs {epochs}, --lr {lr}, "
    "--batch-size {batch}, --precision bf16 where the CPU has AVX-512 BF16 or AMX. The best epoch by validation "
    "accuracy (mAP for multi-label data) is kept as OUT/best.safetensors with labels, thresholds tuned on "
    "validation and provenance; --init fine-tunes from any checkpoint, official AudioSet ones included"
)
SOUNDSCAPE_ONLY = (
    "train_dir",
    "val_dir",
    "test_dir",
    "classes",
    "resume",
    "frame_loss_weight",
    "band_limit_probability",
    "equalizer_db",
    "pitch_shift_bins",
)
SHARED = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "mixup_probability",
    "ema_decay",
    "seed",
    "threads",
    "precision",
)


def add_clip_arguments(parser) -> None:
    recipe = ClipRecipe()
    group = parser.add_argument_group("clip-labelled data (--clips)")
    group.add_argument(
        "--clips",
        type=Path,
        metavar="DATA",
        help=CLIPS_HELP.format(
            schedule=recipe.schedule_name,
            ema=recipe.ema_decay,
            epochs=recipe.epochs,
            lr=recipe.lr,
            batch=recipe.batch_size,
        ),
    )
    group.add_argument("--val-clips", type=Path, metavar="DATA2", help="validation clips in any of those layouts")
    group.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="k-fold cross-validation (ESC-50: its own folds; else stratified): trains each fold into "
        "OUT/fold-<i>/ and reports the mean and standard deviation of validation accuracy",
    )
    group.add_argument("--fold", type=int, metavar="I", help="with --folds: train only fold I (1..K) into OUT")


def run_clip_train(args) -> int:
    """Train on clips as the arguments say; 2 for an unusable command line or data set. The clips are read, their
    log-mels computed (unreadable files skipped), then the splits drawn over the readable clips."""
    try:
        misplaced = [name for name in SOUNDSCAPE_ONLY if getattr(args, name, None) not in (None, False)]
        if misplaced:
            raise ValueError(f"--{misplaced[0].replace('_', '-')} is for soundscapes, not --clips")
        if args.fold is not None and (args.folds is None or not 1 <= args.fold <= args.folds):
            raise ValueError("--fold I needs --folds K and 1 <= I <= K")
        if args.folds and args.val_clips:
            raise ValueError("--folds and --val-clips are two ways to validate: give one")
        output_folder(args.out, "--out")
        recipe = ClipRecipe(**{name: getattr(args, name) for name in SHARED if getattr(args, name) is not None})
        config = architecture_config(args)
        clip_set = read_clip_set(args.clips)
        if len(clip_set.labels) < 2 and not clip_set.multi_label:
            (only,) = clip_set.labels
            raise ClipSetError(
                f"{args.clips}: one class only ({only}); a classifier learns nothing from it: add a background "
                f"class, e.g. a folder {Path(args.clips) / 'background'} of clips without {only}"
            )
        val_set = read_clip_set(args.val_clips) if args.val_clips else None
        if val_set is not None:
            unknown = sorted(set(val_set.labels) - set(clip_set.labels))
            if unknown:
                raise ClipSetError(f"{args.val_clips}: classes {unknown} are not among the training classes")
            val_set.labels = clip_set.labels
        else:
            require_split(clip_set, args.folds)  # before the log-mels: a set too small is told at once
    except (OSError, ValueError) as error:
        print(f"train: {error}", file=sys.stderr)
        return 2
    for line in [clip_set.describe(), *clip_set.notes] + ([val_set.describe(), *val_set.notes] if val_set else []):
        print(line)
    cache = cache_home(args.cache_dir)
    try:
        features = clip_features(clip_set, cache)
        val_features = clip_features(val_set, cache) if val_set else None
    except AudioFileError as error:
        print(f"train: {error}", file=sys.stderr)
        return 2
    for skipped in features.skipped + (val_features.skipped if val_features else []):
        print(f"skipped (unreadable): {skipped}", file=sys.stderr)
    if features.skipped:
        print(f"{len(features.skipped)} unreadable files skipped", file=sys.stderr)
    try:  # over the readable clips, which may be too few where all of them were not
        val_clips = val_features.clip_set if val_features else None
        splits = draw_splits(features.clip_set, val_clips, args.folds, recipe.seed)
    except ClipSetError as error:
        print(f"train: {error}", file=sys.stderr)
        return 2
    provenance = {
        "data": {
            "clips": str(args.clips),
            "layout": clip_set.layout,
            "hash": dataset_hash(features.clip_set),
            "val_clips": str(args.val_clips) if args.val_clips else None,
            "val_hash": dataset_hash(val_features.clip_set) if val_features else None,
            "split": f"{args.folds} folds"
            if args.folds
            else "--val-clips"
            if val_set
            else f"stratified {HOLDOUT_SHARE:.0%} hold-out"
            if clip_set.layout != "speech_commands"
            else "validation_list.txt",
        }
    }
    chosen = [args.fold - 1] if args.fold else list(range(len(splits)))
    results = []
    for k in chosen:
        train, val = splits[k]
        out = args.out / f"fold-{k + 1}" if args.folds and args.fold is None else args.out
        if args.folds:
            print(f"fold {k + 1}/{len(splits)}: {len(train)} training clips, {len(val)} validation clips")
        fold_provenance = {**provenance, "data": {**provenance["data"], "fold": k + 1 if args.folds else None}}
        result = train_clips(features, train, val, out, recipe, config, args.init, val_features, fold_provenance)
        seconds = [record["seconds"] for record in result["history"]]
        speed = [record["train_clips_per_second"] for record in result["history"]]
        best = result["best"]
        figure = f"mAP {best['map']:.3f}" if clip_set.multi_label else f"accuracy {best['accuracy']:.3f}"
        print(
            f"best epoch {best['epoch']}: validation {figure} ({best['weights']} weights) "
            f"-> {out / 'best.safetensors'}; "
            f"{np.mean(seconds):.1f} s per epoch, {np.mean(speed):.1f} training clips/s"
        )
        results.append(best)
    if len(results) > 1:
        values = [best["map"] if clip_set.multi_label else best["accuracy"] for best in results]
        name = "mAP" if clip_set.multi_label else "accuracy"
        print(
            f"{len(results)}-fold validation {name}: {np.mean(values):.3f} +- {np.std(values):.3f} "
            f"(folds: {', '.join(f'{v:.3f}' for v in values)})"
        )
    return 0
