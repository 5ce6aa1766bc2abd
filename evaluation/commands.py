"""The `evaluate`, `detect-dir` and `consistency` subcommands: metrics of detected events, batch detection
over a folder of clips, and the streaming pipeline checked against the official offline pass on the same files.

torch and the stream modules are imported inside the run functions so `htsat-live --help` stays fast.
"""

import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

from htsat_live.evaluation.clip_metrics import add_clip_arguments, run_clip_evaluation
from htsat_live.model.event_table import write_events
from htsat_live.stream.building import add_preset_argument, event_rule_from_config

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}


def audio_files(directory: str | Path) -> list[Path]:
    """The audio files of a folder (not recursive), sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a folder")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ValueError(f"{directory}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return files


def write_scores(path: str | Path, scores, labels: list[str], frame_seconds: float) -> None:
    """A sed_scores_eval score table of one clip: onset, offset, one column per label. scores: [T, G]."""
    with open(path, "w") as out:
        out.write("\t".join(["onset", "offset", *labels]) + "\n")
        for k, row in enumerate(scores):
            values = "\t".join(f"{float(v):.6g}" for v in row)
            out.write(f"{k * frame_seconds!r}\t{(k + 1) * frame_seconds!r}\t{values}\n")


def pipeline_events(path: Path, model, config) -> list[tuple[float, float, str]]:
    """The final events of the live pipeline fed one file as fast as it takes it: (onset s, offset s, label).

    Raises CaptureError or ValueError when the file cannot be read to its end or a window was lost.
    """
    from htsat_live.stream.capture import CaptureError
    from htsat_live.stream.config import with_overrides
    from htsat_live.stream.output import Listener
    from htsat_live.stream.pipeline import Pipeline

    events = []

    def collect(topic: str, stream: str, body: dict) -> None:
        if topic == "event" and body["state"] == "end" and body["final"]:  # not cancelled, not revised away
            events.append((body["onset"], body["offset"], body["label"]))

    pipeline = Pipeline(
        with_overrides(config, {"source.fast": True}), model, inputs=[str(path)], outputs=[Listener(collect)]
    )
    pipeline.start()
    try:
        pipeline.wait()
    finally:
        report = next(iter(pipeline.stop().values()))
    stats = pipeline.runners[0].source.stats
    if stats.state == "error":
        raise CaptureError(stats.last_error or f"{path}: reading failed")
    if report.skipped_windows or report.failed_windows:
        raise ValueError(f"{path.name}: the stream lost {report.skipped_windows + report.failed_windows} windows")
    return sorted(events, key=lambda event: (event[2], event[0]))


def add_detect_dir_arguments(parser) -> None:
    parser.add_argument("directory", help="folder of audio clips (any rate and channel count)")
    parser.add_argument(
        "--model",
        action="append",
        help="checkpoint, .onnx file or model name (default: the config's, else the embedded model); repeated: an "
        "ensemble",
    )
    parser.add_argument("--config", help="TOML config with the detection targets, e.g. configs/desed.toml")
    add_preset_argument(parser)
    parser.add_argument("--out", required=True, help="event table to write (TSV: filename, onset, offset, event_label)")
    parser.add_argument(
        "--mode",
        choices=("offline", "stream"),
        default="offline",
        help="offline: one official pass per clip (pad/cut to 10 s; the config's median filter, else the "
        "model's); stream: the live pipeline fed each file as fast as possible, at the config's hop "
        "(the events a live user gets)",
    )
    parser.add_argument(
        "--scores",
        help="offline mode: also write each clip's target scores to this folder (<stem>.tsv, for `evaluate --scores`)",
    )


def run_detect_dir(args) -> int:
    from tqdm import tqdm

    from htsat_live.model import ensemble_line, load_model
    from htsat_live.model.audio import read_clip
    from htsat_live.model.backend_choice import backend_line
    from htsat_live.model.event_rule import detect_clip
    from htsat_live.model.timebase import FRAME_SECONDS
    from htsat_live.stream.capture import CaptureError
    from htsat_live.stream.config import load_config
    from htsat_live.stream.events import median_frames_in_force, targets_from_config

    if args.scores and args.mode != "offline":
        print("detect-dir: --scores is written by --mode offline only", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config, args.preset)
        files = audio_files(args.directory)
        model = load_model(
            args.model or config.model.path or None,
            device=config.model.device,
            backend=config.model.backend,
            precision=config.model.precision,
            calibration=config.model.calibration or None,
        )
        targets = targets_from_config(config.events, model.labels, model.thresholds)
        median_frames = median_frames_in_force(config.events, model.median_frames)
    except (OSError, ValueError) as error:
        print(f"detect-dir: {error}", file=sys.stderr)
        return 2
    ensemble = ensemble_line(model, event_rule_from_config(config))
    engine = backend_line(model, config.model.device)
    print(f"detect-dir: {engine}; {ensemble}" if ensemble else f"detect-dir: {engine}", file=sys.stderr)
    if args.scores:
        Path(args.scores).mkdir(parents=True, exist_ok=True)
    rows, failed = [], 0
    for path in tqdm(files, desc=f"detect-dir ({args.mode})", unit="clip"):
        try:
            if args.mode == "offline":
                events, scores = detect_clip(model, read_clip(path), targets, median_frames)
                if args.scores:
                    write_scores(
                        Path(args.scores) / f"{path.stem}.tsv",
                        scores,
                        [target.name for target in targets],
                        FRAME_SECONDS,
                    )
            else:
                events = pipeline_events(path, model, config)
        except (CaptureError, ValueError) as error:
            failed += 1
            tqdm.write(f"detect-dir: skipped {path.name}: {error}", file=sys.stderr)
            continue
        rows.extend((path.name, onset, offset, label) for onset, offset, label in events)
    write_events(args.out, rows)
    print(
        f"{len(rows)} events from {len(files) - failed} clips -> {args.out}"
        + (f" ({failed} clips skipped)" if failed else "")
    )
    return 1 if failed else 0


def add_consistency_arguments(parser) -> None:
    parser.add_argument("directory", help="folder of audio recordings of any length")
    parser.add_argument("--model", help="checkpoint or .onnx file (default: the config's, else the embedded model)")
    parser.add_argument("--config", help="TOML config with the detection targets (default: every model class)")
    parser.add_argument(
        "--hop",
        type=float,
        nargs="+",
        default=[10.0, 1.0],
        metavar="S",
        help="stream hops to check, seconds (default: 10 1)",
    )


def run_consistency(args) -> int:
    from tqdm import tqdm

    from htsat_live.evaluation.consistency import compare, format_table
    from htsat_live.model import load_model
    from htsat_live.model.audio import read_clip
    from htsat_live.stream.capture import CaptureError
    from htsat_live.stream.config import load_config, with_overrides

    try:
        config = load_config(args.config)
        for hop in args.hop:
            with_overrides(config, {"windows.hop": hop})  # the stream's limits on the hop
        files = audio_files(args.directory)
        model = load_model(
            args.model or config.model.path or None,
            device=config.model.device,
            backend=config.model.backend,
            precision=config.model.precision,
            calibration=config.model.calibration or None,
        )
        recordings = {path.name: read_clip(path) for path in tqdm(files, desc="reading", unit="file")}
    except (OSError, ValueError, CaptureError) as error:
        print(f"consistency: {error}", file=sys.stderr)
        return 2
    rows = []
    for hop in tqdm(args.hop, desc="hops", unit="hop"):
        rows += compare(model, recordings, config.events, hop)
    print(format_table(rows))
    return 0


# --- evaluate -----------------------------------------------------------------------------------


def _fraction(value: float) -> str:
    return "   n/a" if value is None or math.isnan(value) else f"{value:6.4f}"


def format_table(result) -> str:
    """A plain-text table of an `evaluation.metrics.Evaluation`, figures as fractions (0 to 1), as in --json and
    in what `train` prints."""
    width = max(len("macro"), *(len(label) for label in result.class_f1))
    lines = [f"{'class':<{width}}  event F1  segment F1"]
    for label in sorted(result.class_f1):
        lines.append(
            f"{label:<{width}}    {_fraction(result.class_f1[label])}      "
            f"{_fraction(result.segment_class_f1.get(label, float('nan')))}"
        )
    lines.append(f"{'macro':<{width}}    {_fraction(result.macro_f1)}")
    lines.append(f"{'micro':<{width}}              {_fraction(result.segment_f1)}")
    if result.psds1 is not None:
        lines.append(f"PSDS1 {result.psds1:.4f}   PSDS2 {result.psds2:.4f}")
    return "\n".join(lines)


def add_evaluate_arguments(parser) -> None:
    parser.add_argument("detections", nargs="?", help="detected events (TSV: filename, onset, offset, event_label)")
    parser.add_argument("--ground-truth", help="reference events (TSV, same columns); needed with DETECTIONS")
    parser.add_argument("--metadata", help="clip durations (TSV: filename, duration); needed with DETECTIONS")
    parser.add_argument("--scores", help="folder of per-clip score files (<stem>.tsv) for PSDS1/PSDS2")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (fractions, as the table)")
    add_clip_arguments(parser)


def run_evaluate(args) -> int:
    from htsat_live.evaluation.metrics import evaluate, read_scores
    from htsat_live.model.event_table import merge_overlaps, read_events, read_metadata

    if args.clips:
        return run_clip_evaluation(args)
    if not (args.detections and args.ground_truth and args.metadata):
        print(
            "evaluate: give DETECTIONS with --ground-truth and --metadata (events), or --clips DATA --model M",
            file=sys.stderr,
        )
        return 2
    try:
        ground_truth, merged_truth = merge_overlaps(read_events(args.ground_truth))
        metadata = read_metadata(args.metadata)
        detections, merged_detections = merge_overlaps(read_events(args.detections))
        scores = read_scores(args.scores, list(metadata["filename"])) if args.scores else None
    except (OSError, ValueError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    for merged, table in ((merged_truth, "ground truth"), (merged_detections, "detections")):
        if merged:
            print(
                f"evaluate: merged {merged} overlapping events of one class into their neighbours in the {table} "
                "(as the DCASE tools do)",
                file=sys.stderr,
            )
    try:
        result = evaluate(ground_truth, metadata, detections, scores)
    except ValueError as error:  # tables that read well but do not fit together (e.g. clips missing from the metadata)
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    print(json.dumps(_json_safe(asdict(result)), indent=2, allow_nan=False) if args.json else format_table(result))
    return 0


def _json_safe(value):
    """NaN (a figure with nothing to measure) as null: JSON has no NaN."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
