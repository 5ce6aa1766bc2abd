"""Model subcommands: `convert`, `models` (the model folder) and `export-onnx` (with its drift report)."""

import argparse
import sys
from datetime import UTC


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


def add_models_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", default=None, help="the model folder (default: $XDG_DATA_HOME/htsat-live/models, as `[model] dir`)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add = actions.add_parser(
        "add", help="check a checkpoint, convert it to .safetensors and keep it in the model folder under a name"
    )
    add.add_argument("file", metavar="FILE", help="official Lightning checkpoint, plain state dict or our .safetensors")
    add.add_argument("--name", default=None, help="the model's name (default: the official name, else the file's)")
    add.add_argument(
        "--labels",
        default=None,
        help="class labels: AudioSet's class_labels_indices.csv or one label per line (default: the published "
        "labels of an official checkpoint, else the checkpoint's own)",
    )
    add.add_argument("--force", action="store_true", help="replace a model of the same name")
    add.add_argument("--dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def run_models(args: argparse.Namespace) -> int:
    if getattr(args, "action", None) == "add":
        return _add_model(args)
    print(format_models(args.dir))
    return 0


def format_models(folder=None) -> str:
    """The official checkpoints (with whether each is installed) and the models in the folder."""
    from htsat_live.model.registry import DRIVE_FOLDER, OFFICIAL_MODELS, installed_names, model_dir

    installed = installed_names(folder)
    lines = [f"official HTS-AT checkpoints (download: {DRIVE_FOLDER}):"]
    rows = [("name", "file", "trained on", "published", "installed")]
    for model in OFFICIAL_MODELS:
        state = "unsupported" if model.unsupported else ("yes" if model.name in installed else "no")
        rows.append((model.name, model.file or "-", model.trained_on, model.figure, state))
    lines += _table(rows)
    lines += [f"  {model.name}: unsupported: {model.unsupported}" for model in OFFICIAL_MODELS if model.unsupported]
    lines.append(
        "  DESED: the paper's detection figures come from an AudioSet model with DESED's ten classes mapped onto "
        "AudioSet's (configs/desed.toml in a checkout: --config configs/desed.toml)"
    )
    lines.append(f"models in {model_dir(folder)}:")
    rows = [("name", "classes", "from", "sha256")]
    for name in installed:
        rows.append(_installed_row(name, folder))
    lines += _table(rows) if installed else ["  none: `htsat-live models add FILE` adds one"]
    return "\n".join(lines)


def _installed_row(name: str, folder) -> tuple:
    import json

    import safetensors

    from htsat_live.model.checkpoint import METADATA_KEY
    from htsat_live.model.registry import model_file

    try:
        with safetensors.safe_open(str(model_file(name, folder)), framework="pt") as handle:
            metadata = json.loads((handle.metadata() or {}).get(METADATA_KEY, "{}"))
    except (OSError, ValueError, safetensors.SafetensorError) as error:
        return (name, "?", f"unreadable: {error}", "")
    provenance = metadata.get("provenance") or {}
    classes = str(len(metadata.get("labels") or [])) or "?"
    source = provenance.get("source_file") or provenance.get("converted_from") or "-"
    return (name, classes, source, (provenance.get("sha256") or "-")[:16])


def _table(rows: list[tuple]) -> list[str]:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _add_model(args: argparse.Namespace) -> int:
    from datetime import datetime
    from pathlib import Path

    from htsat_live.model.checkpoint import build_model, read_checkpoint, read_labels, save_checkpoint
    from htsat_live.model.registry import (
        NAME_PATTERN,
        OFFICIAL_BY_NAME,
        model_file,
        official_for_file,
        published_labels,
        sha256_of,
    )

    def refuse(message: str) -> int:
        print(f"htsat-live models add: {message}", file=sys.stderr)
        return 2

    source = Path(args.file)
    if not source.is_file():
        return refuse(f"{source}: no such checkpoint file")
    try:
        checkpoint = read_checkpoint(source)
        model = build_model(checkpoint, source)
    except (OSError, ValueError) as error:  # CheckpointError included
        return refuse(f"{error} (FILE must be an HTS-AT checkpoint)")
    classes = checkpoint.config.num_classes
    official = official_for_file(source.name, classes)
    if official is None and not args.labels:  # known by its class count: ESC-50's and Speech Commands' carry no labels
        official = next((m for m in OFFICIAL_BY_NAME.values() if m.classes == classes and m.classes != 527), None)
        if official is not None and official.unsupported:
            return refuse(
                f"{source}: {classes} classes, as the official {official.name} checkpoint, which is not supported: "
                f"{official.unsupported} (a {classes}-class model of your own: give --labels)"
            )
    name = args.name or (official.name if official else source.stem)
    if not NAME_PATTERN.fullmatch(name):
        return refuse(f"--name {name!r}: a name is letters, digits, '-' and '_' (64 at most), e.g. --name kitchen")
    try:
        if args.labels:
            labels = read_labels(args.labels)
        elif official is not None and published_labels(official):
            labels = published_labels(official)
        else:
            labels = checkpoint.labels
        if len(labels) != classes:
            raise ValueError(f"{args.labels}: {len(labels)} labels for a model of {classes} classes")
    except ValueError as error:
        return refuse(str(error))
    target = model_file(name, args.dir)
    if target.exists() and not args.force:
        return refuse(f"{name}: already in {target.parent} (--force replaces it, or choose another --name)")
    provenance = {
        **checkpoint.metadata.get("provenance", {}),
        "source_file": source.name,
        "sha256": sha256_of(source),
        "added": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if official is not None:
        provenance["official"] = official.name
        provenance["trained_on"] = official.trained_on
    try:
        save_checkpoint(target, model, labels, checkpoint.thresholds, provenance, checkpoint.median_frames)
    except OSError as error:
        print(f"htsat-live models add: cannot write {target}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"added {name}: {classes} classes from {source.name} (sha256 {provenance['sha256'][:16]}) as {target}")
    return 0
