"""Building the live detector from a command line: what the commands that run it share.

- the SOURCE and the stream's flags that `detect` and `gui` take (`add_detect_arguments`,
  `add_stream_arguments`), and the config they give (`detect_config`: a flag, then --set, then the
  --config file, then the default);
- the model, or one line saying why it cannot be loaded (`load_model_or_explain`: also `tag`,
  `labels`, `serve` and the benchmarks), and the Ray Serve deployment `[model] inference` names
  (`open_served_inference`);
- the outputs the config turns on, in the order they take each message (`build_outputs`), and the
  pipeline of `detect` with its console (`build_pipeline`). It is the one module at the top of stream/
  that imports stream/outputs/ (tests/test_layers.py).

Heavy modules (torch, the model, ZeroMQ, paho, Ray) are imported inside the functions so that
`htsat-live --help` stays fast.
"""

import argparse
import functools
import os
import sys

from htsat_live.model import BACKEND_CHOICES, BACKEND_HELP, DEMO_RECORDING
from htsat_live.stream.config import Config, ConfigError, load_config, parse_assignment, with_overrides
from htsat_live.stream.output import Output, close_outputs
from htsat_live.stream.paths import output_file, output_folder

SOURCE_HELP = (
    "mic, mic:NAME (input device name part or index), ffmpeg:URL, or an audio file (default: the config's "
    "source.input, else the default microphone, else the demo recording when there is no microphone)"
)


def add_detect_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments `detect` shares with `gui`, which takes one SOURCE."""
    parser.add_argument("source", nargs="?", default=None, metavar="SOURCE", help=SOURCE_HELP)
    add_stream_arguments(parser)


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the stream (model, config, hop, engine, feeding, --set) that `detect` and `gui` take."""
    parser.add_argument(
        "--model",
        action="append",
        help="checkpoint, .onnx file or model name (default: the embedded model); repeated: an ensemble",
    )
    parser.add_argument("--config", help="TOML config file (default: configs/default.toml values)")
    add_preset_argument(parser)
    parser.add_argument("--hop", type=float, help="seconds between 10-s windows (0.3125 to 10)")
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        help=BACKEND_HELP,
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help="compute device")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "int8"),
        help="fp32 (default: the official outputs), bf16 (torch or openvino) or int8 (openvino)",
    )
    add_calibration_argument(parser)
    parser.add_argument(
        "--fast",
        action="store_true",
        default=None,
        help="feed files as fast as inference allows instead of in real time",
    )
    parser.add_argument(
        "--loop",
        action="store_true",
        default=None,
        help="start a finite ffmpeg input (a file on a web server) again at its end",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config setting, e.g. --set events.threshold=0.3 (repeatable)",
    )


def add_calibration_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calibration",
        metavar="DIR",
        help="--precision int8: calibrate on the audio files under DIR, the site's own recordings, instead of "
        "the default set (once per model and set of files; cached)",
    )


def add_preset_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        help="targets of a setting, beneath --config: home, office or wildlife (stream/presets/; configs/ "
        "shows them), for an AudioSet model",
    )


# The dedicated flags of `detect` (and `gui`): argument name -> the setting it gives.
# `detect` takes several SOURCEs: one gives source.input, more give source.inputs.
FLAG_SETTINGS = {
    "source": "source.input",
    "model": "model.path",
    "hop": "windows.hop",
    "backend": "model.backend",
    "device": "model.device",
    "precision": "model.precision",
    "calibration": "model.calibration",
    "fast": "source.fast",
    "loop": "source.loop",
    "inference": "model.inference",
    "web": "web.bind",
}


