"""The `detect`, `devices` and `labels` subcommands of htsat-live.

Heavy modules (torch, the model, PortAudio) are imported inside the run functions so that
`htsat-live --help` stays fast.
"""

import argparse
import signal
import sys
import threading

from htsat_live.model import DEMO_RECORDING
from htsat_live.stream.capture import CaptureError, NoMicrophone
from htsat_live.stream.config import (
    ConfigError,
    load_config,
    parse_assignment,
    with_overrides,
)

# --- detect -------------------------------------------------------------------------------------


def add_detect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="?", default=None, metavar="SOURCE",
                        help="mic, mic:NAME (input device name part or index), ffmpeg:URL, or an audio file "
                             "(default: the config's source.input, else the default microphone, else the "
                             "demo recording when there is no microphone)")
    parser.add_argument("--model", help="checkpoint or .onnx file (default: the embedded model)")
    parser.add_argument("--config", help="TOML config file (default: configs/default.toml values)")
    parser.add_argument("--hop", type=float, help="seconds between 10-s windows (0.3125 to 10)")
    parser.add_argument("--backend", choices=("torch", "onnx"), help="inference engine")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="compute device")
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="torch backend precision")
    parser.add_argument("--fast", action="store_true", default=None,
                        help="feed files as fast as inference allows instead of in real time")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config setting, e.g. --set events.threshold=0.3 (repeatable)")


def detect_config(args):
    """The config in force: the file, then --set assignments, then the dedicated flags."""
    config = load_config(args.config)
    overrides = dict(parse_assignment(text) for text in args.set)
    overrides.update({"source.input": args.source, "model.path": args.model, "windows.hop": args.hop,
                      "model.backend": args.backend, "model.device": args.device, "model.precision": args.precision,
                      "source.fast": args.fast})
    return with_overrides(config, overrides)


def format_event(stream: str, body: dict) -> str | None:
    """One line for an event `start` or `end` message (None for updates)."""
    if body["state"] == "start":
        return f"[{body['onset']:9.2f} s] start  #{body['id']:<4} {body['label']}  (score {body['peak']:.2f})"
    if body["state"] == "end":
        if body["cancelled"]:
            return f"[{body['offset']:9.2f} s] end    #{body['id']:<4} {body['label']}  (cancelled: revised scores)"
        return (f"[{body['offset']:9.2f} s] end    #{body['id']:<4} {body['label']}  "
                f"{body['onset']:.2f}-{body['offset']:.2f} s, peak {body['peak']:.2f}, mean {body['mean']:.2f}")
    return None


def print_events(topic: str, stream: str, body: dict) -> None:
    if topic == "event":
        line = format_event(stream, body)
        if line is not None:
            print(line, flush=True)


def print_reports(reports) -> None:
    for name, report in reports.items():
        counters = " ".join(f"{key}={value}" for key, value in report.counters().items())
        latency = report.latency()
        print(f"{name}: {counters}", flush=True)
        print(f"{name}: hop latency p50={latency['hop_p50']} s p95={latency['hop_p95']} s, "
              f"event latency p50={latency['event_p50']} s p95={latency['event_p95']} s", flush=True)


def run_detect(args) -> int:
    try:
        config = detect_config(args)
    except ConfigError as error:
        print(f"htsat-live detect: {error}", file=sys.stderr)
        return 2
    model = load_model_or_explain(config.model.path or None, config.model.device, config.model.backend, config.model.precision)
    if model is None:
        return 2
    try:
        try:
            pipeline = build_pipeline(config, model)
        except NoMicrophone as error:
            if config.source.input or not DEMO_RECORDING.is_file():  # a microphone was asked for by name
                print(f"htsat-live detect: {error}. No microphone to listen to: give a SOURCE (an audio file, "
                      "ffmpeg:URL, or mic:NAME; `htsat-live devices` lists inputs)", file=sys.stderr)
                return 2
            print(f"htsat-live detect: no microphone ({error}); playing the demo recording {DEMO_RECORDING}",
                  file=sys.stderr)
            config = with_overrides(config, {"source.input": str(DEMO_RECORDING)})
            pipeline = build_pipeline(config, model)
    except (CaptureError, ValueError, OSError) as error:
        print(f"htsat-live detect: {error}", file=sys.stderr)
        return 2

    interrupted = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: interrupted.set())
    pipeline.start()
    print(f"listening to {', '.join(r.spec for r in pipeline.runners)} (hop {config.windows.hop} s, "
          f"{config.model.backend} on {config.model.device}); Ctrl-C ends", file=sys.stderr, flush=True)
    try:
        while not interrupted.is_set() and not pipeline.wait(timeout=0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_reports(pipeline.stop())
    return 0


def build_pipeline(config, model):
    """The pipeline of `detect`: the config's source, publisher and sinks, and event printing."""
    from htsat_live.stream.pipeline import Pipeline
    from htsat_live.stream.publish import Publisher
    from htsat_live.stream.sinks import Sinks

    publisher = Publisher.from_config(config.publish) if config.publish.enabled else None
    sinks = None
    try:
        sinks = Sinks.from_config(config.sinks)
        return Pipeline(config, model, publisher=publisher, sinks=sinks, listeners=[print_events])
    except Exception:
        for output in (publisher, sinks):
            if output is not None:
                output.close()
        raise


def load_model_or_explain(path, device: str, backend: str, precision: str = "fp32"):
    """The model, or None after printing why it cannot be loaded."""
    from htsat_live.model import load_model

    try:
        return load_model(path, device=device, backend=backend, precision=precision)
    except (OSError, ValueError) as error:
        where = path or "the embedded default model"
        print(f"htsat-live: cannot load {where}: {error}", file=sys.stderr)
        return None


# --- devices ------------------------------------------------------------------------------------


def add_devices_arguments(parser: argparse.ArgumentParser) -> None:
    """`devices` takes no options."""


def run_devices(args) -> int:
    from htsat_live.stream.capture import input_devices

    try:
        devices = input_devices()
    except NoMicrophone as error:
        print(f"htsat-live devices: {error}", file=sys.stderr)
        return 1
    if not devices:
        print("no audio input devices found", file=sys.stderr)
        return 1
    import sounddevice

    default = sounddevice.default.device[0]
    for device in devices:
        mark = "*" if device["index"] == default else " "
        print(f"{mark} {device['index']:3d}  {device['name']}  ({device['max_input_channels']} ch, "
              f"{device['default_samplerate']:.0f} Hz)")
    print("use as SOURCE: mic:INDEX or mic:NAME-PART; * = the default input")
    return 0


# --- labels -------------------------------------------------------------------------------------


def add_labels_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint or .onnx file (default: the embedded model)")


def run_labels(args) -> int:
    model = load_model_or_explain(args.model, "cpu", "onnx" if str(args.model).endswith(".onnx") else "torch")
    if model is None:
        return 2
    for index, label in enumerate(model.labels):
        threshold = "" if model.thresholds is None else f"\t{float(model.thresholds[index]):.3f}"
        print(f"{index}\t{label}{threshold}")
    return 0
