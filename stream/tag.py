"""`htsat-live tag FILE...`: tag whole files of any length with the stream's windows and stitching.

A file is replayed through the stream's windows and stitcher (`stream.replay`), so its timeline is the
one the live pipeline would build. Top labels are
ranked by their peak stitched score; events are runs of frames over the class threshold.
"""

import argparse
import json
import sys

import numpy as np

from htsat_live.model import read_clip, runs_to_events
from htsat_live.stream.replay import file_timeline

DEFAULT_THRESHOLD = 0.5


def timeline_events(timeline: np.ndarray, thresholds: np.ndarray, labels: list[str], frame_seconds: float) -> list[dict]:
    """Runs of frames over each class's threshold, with onset/offset seconds, peak and mean score."""
    column_of = {label: column for column, label in enumerate(labels)}
    events = []
    for start, end, label in runs_to_events(timeline > thresholds[None, :], labels):  # active: [T, C]
        scores = timeline[start:end, column_of[label]]
        events.append({
            "label": label,
            "onset": round(start * frame_seconds, 4),
            "offset": round(end * frame_seconds, 4),
            "peak": round(float(scores.max()), 4),
            "mean": round(float(scores.mean()), 4),
        })
    return sorted(events, key=lambda e: -e["peak"])


def tag_file(model, path: str, hop_seconds: float, top_k: int, max_events: int, threshold: float | None) -> dict:
    wave = read_clip(path)
    if wave.size == 0:
        raise ValueError(f"{path}: holds no audio")
    timeline = file_timeline(model, wave, hop_seconds)  # [T, C]
    if threshold is not None:
        thresholds = np.full(model.num_classes, threshold, dtype=np.float32)
    elif model.thresholds is not None:
        thresholds = model.thresholds
    else:
        thresholds = np.full(model.num_classes, DEFAULT_THRESHOLD, dtype=np.float32)
    peaks = timeline.max(axis=0)  # [C]
    top = np.argsort(-peaks)[:top_k]
    return {
        "file": path,
        "seconds": round(len(wave) / model.sample_rate, 3),
        "top": [{"label": model.labels[c], "peak": round(float(peaks[c]), 4), "mean": round(float(timeline[:, c].mean()), 4)} for c in top],
        "events": timeline_events(timeline, thresholds, model.labels, model.frame_seconds)[:max_events],
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files of any length, rate and channel count")
    parser.add_argument("--model", default=None, help="checkpoint or .onnx file (default: the embedded starter model)")
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    parser.add_argument("--device", default="cpu", help="compute device: cpu or cuda")
    parser.add_argument("--hop", type=float, default=10.0, help="seconds between window starts (0.3125..10)")
    parser.add_argument("--top-k", type=int, default=5, help="labels listed per file")
    parser.add_argument("--events", type=int, default=10, help="strongest events listed per file")
    parser.add_argument("--threshold", type=float, default=None, help="one threshold for every class (default: the model's)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    from htsat_live.model import load_model

    if not 0.3125 <= args.hop <= 10:
        print(f"error: --hop must be in 0.3125..10 s, got {args.hop}", file=sys.stderr)
        return 2
    model = load_model(args.model, device=args.device, backend=args.backend)
    results, failed = [], 0
    for path in args.files:
        try:
            results.append(tag_file(model, path, args.hop, args.top_k, args.events, args.threshold))
        except (OSError, ValueError) as error:  # an unreadable file (AudioFileError) included
            failed += 1
            print(f"error: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            print(f"{result['file']} ({result['seconds']} s)")
            for entry in result["top"]:
                print(f"  {entry['peak']:.3f}  {entry['label']}")
            for event in result["events"]:
                print(f"  event {event['onset']:8.3f} - {event['offset']:8.3f} s  {event['label']}  peak {event['peak']:.3f}")
    return 1 if failed else 0
