"""The `detect`, `serve`, `devices` and `labels` subcommands of htsat-live.

They put the detector together with stream.building. Heavy modules (torch, the model, PortAudio, Ray)
are imported inside the run functions so that `htsat-live --help` stays fast, and every command but
`serve` and `detect --inference ray` runs without Ray.
"""

import argparse
import functools
import signal
import sys
import threading
import time

from htsat_live.model import BACKEND_CHOICES, BACKEND_HELP, backend_line
from htsat_live.stream.building import (
    SOURCE_HELP,
    add_calibration_argument,
    add_stream_arguments,
    build_pipeline,
    check_output_paths,
    check_output_settings,
    demo_config,
    detect_config,
    event_rule_from_config,
    load_model_or_explain,
    open_served_inference,
)
from htsat_live.stream.capture import CaptureError, NoMicrophone
from htsat_live.stream.config import ConfigError
from htsat_live.stream.paths import OutputPathError
from htsat_live.stream.status import output_sections

# --- detect -------------------------------------------------------------------------------------


def add_detect_command_arguments(parser: argparse.ArgumentParser) -> None:
    """`detect`'s arguments: those it shares with `gui` (but several SOURCEs), where windows run, and how it
    prints events."""
    parser.add_argument(
        "source",
        nargs="*",
        metavar="SOURCE",
        help=SOURCE_HELP + "; several SOURCEs run as one stream each (the config's source.inputs)",
    )
    add_stream_arguments(parser)
    parser.add_argument(
        "--inference",
        metavar="local|ray[:ADDRESS]",
        help="run windows in this process (local, the default) or on the Ray Serve deployment of "
        "`htsat-live serve`: ray (this machine's, started here if none runs) or ray:ADDRESS "
        "(auto, HOST:6379, ray://HOST:10001)",
    )
    parser.add_argument(
        "--web",
        metavar="HOST:PORT",
        help="serve the browser view there, e.g. 127.0.0.1:8080 (the config's web.bind; needs the [web] extra)",
    )
    parser.add_argument(
        "--provisional",
        action="store_true",
        help="print every event report as it comes, provisional starts (and their cancelled ends) "
        "included, instead of confirmed events only",
    )


def latency_line(latency: dict) -> str:
    """ "hop latency p50=0.1 s p95=0.2 s, event latency ..., confirmed ...", saying "none measured" (never None)
    for a kind that never happened: no window run, no event started or confirmed."""
    parts = []
    for key, what, none in (
        ("hop", "hop latency", "no window run"),
        ("event", "event latency", "no event started"),
        ("confirmed", "confirmed", "no event confirmed"),
    ):
        p50, p95 = latency[f"{key}_p50"], latency[f"{key}_p95"]
        parts.append(f"{what} none measured ({none})" if p50 is None else f"{what} p50={p50} s p95={p95} s")
    return ", ".join(parts)


def print_reports(reports, sinks: dict, shutdown_seconds: float | None = None, mqtt: dict | None = None) -> None:
    """The counters and latencies of each stream, what the sinks wrote and failed to write (the `sinks` of
    `status`), what MQTT sent, queued, dropped and could not send (the `mqtt` of `status`), and how long
    stopping took."""
    for name, report in reports.items():
        counters = " ".join(f"{key}={value}" for key, value in report.counters().items())
        latency = report.latency()
        print(f"{name}: {counters}", flush=True)
        print(f"{name}: {latency_line(latency)}", flush=True)
    if sinks:
        print("sinks: " + " ".join(f"{key}={value}" for key, value in sinks.items()), flush=True)
    if mqtt:
        shown = {key: value for key, value in mqtt.items() if key not in ("connected", "error")}
        print("mqtt: " + " ".join(f"{key}={value}" for key, value in shown.items()), flush=True)
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
            print(
                "htsat-live: already stopping: finishing the windows captured and flushing the outputs",
                file=sys.stderr,
                flush=True,
            )
        self.requested.set()


def run_detect(args) -> int:
    with StopSignals() as stop:
        try:
            config = detect_config(args)
            check_output_paths(config)
            check_output_settings(config)
        except (ConfigError, OutputPathError, ValueError) as error:
            print(f"htsat-live detect: {error}", file=sys.stderr)
            return 2
        model = load_model_or_explain(
            config.model.path or None,
            config.model.device,
            config.model.backend,
            config.model.precision,
            config.model.calibration or None,
        )
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
            config = demo_config("detect", config, error)
            if config is None:
                return 2
            pipeline = build_pipeline(config, model, args.provisional, inference)
    except (CaptureError, ValueError, OSError) as error:
        print(f"htsat-live detect: {error}", file=sys.stderr)
        return 2
    if stop.requested.is_set():  # stopped during start-up: nothing ran
        pipeline.stop()
        print("htsat-live detect: stopped before the stream started", file=sys.stderr)
        return 130
    pipeline.start()
    where = (
        backend_line(model, config.model.device)
        if inference is None
        else f"inference on Ray at {inference.address}, serving {inference.source}"
    )
    from htsat_live.model import ensemble_line

    ensemble = ensemble_line(model, event_rule_from_config(config))
    where += f"; {ensemble}" if ensemble else ""
    print(
        f"listening to {', '.join(r.spec for r in pipeline.runners)} (hop {config.windows.hop} s, "
        f"{where}); Ctrl-C ends",
        file=sys.stderr,
        flush=True,
    )
    for output in pipeline.outputs:
        if output.name == "web":
            print(f"browser view at {output.url}", file=sys.stderr, flush=True)
    while not stop.requested.is_set() and not pipeline.wait(timeout=0.2):
        pass
    started = time.monotonic()
    reports = pipeline.stop()
    sections = output_sections(pipeline.outputs)
    print_reports(reports, sections["sinks"], time.monotonic() - started, sections["mqtt"])
    if inference is not None:
        print("inference: " + " ".join(f"{key}={value}" for key, value in inference.counters().items()), flush=True)
    return 0


