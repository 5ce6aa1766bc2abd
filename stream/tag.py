"""`htsat-live tag FILE...`: tag whole files of any length with the stream's windows and stitching.

A file is read in blocks and replayed through the stream's windows and stitcher (`stream.replay`), so its
timeline is the one the live pipeline would build. The timeline is summarised frame by frame as it
becomes final, so memory stays flat however long the file: top labels are ranked by their peak stitched
score; events are runs of frames over the class threshold, the strongest `--events` of them kept.
"""

import argparse
import heapq
import json
import sys
from dataclasses import dataclass

import numpy as np

from htsat_live.model import BACKEND_CHOICES, BACKEND_HELP, backend_line, read_blocks, runs_to_events
from htsat_live.stream.replay import FinalFrames, replay_blocks

DEFAULT_THRESHOLD = 0.5


@dataclass
class _Run:
    """A run of frames over threshold of one class, possibly still going."""

    first: int  # grid frame
    peak: float = 0.0
    total: float = 0.0
    count: int = 0

    def add(self, scores: np.ndarray) -> None:
        self.peak = max(self.peak, float(scores.max()))
        self.total += float(scores.sum(dtype=np.float64))
        self.count += len(scores)


class TimelineSummary:
    """Per-class peak and mean of a timeline fed in consecutive chunks of final frames, and its strongest
    runs of frames over each class's threshold (events), without holding the timeline."""

    def __init__(self, thresholds: np.ndarray, labels: list[str], frame_seconds: float, max_events: int):
        self.thresholds = thresholds  # [C]
        self.labels = labels
        self.frame_seconds = frame_seconds
        self.max_events = max_events
        self.frames = 0
        self.peaks = np.zeros(len(labels), np.float32)  # [C]
        self.sums = np.zeros(len(labels), np.float64)  # [C]
        self._open: dict[int, _Run] = {}  # class -> its run still going
        self._strongest: list[tuple[float, int, dict]] = []  # min-heap of (peak, order, event)
        self._order = 0

    def add(self, chunk: np.ndarray) -> None:
        """The next final frames, [n, C]."""
        if not len(chunk):
            return
        np.maximum(self.peaks, chunk.max(axis=0), out=self.peaks)
        self.sums += chunk.sum(axis=0, dtype=np.float64)
        active = chunk > self.thresholds[None, :]  # [n, C]
        for column in [c for c in self._open if not active[0, c]]:  # runs that ended with the last chunk
            self._close(column, self.frames)
        for start, end, column in runs_to_events(active, range(len(self.labels))):
            run = self._open.pop(column, None) if start == 0 else None  # a run at the start goes on
            run = run or _Run(self.frames + start)
            run.add(chunk[start:end, column])
            self._open[column] = run
            if end < len(chunk):
                self._close(column, self.frames + end)
        self.frames += len(chunk)

    def finish(self) -> None:
        for column in list(self._open):
            self._close(column, self.frames)

    def _close(self, column: int, end: int) -> None:
        run = self._open.pop(column)
        event = {
            "label": self.labels[column],
            "onset": round(run.first * self.frame_seconds, 4),
            "offset": round(end * self.frame_seconds, 4),
            "peak": round(run.peak, 4),
            "mean": round(run.total / run.count, 4),
        }
        self._order += 1
        heapq.heappush(self._strongest, (run.peak, -self._order, event))
        if len(self._strongest) > self.max_events:
            heapq.heappop(self._strongest)

    def events(self) -> list[dict]:
        """The strongest events, by peak (ties: the earlier first)."""
        return [event for _, _, event in sorted(self._strongest, key=lambda item: (-item[0], -item[1]))]


def tag_file(model, path: str, hop_seconds: float, top_k: int, max_events: int, threshold: float | None) -> dict:
    if threshold is not None:
        thresholds = np.full(model.num_classes, threshold, dtype=np.float32)
    elif model.thresholds is not None:
        thresholds = model.thresholds
    else:
        thresholds = np.full(model.num_classes, DEFAULT_THRESHOLD, dtype=np.float32)
    summary = TimelineSummary(thresholds, model.labels, model.frame_seconds, max_events)
    final = FinalFrames(model.num_classes)
    samples = 0

    def counted_blocks():
        nonlocal samples
        for block in read_blocks(path):
            samples += len(block)
            yield block

    for update in replay_blocks(model, counted_blocks(), hop_seconds):
        summary.add(final.apply(update))
    summary.finish()
    if samples == 0:
        raise ValueError(f"{path}: holds no audio")
    means = summary.sums / max(summary.frames, 1)  # [C]
    top = np.argsort(-summary.peaks)[:top_k]
    return {
        "file": path,
        "seconds": round(samples / model.sample_rate, 3),
        "top": [
            {"label": model.labels[c], "peak": round(float(summary.peaks[c]), 4), "mean": round(float(means[c]), 4)}
            for c in top
        ],
        "events": summary.events(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files of any length, rate and channel count")
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="checkpoint, .onnx file or model name (default: the embedded starter model); repeated: an ensemble",
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help=BACKEND_HELP,
    )
    parser.add_argument("--device", default="cpu", help="compute device: cpu or cuda")
    parser.add_argument("--hop", type=float, default=10.0, help="seconds between window starts (0.3125..10)")
    parser.add_argument("--top-k", type=int, default=5, help="labels listed per file")
    parser.add_argument("--events", type=int, default=10, help="strongest events listed per file")
    parser.add_argument(
        "--threshold", type=float, default=None, help="one threshold for every class (default: the model's)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    from htsat_live.stream.building import load_model_or_explain
    from htsat_live.stream.config import HOP_MAX, HOP_MIN

    if not HOP_MIN <= args.hop <= HOP_MAX:
        print(f"htsat-live tag: --hop must be in {HOP_MIN:g}..{HOP_MAX:g} s, got {args.hop}", file=sys.stderr)
        return 2
    model = load_model_or_explain(args.model, args.device, args.backend)
    if model is None:
        return 2
    from htsat_live.model import ensemble_line

    ensemble = ensemble_line(model, args.threshold is not None)
    engine = backend_line(model, args.device)
    print(f"htsat-live tag: {engine}; {ensemble}" if ensemble else f"htsat-live tag: {engine}", file=sys.stderr)
    results, failed = [], 0
    for path in args.files:
        try:
            results.append(tag_file(model, path, args.hop, args.top_k, args.events, args.threshold))
        except (OSError, ValueError) as error:  # an unreadable file (AudioFileError) included
            failed += 1
            print(f"htsat-live tag: {error}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            print(f"{result['file']} ({result['seconds']} s)")
            for entry in result["top"]:
                print(f"  {entry['peak']:.3f}  {entry['label']}")
            for event in result["events"]:
                print(
                    f"  event {event['onset']:8.3f} - {event['offset']:8.3f} s  {event['label']}  "
                    f"peak {event['peak']:.3f}"
                )
    return 1 if failed else 0
