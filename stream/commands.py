"""The `detect`, `serve`, `devices` and `labels` subcommands of htsat-live.

Heavy modules (torch, the model, PortAudio, Ray) are imported inside the run functions so that
`htsat-live --help` stays fast, and every command but `serve` and `detect --inference ray` runs without Ray.
"""

import argparse
import functools
import os
import signal
import sys
import threading
import time

from htsat_live.model import DEMO_RECORDING
from htsat_live.stream.capture import CaptureError, NoMicrophone
from htsat_live.stream.config import (
    ConfigError,
    load_config,
    parse_assignment,
    with_overrides,
)

# --- detect -------------------------------------------------------------------------------------


SOURCE_HELP = ("mic, mic:NAME (input device name part or index), ffmpeg:URL, or an audio file (default: the config's "
               "source.input, else the default microphone, else the demo recording when there is no microphone)")


def add_detect_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments `detect` shares with `gui`, which takes one SOURCE."""
    parser.add_argument("source", nargs="?", default=None, metavar="SOURCE", help=SOURCE_HELP)
    _add_stream_arguments(parser)


def _add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint or .onnx file (default: the embedded model)")
    parser.add_argument("--config", help="TOML config file (default: configs/default.toml values)")
    parser.add_argument("--hop", type=float, help="seconds between 10-s windows (0.3125 to 10)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnx", "openvino"),
                        help="inference engine (default auto: ONNX Runtime for an .onnx model, else torch)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="compute device")
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"),
                        help="fp32 (default: the official outputs), bf16 (torch or openvino) or int8 (openvino)")
    parser.add_argument("--fast", action="store_true", default=None,
                        help="feed files as fast as inference allows instead of in real time")
    parser.add_argument("--loop", action="store_true", default=None,
                        help="start a finite ffmpeg input (a file on a web server) again at its end")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config setting, e.g. --set events.threshold=0.3 (repeatable)")


def add_detect_command_arguments(parser: argparse.ArgumentParser) -> None:
    """`detect`'s arguments: those it shares with `gui` (but several SOURCEs), where windows run, and how it
    prints events."""
    parser.add_argument("source", nargs="*", metavar="SOURCE",
                        help=SOURCE_HELP + "; several SOURCEs run as one stream each (the config's source.inputs)")
    _add_stream_arguments(parser)
    parser.add_argument("--inference", metavar="local|ray[:ADDRESS]",
                        help="run windows in this process (local, the default) or on the Ray Serve deployment of "
                             "`htsat-live serve`: ray (this machine's, started here if none runs) or ray:ADDRESS "
                             "(auto, HOST:6379, ray://HOST:10001)")
    parser.add_argument("--provisional", action="store_true",
                        help="print every event report as it comes, provisional starts (and their cancelled ends) "
                             "included, instead of confirmed events only")


# The dedicated flags of `detect` (and `gui`): argument name -> the setting it gives.
# `detect` takes several SOURCEs: one gives source.input, more give source.inputs.
FLAG_SETTINGS = {"source": "source.input", "model": "model.path", "hop": "windows.hop", "backend": "model.backend",
                 "device": "model.device", "precision": "model.precision", "fast": "source.fast", "loop": "source.loop",
                 "inference": "model.inference"}


def detect_config(args):
    """The config in force, each setting from the first that gives it: a dedicated flag, then a --set
    assignment, then the --config file, then the default."""
    config = with_overrides(load_config(args.config), dict(parse_assignment(text) for text in args.set))
    flags = {setting: getattr(args, name, None) for name, setting in FLAG_SETTINGS.items()}
    if isinstance(args.source, list):  # detect's SOURCEs (if any) replace the config's input(s)
        flags["source.input"] = args.source[0] if len(args.source) == 1 else None
        flags["source.inputs"] = (args.source if len(args.source) > 1 else []) if args.source else None
    return with_overrides(config, flags)  # a flag not given is None and leaves the setting as it is


def format_event(stream: str, body: dict, reached: float, show_stream: bool = False) -> str | None:
    """One line for an event `start` or `end` message (None for updates), stamped with `reached`, the stream
    seconds the detector had judged when it made the report (docs/console.md); show_stream puts the stream's
    name first (a detector of several sources)."""
    unit = "" if body["classes"] else " dBFS"  # an event of no model class is a loudness event: levels, not scores
    stamp = f"{stream}: [{reached:9.2f} s]" if show_stream else f"[{reached:9.2f} s]"
    span = f"{body['onset']:.2f}-{body['offset']:.2f} s"
    if body["state"] == "start":
        what = f"score {body['peak']:.2f}" if body["classes"] else f"{body['peak']:.1f} dBFS"
        return f"{stamp} start  #{body['id']:<4} {body['label']}  from {body['onset']:.2f} s ({what})"
    if body["state"] == "end":
        if body["cancelled"]:
            return f"{stamp} end    #{body['id']:<4} {body['label']}  {span} (cancelled: revised scores)"
        return (f"{stamp} end    #{body['id']:<4} {body['label']}  {span}, peak {body['peak']:.2f}{unit}, "
                f"mean {body['mean']:.2f}{unit}")
    return None


class EventPrinter:
    """A listener printing events as they start and end: confirmed ones only (stream.events.ConfirmedView),
    or with `provisional` every report as the detector makes it; `show_stream` names the stream on each line.

    Each line is stamped with the stream time its report was made at (the newest audio judged: the end of the
    last `scores` message, or of a loudness event), so the stamps of a stream never go back, while the
    event times in the lines may: a start is reported when confirmed, an end once the scores after it are final.
    """

    def __init__(self, provisional: bool = False, show_stream: bool = False):
        from htsat_live.stream.events import ConfirmedView

        self.view = None if provisional else ConfirmedView()
        self.show_stream = show_stream
        self.reached: dict[str, float] = {}  # stream -> stream seconds of the newest audio judged

    def __call__(self, topic: str, stream: str, body: dict) -> None:
        if topic == "scores":
            self._reach(stream, body["grid_end"] * body["frame_seconds"])
        if topic != "event":
            return
        self._reach(stream, body["offset"])  # a loudness event may run ahead of the newest scores
        for shown in [body] if self.view is None else self.view.take(stream, body):
            line = format_event(stream, shown, self.reached[stream], self.show_stream)
            if line is not None:
                print(line, flush=True)

    def _reach(self, stream: str, seconds: float) -> None:
        self.reached[stream] = max(self.reached.get(stream, 0.0), seconds)


def print_reports(reports, sinks=None, shutdown_seconds: float | None = None) -> None:
    """The counters and latencies of each stream, what the sinks failed to write, and how long stopping took."""
    for name, report in reports.items():
        counters = " ".join(f"{key}={value}" for key, value in report.counters().items())
        latency = report.latency()
        print(f"{name}: {counters}", flush=True)
        print(f"{name}: hop latency p50={latency['hop_p50']} s p95={latency['hop_p95']} s, "
              f"event latency p50={latency['event_p50']} s p95={latency['event_p95']} s, "
              f"confirmed p50={latency['confirmed_p50']} s p95={latency['confirmed_p95']} s", flush=True)
    if sinks is not None and sinks.counters():
        print("sinks: " + " ".join(f"{key}={value}" for key, value in sinks.counters().items()), flush=True)
    if shutdown_seconds is not None:
        print(f"shutdown took {shutdown_seconds:.2f} s", flush=True)


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM ask a command to stop, from start-up to the last flush.

    The first one sets `requested`; later ones (a second Ctrl-C, `timeout -s INT` after SIGTERM) only say
    that shutdown is under way. None raises, so the threads are joined and every sink is flushed and
    closed whenever a signal comes. Outside the main thread (where Python allows no handlers) it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = threading.Event()
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        if self.requested.is_set():
            # The process is ending because of a signal: a late one must not kill it on its last steps.
            # SIG_IGN, unlike a Python handler, stays in force while the interpreter shuts down.
            for number in self._previous:
                signal.signal(number, signal.SIG_IGN)
            return
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number, frame) -> None:
        if self.requested.is_set():
            print("htsat-live: already stopping: finishing the windows captured and flushing the outputs",
                  file=sys.stderr, flush=True)
        self.requested.set()


def run_detect(args) -> int:
    with StopSignals() as stop:
        try:
            config = detect_config(args)
        except ConfigError as error:
            print(f"htsat-live detect: {error}", file=sys.stderr)
            return 2
        model = load_model_or_explain(config.model.path or None, config.model.device, config.model.backend,
                                      config.model.precision)
        if model is None:
            return 2
        served = None
        if config.model.inference != "local":
            served = open_served_inference("detect", config, model)
            if served is None:
                return 2
        try:
            return _detect(args, config, model, stop, None if served is None else served.client)
        finally:
            if served is not None:
                served.close()


def _detect(args, config, model, stop: StopSignals, inference) -> int:
    """Run detect's pipeline (windows run by `inference`, or by the model when None) until its sources end or a
    signal comes."""
    try:
        try:
            pipeline = build_pipeline(config, model, args.provisional, inference)
        except NoMicrophone as error:
            if config.source.input or not DEMO_RECORDING.is_file():  # a microphone was asked for by name
                print(f"htsat-live detect: {error}. No microphone to listen to: give a SOURCE (an audio file, "
                      "ffmpeg:URL, or mic:NAME; `htsat-live devices` lists inputs)", file=sys.stderr)
                return 2
            print(f"htsat-live detect: no microphone ({error}); playing the demo recording {DEMO_RECORDING}",
                  file=sys.stderr)
            config = with_overrides(config, {"source.input": str(DEMO_RECORDING)})
            pipeline = build_pipeline(config, model, args.provisional, inference)
    except (CaptureError, ValueError, OSError) as error:
        print(f"htsat-live detect: {error}", file=sys.stderr)
        return 2
    if stop.requested.is_set():  # stopped during start-up: nothing ran
        pipeline.stop()
        print("htsat-live detect: stopped before the stream started", file=sys.stderr)
        return 130
    pipeline.start()
    where = (f"{model.backend.name} on {config.model.device}" if inference is None
             else f"inference on Ray at {inference.address}")
    print(f"listening to {', '.join(r.spec for r in pipeline.runners)} (hop {config.windows.hop} s, "
          f"{where}); Ctrl-C ends", file=sys.stderr, flush=True)
    while not stop.requested.is_set() and not pipeline.wait(timeout=0.2):
        pass
    started = time.monotonic()
    reports = pipeline.stop()
    print_reports(reports, pipeline.sinks, time.monotonic() - started)
    if inference is not None:
        print("inference: " + " ".join(f"{key}={value}" for key, value in inference.counters().items()), flush=True)
    return 0


def open_served_inference(command: str, config, model):
    """The Ray Serve deployment `[model] inference` names (stream.inference.cluster.ServedInference), or None after
    printing why it cannot be used: Ray missing, the address unreachable, no deployment there."""
    try:
        from htsat_live.stream.inference.cluster import (
            ClusterError,
            ServedInference,
            ServeSettings,
            parse_inference,
        )
    except ImportError as error:
        print(f"htsat-live {command}: --inference ray needs Ray Serve: pip install -e '.[cluster]' ({error})",
              file=sys.stderr)
        return None
    from htsat_live.model import load_model

    gpu = config.model.device == "cuda"
    build = functools.partial(load_model, config.model.path or None, device=config.model.device,
                              backend=config.model.backend, precision=config.model.precision)
    settings = ServeSettings(num_cpus=1 if gpu else os.cpu_count() or 1, num_gpus=1 if gpu else 0)
    try:
        return ServedInference.open(parse_inference(config.model.inference), build, model.labels, settings)
    except ClusterError as error:
        print(f"htsat-live {command}: {error}", file=sys.stderr)
        return None


def build_pipeline(config, model, provisional: bool = False, inference=None):
    """The pipeline of `detect`: the config's sources, publisher and sinks, and event printing; windows run by
    `inference` (a stream.inference.cluster.ServeInference) or, when None, by the model."""
    from htsat_live.stream.outputs.event_store import EventStore
    from htsat_live.stream.outputs.prometheus import PrometheusMetrics
    from htsat_live.stream.outputs.mqtt import MqttOutput
    from htsat_live.stream.pipeline import Pipeline
    from htsat_live.stream.outputs.publish import Publisher
    from htsat_live.stream.outputs.sinks import Sinks

    publisher = Publisher.from_config(config.publish) if config.publish.enabled else None
    sinks = history = mqtt = metrics = None
    try:
        history = EventStore.from_setting(config.store.path, config.store.keep_days)
        sinks = Sinks.from_config(config.sinks, history)
        mqtt = MqttOutput.from_config(config.mqtt)
        metrics = PrometheusMetrics.from_config(config.metrics)
        printer = EventPrinter(provisional, show_stream=len(config.source.inputs) > 1)
        return Pipeline(config, model, publisher=publisher, sinks=sinks, listeners=[printer], mqtt=mqtt, metrics=metrics,
                        inference=inference)
    except Exception:
        for output in (publisher, sinks if sinks is not None else history, mqtt, metrics):  # sinks close their history
            if output is not None:
                output.close()
        raise


def load_model_or_explain(path, device: str, backend: str = "auto", precision: str = "fp32"):
    """The model, or None after printing why it cannot be loaded."""
    from htsat_live.model import load_model

    try:
        return load_model(path, device=device, backend=backend, precision=precision)
    except (OSError, ValueError) as error:
        where = path or "the embedded default model"
        print(f"htsat-live: cannot load {where}: {error}", file=sys.stderr)
        return None


# --- serve --------------------------------------------------------------------------------------


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint or .onnx file (default: the embedded model)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnx", "openvino"), default="auto",
                        help="inference engine of each replica (default auto: ONNX Runtime for an .onnx model, else torch)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                        help="fp32 (the official outputs), bf16 (torch or openvino) or int8 (openvino)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where replicas run (auto: one GPU each when the cluster has GPUs, else CPUs)")
    parser.add_argument("--replicas", type=int, default=1, help="replicas, each holding one model (default 1)")
    parser.add_argument("--max-replicas", type=int, default=None,
                        help="let Serve's autoscaler run between --replicas and this many replicas, aiming at one batch "
                             "of windows in flight per replica (default: a fixed --replicas)")
    parser.add_argument("--cpus-per-replica", type=float, default=1.0,
                        help="CPUs Ray reserves for each CPU replica; its torch threads follow (default 1)")
    parser.add_argument("--max-batch", type=int, default=8, help="most windows per predict call on a replica")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0,
                        help="how long a replica waits for a batch to fill, milliseconds (default 5)")
    parser.add_argument("--address", default=None, metavar="auto|HOST:PORT|ray://HOST:PORT",
                        help="the Ray cluster to deploy on (default: the one running on this machine, else a new "
                             "local instance that lives as long as this command)")


def run_serve(args) -> int:
    """Deploy the model as the Ray Serve application `htsat-live`, say where, and serve until Ctrl-C."""
    if (args.replicas < 1 or args.max_batch < 1 or args.cpus_per_replica <= 0 or args.batch_wait_ms < 0
            or (args.max_replicas is not None and args.max_replicas < args.replicas)):
        print("htsat-live serve: --replicas and --max-batch must be at least 1, --max-replicas at least --replicas, "
              "--cpus-per-replica above 0 and --batch-wait-ms at least 0", file=sys.stderr)
        return 2
    try:
        from htsat_live.stream.inference import cluster
    except ImportError as error:
        print(f"htsat-live serve: needs Ray Serve: pip install -e '.[cluster]' ({error})", file=sys.stderr)
        return 2
    from htsat_live.model import load_model

    with StopSignals() as stop:
        device = "cpu" if args.device == "auto" else args.device
        model = load_model_or_explain(args.model, "cpu", args.backend, args.precision)  # refused here, not in replicas
        if model is None:
            return 2
        try:
            started = cluster.start_ray(args.address)
        except cluster.ClusterError as error:
            print(f"htsat-live serve: {error}", file=sys.stderr)
            return 2
        try:
            resources = cluster.cluster_resources()
            if args.device == "auto" and resources.get("GPU", 0) >= 1:
                device = "cuda"
            gpu = device == "cuda"
            settings = cluster.ServeSettings(args.replicas, args.max_batch, args.batch_wait_ms / 1000,
                                             1.0 if gpu else args.cpus_per_replica, 1.0 if gpu else 0.0,
                                             args.max_replicas)
            needed, kind = ((settings.replicas * settings.num_gpus, "GPU") if gpu
                            else (settings.replicas * settings.num_cpus, "CPU"))
            if resources.get(kind, 0) < needed:
                print(f"htsat-live serve: {settings.replicas} replica(s) need {needed:g} {kind}s; the Ray cluster has "
                      f"{resources.get(kind, 0):g}", file=sys.stderr)
                return 2
            build = functools.partial(load_model, args.model, device=device, backend=args.backend,
                                      precision=args.precision)
            cluster.deploy(build, settings)
            where = cluster.gcs_address()
            replicas = (f"{settings.replicas}" if settings.max_replicas in (None, settings.replicas)
                        else f"{settings.replicas} to {settings.max_replicas} (autoscaled)")
            print(f"serving {model.source} ({model.num_classes} classes, {model.backend.name} {args.precision} on "
                  f"{device}) as the Ray Serve application '{cluster.APP}': {replicas} replica(s) of "
                  f"{'1 GPU' if gpu else f'{settings.num_cpus:g} CPU(s)'}, batches of up to {settings.max_batch} "
                  f"windows, {args.batch_wait_ms:g} ms wait; Ray at {where}", flush=True)
            print(f"send windows here: htsat-live detect SOURCE --inference ray:{args.address or 'auto'}; Ctrl-C ends",
                  flush=True)
            while not stop.requested.wait(0.5):
                pass
            print("htsat-live serve: stopping the deployment", file=sys.stderr, flush=True)
            cluster.undeploy()
        finally:
            if started:
                cluster.stop_ray()
    return 0


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
        print("no audio input devices found; `htsat-live detect` without a SOURCE plays the embedded demo recording")
        return 0
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
    model = load_model_or_explain(args.model, "cpu", "auto")
    if model is None:
        return 2
    for index, label in enumerate(model.labels):
        threshold = "" if model.thresholds is None else f"\t{float(model.thresholds[index]):.3f}"
        print(f"{index}\t{label}{threshold}")
    return 0
