"""The `detect-dir` and `consistency` subcommands: batch detection over a folder of clips, and the
streaming pipeline checked against the official offline pass on the same files.

torch and the stream modules are imported inside the run functions so `htsat-live --help` stays fast.
"""

import sys
from pathlib import Path

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


def write_events(path: str | Path, rows: list[tuple[str, float, float, str]]) -> None:
    """A DESED-style event table: filename, onset, offset, event_label (seconds, exact)."""
    with open(path, "w") as out:
        out.write("filename\tonset\toffset\tevent_label\n")
        for filename, onset, offset, label in rows:
            out.write(f"{filename}\t{onset!r}\t{offset!r}\t{label}\n")


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
    from stream.capture import CaptureError
    from stream.config import with_overrides
    from stream.pipeline import Pipeline

    events = []

    def collect(topic: str, stream: str, body: dict) -> None:
        if topic == "event" and body["state"] == "end" and not body["cancelled"]:
            events.append((body["onset"], body["offset"], body["label"]))

    pipeline = Pipeline(with_overrides(config, {"source.fast": True}), model, inputs=[str(path)], listeners=[collect])
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
    parser.add_argument("--model", help="checkpoint or .onnx file (default: the config's, else the embedded model)")
    parser.add_argument("--config", help="TOML config with the detection targets, e.g. configs/desed.toml")
    parser.add_argument("--out", required=True, help="event table to write (TSV: filename, onset, offset, event_label)")
    parser.add_argument("--mode", choices=("offline", "stream"), default="offline",
                        help="offline: one official pass per clip (pad/cut to 10 s; the config's median filter, else the "
                             "model's); stream: the live pipeline fed each file as fast as possible, at the config's hop "
                             "(the events a live user gets)")
    parser.add_argument("--scores", help="offline mode: also write each clip's target scores to this folder "
                                         "(<stem>.tsv, for `evaluate --scores`)")


def run_detect_dir(args) -> int:
    from tqdm import tqdm

    from model import load_model
    from model.htsat import FRAME_SECONDS
    from model.offline import detect_clip, read_clip
    from stream.capture import CaptureError
    from stream.config import load_config
    from stream.events import build_targets, median_frames_in_force

    if args.scores and args.mode != "offline":
        print("detect-dir: --scores is written by --mode offline only", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        files = audio_files(args.directory)
        model = load_model(args.model or config.model.path or None, device=config.model.device, backend=config.model.backend,
                           precision=config.model.precision)
        targets = build_targets(config.events, model.labels, model.thresholds)
        median_frames = median_frames_in_force(config.events, model.median_frames)
    except (OSError, ValueError) as error:
        print(f"detect-dir: {error}", file=sys.stderr)
        return 2
    if args.scores:
        Path(args.scores).mkdir(parents=True, exist_ok=True)
    rows, failed = [], 0
    for path in tqdm(files, desc=f"detect-dir ({args.mode})", unit="clip"):
        try:
            if args.mode == "offline":
                events, scores = detect_clip(model, read_clip(path), targets, median_frames)
                if args.scores:
                    write_scores(Path(args.scores) / f"{path.stem}.tsv", scores, [target.name for target in targets], FRAME_SECONDS)
            else:
                events = pipeline_events(path, model, config)
        except (CaptureError, ValueError) as error:
            failed += 1
            tqdm.write(f"detect-dir: skipped {path.name}: {error}", file=sys.stderr)
            continue
        rows.extend((path.name, onset, offset, label) for onset, offset, label in events)
    write_events(args.out, rows)
    print(f"{len(rows)} events from {len(files) - failed} clips -> {args.out}"
          + (f" ({failed} clips skipped)" if failed else ""))
    return 1 if failed else 0


def add_consistency_arguments(parser) -> None:
    parser.add_argument("directory", help="folder of audio recordings of any length")
    parser.add_argument("--model", help="checkpoint or .onnx file (default: the config's, else the embedded model)")
    parser.add_argument("--config", help="TOML config with the detection targets (default: every model class)")
    parser.add_argument("--hop", type=float, nargs="+", default=[10.0, 1.0], metavar="S",
                        help="stream hops to check, seconds (default: 10 1)")


def run_consistency(args) -> int:
    from tqdm import tqdm

    from model import load_model
    from model.consistency import compare, format_table
    from model.offline import read_clip
    from stream.capture import CaptureError
    from stream.config import load_config, with_overrides

    try:
        config = load_config(args.config)
        for hop in args.hop:
            with_overrides(config, {"windows.hop": hop})  # the stream's limits on the hop
        files = audio_files(args.directory)
        model = load_model(args.model or config.model.path or None, device=config.model.device, backend=config.model.backend,
                           precision=config.model.precision)
        recordings = {path.name: read_clip(path) for path in tqdm(files, desc="reading", unit="file")}
    except (OSError, ValueError, CaptureError) as error:
        print(f"consistency: {error}", file=sys.stderr)
        return 2
    rows = []
    for hop in tqdm(args.hop, desc="hops", unit="hop"):
        rows += compare(model, recordings, config.events, hop)
    print(format_table(rows))
    return 0
