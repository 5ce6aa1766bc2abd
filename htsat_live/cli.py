"""The `htsat-live` command: one table of subcommands, each implemented where its concept lives.

Every entry names the functions that add the subcommand's arguments and run it, as
"module:function" strings; only the chosen subcommand's module is imported, so `htsat-live --help`
starts at once and one subcommand's dependencies never break another.

A command reports bad input itself, as one line with exit code 2 (or 1 for a failure after start).
Anything else that escapes it is one line and exit code 1 here, and so is a log record's traceback;
`--debug` (anywhere on the command line) or HTSAT_LIVE_DEBUG=1 shows the tracebacks, for bug reports.
Ctrl-C before a command takes it over exits with 130.
"""

import argparse
import importlib
import logging
import os
import sys
import traceback
from dataclasses import dataclass

from htsat_live.extras import missing_extra


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: str  # "module:function(parser)"
    run: str  # "module:function(args) -> exit code"
    extra: str | None = None  # the optional extra it needs (htsat_live.extras), None for the core


SUBCOMMANDS = [
    Subcommand(
        "detect",
        "Detect sound events live from a microphone, a file or an ffmpeg stream; print and publish them.",
        "htsat_live.stream.commands:add_detect_command_arguments",
        "htsat_live.stream.commands:run_detect",
    ),
    Subcommand(
        "serve",
        "Serve the model to detect --inference ray: a Ray Serve deployment of batching replicas.",
        "htsat_live.stream.commands:add_serve_arguments",
        "htsat_live.stream.commands:run_serve",
        "cluster",
    ),
    Subcommand(
        "devices",
        "List the audio input devices (for detect mic:NAME).",
        "htsat_live.stream.commands:add_devices_arguments",
        "htsat_live.stream.commands:run_devices",
    ),
    Subcommand(
        "labels",
        "List the model's class labels (and default thresholds).",
        "htsat_live.stream.commands:add_labels_arguments",
        "htsat_live.stream.commands:run_labels",
    ),
    Subcommand(
        "gui",
        "Live visualiser: spectrogram, class heatmap, event lanes (local pipeline, or --connect to a publisher).",
        "htsat_live.gui.app:add_arguments",
        "htsat_live.gui.app:run",
        "gui",
    ),
    Subcommand(
        "listen",
        "Subscribe to a running detector and print its messages.",
        "htsat_live.stream.outputs.publish_commands:add_listen_arguments",
        "htsat_live.stream.outputs.publish_commands:run_listen",
    ),
    Subcommand(
        "web",
        "Serve the browser view (live timeline, events, history, clips) of a detector that already runs.",
        "htsat_live.stream.outputs.web_command:add_web_arguments",
        "htsat_live.stream.outputs.web_command:run_web",
        "web",
    ),
    Subcommand(
        "keys",
        "Write a CURVE key pair (PREFIX.key, PREFIX.key_secret) for an encrypted publisher.",
        "htsat_live.stream.outputs.publish_commands:add_keys_arguments",
        "htsat_live.stream.outputs.publish_commands:run_keys",
    ),
    Subcommand(
        "events",
        "Query the event history that detect keeps (--since, --label, --stream, --run; table, json or tsv).",
        "htsat_live.stream.outputs.event_store:add_events_arguments",
        "htsat_live.stream.outputs.event_store:run_events",
    ),
    Subcommand(
        "tag",
        "Tag audio files of any length: top labels and strongest events.",
        "htsat_live.stream.tag:add_arguments",
        "htsat_live.stream.tag:run",
    ),
    Subcommand(
        "convert",
        "Convert a checkpoint (official Lightning, state dict) to our .safetensors format.",
        "htsat_live.model.commands:add_convert_arguments",
        "htsat_live.model.commands:run_convert",
    ),
    Subcommand(
        "models",
        "List the official checkpoints and the installed models; `models add FILE` installs one under a name.",
        "htsat_live.model.commands:add_models_arguments",
        "htsat_live.model.commands:run_models",
    ),
    Subcommand(
        "export-onnx",
        "Export a checkpoint to ONNX (fp32, or --int8) and print its drift from torch.",
        "htsat_live.model.commands:add_export_arguments",
        "htsat_live.model.commands:run_export",
    ),
    Subcommand(
        "bench",
        "Inference speed of every backend vs the official eager model (--stream: the live pipeline).",
        "htsat_live.evaluation.model_bench:add_arguments",
        "htsat_live.evaluation.model_bench:run",
    ),
    Subcommand(
        "evaluate",
        "Event-based F1 (Table 3 protocol), segment-based F1 and PSDS of detected events.",
        "htsat_live.evaluation.commands:add_evaluate_arguments",
        "htsat_live.evaluation.commands:run_evaluate",
        "eval",
    ),
    Subcommand(
        "detect-dir",
        "Detect events in every clip of a folder (official offline pass or the live pipeline).",
        "htsat_live.evaluation.commands:add_detect_dir_arguments",
        "htsat_live.evaluation.commands:run_detect_dir",
        "eval",
    ),
    Subcommand(
        "consistency",
        "Streaming vs offline on the same files: timeline difference and event F1 per hop.",
        "htsat_live.evaluation.commands:add_consistency_arguments",
        "htsat_live.evaluation.commands:run_consistency",
        "eval",
    ),
    Subcommand(
        "train",
        "Train or fine-tune HTS-AT on strong-labelled soundscapes; keeps the best epoch.",
        "htsat_live.training.commands:add_train_arguments",
        "htsat_live.training.commands:run_train",
        "train",
    ),
]


