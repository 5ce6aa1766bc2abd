"""The `htsat-live` command: one table of subcommands, each implemented where its concept lives.

Every entry names the functions that add the subcommand's arguments and run it, as
"module:function" strings, so that `htsat-live --help` starts without importing torch or Qt.
"""

import argparse
import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: str  # "module:function(parser)"
    run: str  # "module:function(args) -> exit code"


SUBCOMMANDS = [
    Subcommand("evaluate", "Event-based F1 (Table 3 protocol), segment-based F1 and PSDS of detected events.", "model.evaluate:add_evaluate_arguments", "model.evaluate:run_evaluate"),
    Subcommand("detect-dir", "Detect events in every clip of a folder (official offline pass or the live pipeline).", "model.eval_commands:add_detect_dir_arguments", "model.eval_commands:run_detect_dir"),
]


def _resolve(target: str):
    module_name, function_name = target.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="htsat-live", description="Streaming sound event detection with HTS-AT.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for subcommand in SUBCOMMANDS:
        sub = subparsers.add_parser(subcommand.name, help=subcommand.help, description=subcommand.help)
        _resolve(subcommand.add_arguments)(sub)
        sub.set_defaults(run=subcommand.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(_resolve(args.run)(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
