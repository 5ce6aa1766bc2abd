"""Model subcommands: `convert` and `export-onnx` (with its drift report)."""

import argparse
import sys


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="official Lightning checkpoint, plain state dict or our .safetensors")
    parser.add_argument("output", help="OUT.safetensors")
    parser.add_argument(
        "--labels",
        default=None,
        help="class labels: AudioSet's class_labels_indices.csv (its display_name column) or a text "
        "file with one label per line (default: AudioSet's for 527 classes)",
    )


def run_convert(args: argparse.Namespace) -> int:
    from htsat_live.model.checkpoint import (
        build_model,
        read_checkpoint,
        read_labels,
        save_checkpoint,
    )

    if not args.output.endswith(".safetensors"):
        print("htsat-live convert: the output must be a .safetensors file", file=sys.stderr)
        return 2
    try:
        checkpoint = read_checkpoint(args.checkpoint)
        model = build_model(checkpoint, args.checkpoint)
        labels = read_labels(args.labels) if args.labels else checkpoint.labels
        if len(labels) != checkpoint.config.num_classes:
            raise ValueError(
                f"{args.labels}: {len(labels)} labels for a model of {checkpoint.config.num_classes} classes"
            )
    except (OSError, ValueError) as error:  # CheckpointError included
        print(f"htsat-live convert: {error}", file=sys.stderr)
        return 2
    provenance = {**checkpoint.metadata.get("provenance", {}), "converted_from": str(args.checkpoint)}
    try:
        save_checkpoint(args.output, model, labels, checkpoint.thresholds, provenance, checkpoint.median_frames)
    except OSError as error:
        print(f"htsat-live convert: cannot write {args.output}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.output}: {checkpoint.config.num_classes} classes, embed_dim {checkpoint.config.embed_dim}, "
        f"depths {list(checkpoint.config.depths)}"
    )
    return 0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="any checkpoint load_model reads")
    parser.add_argument("output", help="OUT.onnx")
    parser.add_argument(
        "--int8", action="store_true", help="dynamic int8 quantisation of the weights; prints its drift"
    )


def run_export(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from htsat_live.model.checkpoint import build_model, read_checkpoint
    from htsat_live.model.onnx import export_onnx, load_onnx_predictor
    from htsat_live.model.predictor import TorchBackend, predictor_from_checkpoint

    with tqdm(total=3, desc="export-onnx", unit="step") as progress:
        checkpoint = read_checkpoint(args.checkpoint)
        model = build_model(checkpoint, args.checkpoint)
        progress.update()
        export_onnx(model, checkpoint, args.output, int8=args.int8)
        progress.update()
        exported = load_onnx_predictor(args.output)
        reference = predictor_from_checkpoint(checkpoint, TorchBackend(model, "cpu"), str(args.checkpoint))
        drift = compare_outputs(reference, exported, probe_waves())
        progress.update()
    print(f"wrote {args.output}")
    print(
        f"drift vs torch fp32 on {drift['clips']} probe clips: framewise max abs {drift['max_abs']:.2e}, "
        f"mean abs {drift['mean_abs']:.2e}; top-{drift['top_k']} clipwise agreement {drift['top_k_agreement']:.3f}"
    )
    return 0


def probe_waves(count: int = 4, seed: int = 0):
    """Probe clips for drift reports: noise bursts, tones and a chirp, 10 s at 32 kHz, [count, 320000]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(320000) / 32000
    waves = []
    for i in range(count):
        tone = np.sin(2 * np.pi * (200 + 400 * i) * t * (1 + 0.2 * t))
        envelope = (np.sin(2 * np.pi * (0.3 + 0.1 * i) * t) > 0).astype(np.float64)
        waves.append(0.3 * tone * envelope + 0.05 * rng.standard_normal(t.size))
    return np.asarray(waves, dtype=np.float32)


def compare_outputs(reference, candidate, waves) -> dict:
    """Framewise max/mean abs difference and the top-k clipwise agreement of two predictors on the same waves."""
    import numpy as np

    ours = reference.predict(waves)
    theirs = candidate.predict(waves)
    difference = np.abs(ours["framewise"] - theirs["framewise"])
    agreement, k = top_k_agreement(theirs["clipwise"], ours["clipwise"])
    return {
        "clips": len(waves),
        "max_abs": float(difference.max()),
        "mean_abs": float(difference.mean()),
        "top_k": k,
        "top_k_agreement": agreement,
    }


def top_k_agreement(scores, reference, k: int = 5) -> tuple[float, int]:
    """Mean share of the reference's k highest classes that `scores` also ranks in its k highest, per
    clip ([N, C] each), with k at most the class count (with k = C every model agrees fully, so fewer
    than 2 classes say nothing). Returns (agreement, k used)."""
    import numpy as np

    k = min(k, scores.shape[1])
    ours = np.argsort(-scores, axis=1)[:, :k]
    theirs = np.argsort(-reference, axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ours, theirs)])), k
