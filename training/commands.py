"""`htsat-live train`: its arguments, and the run: train on soundscape sets, then (with --test-dir) score the best
checkpoint on held-out soundscapes and record the score in the checkpoint's provenance."""

import json
from pathlib import Path

from htsat_live.training.loop import train
from htsat_live.training.settings import PRECISIONS, TrainSettings
from htsat_live.training.validation import evaluate_checkpoint


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
