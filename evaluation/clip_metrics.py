"""`htsat-live evaluate --clips DATA --model M`: clip-level accuracy (top-1, top-5) for single-label data, mAP
and per-class AP for multi-label data (scikit-learn, via `model.clip_set.clip_scores`), and the confusion
matrix, printed and saved as a PNG (matplotlib).

Each clip is scored as in training: its 10-s windows (tiled or cut, `model.clip_set`) through the model, the
clip output averaged over them. A Speech Commands folder is scored on its test list, any other set whole.
Unreadable files are skipped and counted. Figures are fractions.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np

from htsat_live.model.audio import AudioFileError
from htsat_live.model.clip_set import (
    ClipSetError,
    clip_scores,
    read_clip_set,
    read_windows,
)


def add_clip_arguments(parser) -> None:
    group = parser.add_argument_group("clip-labelled data (--clips)")
    group.add_argument(
        "--clips",
        type=Path,
        metavar="DATA",
        help="score a model on clip-labelled data instead of events: a folder per class, ESC-50, Speech "
        "Commands (its test list) or a CSV of filename,labels; needs --model",
    )
    group.add_argument(
        "--model", help="with --clips: the checkpoint (or .onnx) to score; its labels must cover the data's"
    )
    group.add_argument(
        "--confusion",
        type=Path,
        default=Path("confusion.png"),
        help="with --clips: where to save the confusion matrix PNG (single-label data; default %(default)s)",
    )


def confusion_table(matrix: np.ndarray, labels: list[str]) -> str:
    """Rows: true class; columns: predicted class (numbered as the rows)."""
    width = max(len(label) for label in labels)
    cell = max(3, len(str(int(matrix.max()))) if matrix.size else 1)
    corner = "true / predicted"
    lines = [f"{corner:<{width + 4}}" + " ".join(f"{i + 1:>{cell}}" for i in range(len(labels)))]
    for i, (label, row) in enumerate(zip(labels, matrix)):
        lines.append(f"{i + 1:>2} {label:<{width}} " + " ".join(f"{int(v):>{cell}}" for v in row))
    return "\n".join(lines)


def save_confusion_png(matrix: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 0.5 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    ConfusionMatrixDisplay(matrix, display_labels=labels).plot(
        ax=axes, xticks_rotation="vertical", colorbar=False, cmap="Blues"
    )
    axes.set_title(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _json_safe(value):
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def run_clip_evaluation(args) -> int:
    from sklearn.metrics import confusion_matrix
    from tqdm import tqdm

    from htsat_live.model import load_model

    try:
        if not args.model:
            raise ValueError("--clips needs --model")
        clip_set = read_clip_set(args.clips)
        if clip_set.layout == "speech_commands":
            clip_set = clip_set.split("test")
            if not clip_set.clips:
                raise ClipSetError(f"{args.clips}: testing_list.txt names no clip")
        model = load_model(args.model)
        missing = [label for label in clip_set.labels if label not in model.labels]
        if missing:
            raise ValueError(
                f"{args.model}: the model has no class {missing[0]!r} of {args.clips} "
                f"({len(missing)} of {len(clip_set.labels)} missing)"
            )
    except (OSError, ValueError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    columns = [model.labels.index(label) for label in clip_set.labels]
    probabilities, kept, skipped = [], [], []
    for i, clip in enumerate(tqdm(clip_set.clips, desc="evaluate", unit="clip", file=sys.stderr)):
        try:
            windows = read_windows(clip.path)  # [W, 320000]
        except AudioFileError as error:
            skipped.append(str(error))
            continue
        probabilities.append(model.predict(windows)["clipwise"][:, columns].mean(axis=0))  # [C]
        kept.append(i)
    for line in skipped:
        print(f"evaluate: skipped (unreadable): {line}", file=sys.stderr)
    if not kept:
        print(f"evaluate: no clip of {args.clips} could be read", file=sys.stderr)
        return 1
    scored = clip_set.subset(kept)
    targets, probabilities = scored.targets(), np.stack(probabilities)
    result = clip_scores(probabilities, targets, scored.labels, scored.multi_label)
    result.update({"model": str(args.model), "data": str(args.clips), "layout": scored.layout, "skipped": len(skipped)})
    if not scored.multi_label:
        matrix = confusion_matrix(
            targets.argmax(axis=1), probabilities.argmax(axis=1), labels=np.arange(len(scored.labels))
        )
        result["confusion"] = {"labels": scored.labels, "matrix": matrix.tolist(), "png": str(args.confusion)}
        save_confusion_png(
            matrix,
            scored.labels,
            args.confusion,
            f"{Path(args.model).name} on {Path(args.clips).name}: accuracy {result['accuracy']:.3f}",
        )
    if args.json:
        print(json.dumps(_json_safe(result), indent=2, allow_nan=False))
        return 0
    print(f"{scored.describe()}" + (f"; {len(skipped)} unreadable files skipped" if skipped else ""))
    width = max(len(label) for label in scored.labels)
    print(f"{'class':<{width}}  clips     AP" + ("  accuracy" if not scored.multi_label else ""))
    for label, entry in result["per_class"].items():
        ap = "   n/a" if entry["ap"] is None else f"{entry['ap']:.3f}"
        line = f"{label:<{width}}  {entry['clips']:5d}  {ap}"
        if not scored.multi_label:
            line += "     n/a" if entry["accuracy"] is None else f"     {entry['accuracy']:.3f}"
        print(line)
    print(f"mAP {result['map']:.3f}" if result["map"] is not None else "mAP n/a")
    if not scored.multi_label:
        print(f"accuracy (top-1) {result['accuracy']:.3f}, top-5 {result['top5_accuracy']:.3f}")
        print(confusion_table(matrix, scored.labels))
        print(f"confusion matrix -> {args.confusion}")
    return 0