def detect_config(args):
    """The config in force, each setting from the first that gives it: a dedicated flag, then a --set
    assignment, then the --config file, then the --preset, then the default. A model name in `model.path`
    is found in `[model] dir` when that is set."""
    config = load_config(args.config, getattr(args, "preset", None))
    config = with_overrides(config, dict(parse_assignment(text) for text in args.set))
    flags = {setting: getattr(args, name, None) for name, setting in FLAG_SETTINGS.items()}
    if isinstance(args.model, list):  # --model repeated: an ensemble
        flags["model.path"] = args.model[0] if len(args.model) == 1 else args.model
    if isinstance(args.source, list):  # detect's SOURCEs (if any) replace the config's input(s)
        flags["source.input"] = args.source[0] if len(args.source) == 1 else None
        flags["source.inputs"] = (args.source if len(args.source) > 1 else []) if args.source else None
    config = with_overrides(config, flags)  # a flag not given is None and leaves the setting as it is
    return with_model_folder(config)


def with_model_folder(config: Config) -> Config:
    """`model.path` as a file: a model name looked up in `[model] dir` when that is set (else load_model looks
    in the default folder); ConfigError naming model.path when the name is not there."""
    from htsat_live.model import resolve_model

    if not config.model.path or not config.model.dir:
        return config
    paths = config.model.path
    try:
        if isinstance(paths, str):
            return with_overrides(config, {"model.path": str(resolve_model(paths, config.model.dir))})
        return with_overrides(config, {"model.path": [str(resolve_model(p, config.model.dir)) for p in paths]})
    except ValueError as error:
        raise ConfigError(f"model.path: {error}") from None


def event_rule_from_config(config: Config) -> bool:
    """Whether the config (or preset) sets the event rule's thresholds or median filter, rather than the model."""
    return bool(config.events.thresholds or config.events.median_frames)


def demo_config(command: str, config: Config, error: Exception) -> Config | None:
    """With no microphone and no source asked for, the config that plays the embedded demo recording instead
    (said on stderr); None, after saying how to name a source, when a microphone was asked for by name."""
    if config.source.input or not DEMO_RECORDING.is_file():
        print(
            f"htsat-live {command}: {error}. No microphone to listen to: give a SOURCE (an audio file, "
            "ffmpeg:URL, or mic:NAME; `htsat-live devices` lists inputs)",
            file=sys.stderr,
        )
        return None
    print(
        f"htsat-live {command}: no microphone ({error}); playing the demo recording {DEMO_RECORDING}", file=sys.stderr
    )
    return with_overrides(config, {"source.input": str(DEMO_RECORDING)})


def load_model_or_explain(path, device: str, backend: str = "auto", precision: str = "fp32", calibration=None):
    """The model, or None after printing why it cannot be loaded."""
    from htsat_live.model import load_model

    try:
        return load_model(path, device=device, backend=backend, precision=precision, calibration=calibration)
    except (OSError, ValueError) as error:
        where = " + ".join(map(str, path)) if isinstance(path, (list, tuple)) else path or "the embedded default model"
        print(f"htsat-live: cannot load {where}: {error}", file=sys.stderr)
        return None


def open_served_inference(command: str, config, model):
    """The Ray Serve deployment `[model] inference` names, reached from a child process that the detector outlives
    (stream.inference.remote.InferenceProcess), or None after
    printing why it cannot be used: Ray missing, the address unreachable, no deployment there."""
    try:
        from htsat_live.stream.inference.cluster import (
            ClusterError,
            ServeSettings,
            parse_inference,
        )
        from htsat_live.stream.inference.remote import InferenceProcess
    except ImportError as error:
        print(
            f"htsat-live {command}: --inference ray needs Ray Serve: pip install -e '.[cluster]' ({error})",
            file=sys.stderr,
        )
        return None
    from htsat_live.model import load_model

    gpu = config.model.device == "cuda"
    build = functools.partial(
        load_model,
        config.model.path or None,
        device=config.model.device,
        backend=config.model.backend,
        precision=config.model.precision,
        calibration=config.model.calibration or None,
    )
    settings = ServeSettings(num_cpus=1 if gpu else os.cpu_count() or 1, num_gpus=1 if gpu else 0)
    try:
        return InferenceProcess.open(parse_inference(config.model.inference), build, model.labels, settings)
    except ClusterError as error:
        print(f"htsat-live {command}: {error}", file=sys.stderr)
        return None