# --- serve --------------------------------------------------------------------------------------


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        action="append",
        help="checkpoint, .onnx file or model name (default: the embedded model); repeated: an ensemble, "
        "the members' scores averaged (they must share their labels)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help=f"{BACKEND_HELP}, in each replica",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "int8"),
        default="fp32",
        help="fp32 (the official outputs), bf16 (torch or openvino) or int8 (openvino)",
    )
    add_calibration_argument(parser)
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where replicas run (auto: one GPU each when the cluster has GPUs, else CPUs)",
    )
    parser.add_argument("--replicas", type=int, default=1, help="replicas, each holding one model (default 1)")
    parser.add_argument(
        "--max-replicas",
        type=int,
        default=None,
        help="let Serve's autoscaler run between --replicas and this many replicas, aiming at one batch "
        "of windows in flight per replica (default: a fixed --replicas)",
    )
    parser.add_argument(
        "--cpus-per-replica",
        type=float,
        default=1.0,
        help="CPUs Ray reserves for each CPU replica; its torch threads follow (default 1)",
    )
    parser.add_argument("--max-batch", type=int, default=8, help="most windows per predict call on a replica")
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="how long a replica waits for a batch to fill, milliseconds (default 5)",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="auto|HOST:PORT|ray://HOST:PORT",
        help="the Ray cluster to deploy on (default: the one running on this machine, else a new "
        "local instance that lives as long as this command)",
    )


def run_serve(args) -> int:
    """Deploy the model as the Ray Serve application `htsat-live`, say where, and serve until Ctrl-C."""
    if (
        args.replicas < 1
        or args.max_batch < 1
        or args.cpus_per_replica <= 0
        or args.batch_wait_ms < 0
        or (args.max_replicas is not None and args.max_replicas < args.replicas)
    ):
        print(
            "htsat-live serve: --replicas and --max-batch must be at least 1, --max-replicas at least --replicas, "
            "--cpus-per-replica above 0 and --batch-wait-ms at least 0",
            file=sys.stderr,
        )
        return 2
    try:
        from htsat_live.stream.inference import cluster
    except ImportError as error:
        print(f"htsat-live serve: needs Ray Serve: pip install -e '.[cluster]' ({error})", file=sys.stderr)
        return 2
    from htsat_live.model import load_model, members_of

    with StopSignals() as stop:
        device = "cpu" if args.device == "auto" else args.device
        # refused here, not in the replicas
        model = load_model_or_explain(args.model, "cpu", args.backend, args.precision, args.calibration)
        if model is None:
            return 2
        members = len(members_of(model))
        served = (  # a detector applies its own event rule to the scores it gets
            model.source
            if members == 1
            else f"{model.source} (ensemble of {members} models, scores averaged; thresholds and median filter are "
            "each detector's: from its config, else its first --model)"
        )
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
            settings = cluster.ServeSettings(
                args.replicas,
                args.max_batch,
                args.batch_wait_ms / 1000,
                1.0 if gpu else args.cpus_per_replica,
                1.0 if gpu else 0.0,
                args.max_replicas,
            )
            needed, kind = (
                (settings.replicas * settings.num_gpus, "GPU")
                if gpu
                else (settings.replicas * settings.num_cpus, "CPU")
            )
            if resources.get(kind, 0) < needed:
                print(
                    f"htsat-live serve: {settings.replicas} replica(s) need {needed:g} {kind}s; the Ray cluster has "
                    f"{resources.get(kind, 0):g}",
                    file=sys.stderr,
                )
                return 2
            build = functools.partial(
                load_model,
                args.model,
                device=device,
                backend=args.backend,
                precision=args.precision,
                calibration=args.calibration,
            )
            cluster.deploy(build, settings)
            where = cluster.gcs_address()
            replicas = (
                f"{settings.replicas}"
                if settings.max_replicas in (None, settings.replicas)
                else f"{settings.replicas} to {settings.max_replicas} (autoscaled)"
            )
            engine = (  # the model checked here ran on the CPU; replicas on a GPU run torch unless told otherwise
                backend_line(model, device)
                if device == "cpu"
                else f"{'torch' if args.backend == 'auto' else args.backend} on {device}"
            )
            print(
                f"serving {served} ({model.num_classes} classes, {args.precision}, {engine}) "
                f"as the Ray Serve application '{cluster.APP}': {replicas} replica(s) of "
                f"{'1 GPU' if gpu else f'{settings.num_cpus:g} CPU(s)'}, batches of up to {settings.max_batch} "
                f"windows, {args.batch_wait_ms:g} ms wait; Ray at {where}",
                flush=True,
            )
            print(
                f"send windows here: htsat-live detect SOURCE --inference ray:{args.address or 'auto'}; Ctrl-C ends",
                flush=True,
            )
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
        print(
            f"{mark} {device['index']:3d}  {device['name']}  ({device['max_input_channels']} ch, "
            f"{device['default_samplerate']:.0f} Hz)"
        )
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