def _resolve(target: str):
    module_name, function_name = target.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only the selected subcommand's module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="htsat-live",
        description="Streaming sound event detection with HTS-AT.",
        epilog="--debug anywhere (or HTSAT_LIVE_DEBUG=1) prints tracebacks for bug reports.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for subcommand in SUBCOMMANDS:
        sub = subparsers.add_parser(subcommand.name, help=subcommand.help, description=subcommand.help)
        if subcommand.name == selected:
            _resolve(subcommand.add_arguments)(sub)
        sub.set_defaults(run=subcommand.run)
    return parser


class _OneLineLogs(logging.Formatter):
    """Log records as `htsat-live: message`, their tracebacks only when debugging."""

    def __init__(self, debug: bool):
        super().__init__("htsat-live: %(message)s")
        self.debug = debug

    def formatException(self, exc_info) -> str:
        return super().formatException(exc_info) if self.debug else ""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if self.debug else text.split("\n", 1)[0]


class _StderrHandler(logging.StreamHandler):
    """Writes each record to what `sys.stderr` is when the record comes, not to the stream it was at start."""

    def __init__(self):
        logging.Handler.__init__(self)  # StreamHandler's own would fix the stream

    @property
    def stream(self):
        return sys.stderr


def _log_to_stderr(debug: bool) -> None:
    """Our modules' warnings and errors go to stderr as one line each (one handler, however often main runs)."""
    logger = logging.getLogger("htsat_live")
    for handler in [h for h in logger.handlers if isinstance(h.formatter, _OneLineLogs)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_OneLineLogs(debug))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or os.environ.get("HTSAT_LIVE_DEBUG") == "1"
    argv = [arg for arg in argv if arg != "--debug"]
    _log_to_stderr(debug)
    names = {subcommand.name for subcommand in SUBCOMMANDS}
    selected = next((arg for arg in argv if arg in names), None)
    extra = next((subcommand.extra for subcommand in SUBCOMMANDS if subcommand.name == selected), None)
    missing = missing_extra(extra) if extra else None
    if missing:
        print(f"htsat-live {selected}: {missing}", file=sys.stderr)
        return 2
    try:
        args = build_parser(selected).parse_args(argv)
        return int(_resolve(args.run)(args) or 0)
    except KeyboardInterrupt:
        print("htsat-live: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, or a fault no command foresaw: one line, the traceback on request
        if debug:
            traceback.print_exc()
        else:
            print(
                f"htsat-live {selected or ''}: {type(error).__name__}: {error} (--debug shows the traceback)",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