def check_output_paths(config: Config) -> None:
    """Every file and folder the outputs of `config` will write, checked before the model loads: an
    OutputPathError naming the setting when one cannot be written (creates nothing)."""
    from htsat_live.stream.outputs.event_store import resolve_path

    for name in ("jsonl", "tsv", "audacity"):
        if getattr(config.sinks, name):
            output_file(getattr(config.sinks, name), f"sinks.{name}")
    if config.sinks.clips_dir:
        output_folder(config.sinks.clips_dir, "sinks.clips_dir")
    store = resolve_path(config.store.path)
    if store is not None:
        output_file(store, "store.path")


def check_output_settings(config: Config) -> None:
    """The settings of the outputs of `config` that only their output can judge (MQTT's port, password file and
    topics), checked before the model loads: a ValueError naming the setting."""
    if config.mqtt.url:
        from htsat_live.stream.outputs.mqtt import check_settings

        check_settings(config.mqtt)
    if config.web.bind:
        check_web_settings(config)


def check_web_settings(config: Config) -> None:
    """`[web]`: its extra installed, its address and token; a ValueError naming the setting."""
    from importlib.util import find_spec

    if find_spec("aiohttp") is None:
        raise ValueError(
            "web.bind: the browser view needs the [web] extra (aiohttp not installed): pip install 'htsat-live[web]'"
        )
    from htsat_live.stream.outputs.web import listen_address

    listen_address(config.web.bind, config.web.allow_remote, config.web.token)


def build_outputs(config: Config, set_threshold) -> list[Output]:
    """The outputs `config` turns on, in the order they take each message: the event store, the sinks (after
    the store: they tell it where each event's clip went), the ZeroMQ publisher, MQTT (with `set_threshold`,
    stream.pipeline.ThresholdChanges.set, for the thresholds Home Assistant sets), Prometheus, the browser view. When
    one cannot be built, those built before it are closed."""
    from htsat_live.stream.outputs.event_store import EventStore
    from htsat_live.stream.outputs.mqtt import MqttOutput
    from htsat_live.stream.outputs.prometheus import PrometheusMetrics
    from htsat_live.stream.outputs.publish import Publisher
    from htsat_live.stream.outputs.sinks import Sinks

    outputs: list[Output] = []
    try:
        store = EventStore.from_setting(config.store.path, config.store.keep_days)
        outputs += [store] if store is not None else []
        outputs.append(Sinks.from_config(config.sinks, None if store is None else store.clip_saved))
        outputs += [Publisher.from_config(config.publish)] if config.publish.enabled else []
        mqtt = MqttOutput.from_config(config.mqtt, set_threshold)
        outputs += [mqtt] if mqtt is not None else []
        metrics = PrometheusMetrics.from_config(config.metrics)
        outputs += [metrics] if metrics is not None else []
        if config.web.bind:
            check_web_settings(config)
            from htsat_live.stream.outputs.web import WebView

            outputs.append(WebView.from_config(config))
    except Exception:
        close_outputs(outputs)
        raise
    return outputs


def build_pipeline(config: Config, model, provisional: bool = False, inference=None):
    """The pipeline of `detect`: the config's sources and outputs, then the console (stream.outputs.console,
    confirmed events unless `provisional`); windows run by `inference` (a stream.inference.cluster.ServeInference)
    or, when None, by the model."""
    from htsat_live.stream.outputs.console import EventPrinter
    from htsat_live.stream.pipeline import Pipeline, ThresholdChanges

    thresholds = ThresholdChanges()
    outputs = build_outputs(config, thresholds.set) + [EventPrinter(provisional, len(config.source.inputs) > 1)]
    try:
        return Pipeline(config, model, outputs=outputs, inference=inference, thresholds=thresholds)
    except Exception:
        close_outputs(outputs)
        raise
