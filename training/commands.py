"""`htsat-live train`: its arguments, and the run: train on soundscape folders (our own sets or DESED-style ones,
`soundscape_folder`), then (with --test-dir) score the best checkpoint on held-out soundscapes and record the
score in the checkpoint's provenance.

On --resume, the recipe and architecture flags that are not given take the resumed run's values, so that
`--resume` alone finishes the run as it was started."""

import sys
from pathlib import Path

from htsat_live.model.embedded import SOURCES_MANIFEST
from htsat_live.stream.paths import output_folder
from htsat_live.training.architecture import (
    add_architecture_arguments,
    architecture_config,
)
from htsat_live.training.clip_commands import add_clip_arguments, run_clip_train
from htsat_live.training.loop import saved_run, train
from htsat_live.training.settings import PRECISIONS, TrainSettings
from htsat_live.training.soundscape_folder import (
    choose_classes,
    describe,
    read_folder,
    require_events,
)
from htsat_live.training.validation import evaluate_checkpoint

SETTING_FLAGS = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "mixup_probability",
    "frame_loss_weight",
    "band_limit_probability",
    "equalizer_db",
    "pitch_shift_bins",
    "ema_decay",
    "seed",
    "threads",
    "precision",
)
EPOCHS_HELP = (
    "epochs of the whole run (default: %(default)s; on --resume, the run's own). With --resume, the run's own "
    "number continues its learning-rate schedule exactly; another number keeps the rate reached and spreads "
    "the rest of the cosine decay, down to the same floor, over the epochs then left: the rate never jumps, "
    "and a finished run given more epochs trains them at its final rate. For a new warm-up and decay, start "
    "a new run with --init OUT/best.safetensors instead"
)


def add_train_arguments(parser) -> None:
    parser.add_argument(
        "--train-dir",
        type=Path,
        help="training soundscapes: a folder with an event table (a .tsv with filename, onset, offset, "
        "event_label), a durations table (a .tsv with filename, duration), both found by their "
        "header in the folder or its metadata/, and the clips in audio/ (DESED-style) or beside them "
        "(the sets of scripts/fetch_sounds.py); the tables are those `evaluate` takes",
    )
    parser.add_argument(
        "--val-dir", type=Path, help="validation soundscapes, the same layout: best epoch and thresholds"
    )
    parser.add_argument("--test-dir", type=Path, help="held-out soundscapes to score the best checkpoint on at the end")
    parser.add_argument(
        "--classes",
        nargs="+",
        metavar="CLASS",
        help="the classes to train, in this order (`A B C` or `A,B,C`; others' events are left out); "
        "default: every label of the training set, in its manifest's order for our own sets, else "
        "sorted by name; on --resume, the run's",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where log-mels are cached (default: $XDG_CACHE_HOME/htsat-live, else ~/.cache/htsat-live)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/train"), help="run directory (best.safetensors, last.pt, history.json)"
    )
    parser.add_argument(
        "--init",
        type=Path,
        help="start from this checkpoint (any file load_model reads; its architecture wins over "
        "--embed-dim/--depths/--heads); the head is re-sized unless it has the same labels",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last finished epoch (<out>/last.pt), with its own settings "
        "unless flags are given (see --epochs)",
    )
    parser.add_argument(
        "--sources-manifest",
        type=Path,
        default=SOURCES_MANIFEST,
        help="manifest of the source recordings, hashed into the checkpoint's provenance",
    )
    add_architecture_arguments(parser)
    defaults = TrainSettings()
    for name in SETTING_FLAGS[:-1]:
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(getattr(defaults, name)),
            metavar=name.upper(),
            help=EPOCHS_HELP.replace("%(default)s", str(defaults.epochs))
            if name == "epochs"
            else f"default {getattr(defaults, name)}",
        )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help=f"training arithmetic (default {defaults.precision}): bf16 autocast is about 1.8x faster on "
        "CPUs with AVX-512 BF16 or AMX",
    )
    add_clip_arguments(parser)


def run_train(args) -> int:
    from htsat_live.model.checkpoint import (
        build_model,
        read_checkpoint,
        save_checkpoint,
    )

    if args.clips:
        return run_clip_train(args)
    if args.train_dir is None or args.val_dir is None:
        print("train: give --train-dir and --val-dir (soundscapes), or --clips (clip-labelled data)", file=sys.stderr)
        return 2
    try:
        output_folder(args.out, "--out")
        folders = [read_folder(args.train_dir), read_folder(args.val_dir)] + (
            [read_folder(args.test_dir)] if args.test_dir else []
        )
        run = saved_run(args.out) if args.resume else None
        asked = [name for item in args.classes for name in item.split(",") if name] if args.classes else None
        if run and asked and asked != run["labels"]:
            raise ValueError(
                f"{args.out}: the run trains {', '.join(run['labels'])}; --classes cannot change them on --resume"
            )
        labels = choose_classes(folders[0], asked or (run["labels"] if run else None))
        for folder in folders[1:]:
            require_events(folder, labels)
        given = {name: getattr(args, name) for name in SETTING_FLAGS if getattr(args, name) is not None}
        settings = TrainSettings(**{**(run["settings"] if run else {}), **given})
        config = architecture_config(args, run["config"] if run else None)
    except (OSError, ValueError) as error:
        print(f"train: {error}", file=sys.stderr)
        return 2
    order = (
        "as --classes gives them"
        if asked
        else "the resumed run's"
        if run
        else "every label of the training set, "
        + ("in its manifest's order" if (args.train_dir / "manifest.json").is_file() else "sorted by name")
        + "; --classes chooses and orders them"
    )
    print(f"classes ({order}): {', '.join(labels)}")
    for role, folder in zip(("training set", "validation set", "test set"), folders):
        for line in describe(folder, labels):
            print(f"{role}: {line}")
    manifest = args.sources_manifest if args.sources_manifest.is_file() else None
    result = train(
        folders[0], folders[1], args.out, config, settings, labels, args.init, args.resume, manifest, args.cache_dir
    )
    best = args.out / "best.safetensors"
    print(f"best epoch {result['best'].get('epoch')}: validation event F1 {result['best']['macro_f1']:.3f} -> {best}")
    if args.test_dir:
        macro, per_class = evaluate_checkpoint(best, folders[2], args.out / "test_detections.tsv")
        checkpoint = read_checkpoint(best)
        provenance = dict(checkpoint.metadata.get("provenance", {}))
        metrics = {
            **provenance.get("metrics", {}),
            "test_event_f1_macro": macro,
            "test_event_f1": per_class,
            "test": {"clips": len(folders[2].names), "hash": folders[2].data_hash},
        }
        save_checkpoint(
            best,
            build_model(checkpoint, best),
            checkpoint.labels,
            checkpoint.thresholds,
            {**provenance, "metrics": metrics},
            checkpoint.median_frames,
        )
        print(
            f"test event F1 (psds_eval, Table 3 protocol, a fraction): macro {macro:.3f} "
            + " ".join(f"{k} {v:.3f}" for k, v in per_class.items())
        )
        print(f"detections: {args.out / 'test_detections.tsv'}")
    return 0
