"""`htsat-live bench --stream`: the live pipeline's speed on the full-size model.

For each hop (default 1.25 s and 1 s):
1. real time: a recording is played through the whole pipeline (file source paced in real time, ring,
   windows, worker, stitcher, events, ZeroMQ publisher on a loopback port, with no subscriber, so no
   `scores` or `mel` message is built: stream.output) for `seconds`; prints windows, skipped windows, ring
   overruns, dropped messages, hop latency p50/p95 (wall time from the capture of a window's last sample
   to its scores, stitched), and the process RSS after the first 10 windows and at the end;
2. fast: the same recording fed as fast as inference takes it, by 1 stream and by several streams that
   share the worker's batches; prints the real-time factor (audio seconds per wall second). The best
   aggregate factor, rounded down, is the stream count to check: that many streams are then paced in
   real time together (30 s); the most streams one process sustains is the largest count with no
   skipped window and a hop latency p95 under the hop. Several streams run with `windows.stagger` on: their
   windows fall due spread over the hop, not all at once.

With `--inference ray` the windows run on a Ray Serve deployment (stream/inference/cluster.py: a local Ray instance,
one replica with every CPU) instead, reached as detect reaches it: from a Ray client in a child process, over a
pipe (stream/inference/remote.py); and beside it through a deployment handle inside this process, the path
detect took before its Ray client moved to a child process. It prints the round trip of one window through
each (median of ROUND_TRIPS), and for each hop the windows/s of 1 and several streams fed as fast as
inference takes them, in-process and through each path, with what the child process costs per window.
Then the streams sustained in real time through the child process, and the bytes per window on the wire for
each payload choice (with the drift int16 samples would cost).

With `--events-per-hour N` (run_burst_bench) the streams are mostly quiet instead: each is white noise at
NOISE_DBFS (a quiet room through a microphone) with bursts of real sound, 1 to 5 s cut from the demo
recording at random places, put at random times (seeded: BURST_SEED). A run of
S streams for L seconds holds round(N * L * S / 3600) bursts, spread over the streams at random, so that the
load is the one N events per hour give however short the run. With `--gate-dbfs DBFS` the pipeline runs with
`windows.gate_dbfs` at that level, and windows that hold only the noise are not run (docs/live.md).

For each hop of `--events-per-hour`:
1. fast: S streams (`--streams`) fed as fast as inference takes them: the real-time factor, and the share of
   windows gated; its integer part is the first stream count checked;
2. real time: that many streams played together for `--seconds`, then more (a quarter more while sustained) or
   fewer (a quarter fewer until sustained), then halfway between the most sustained and the fewest not, at
   most MAX_CHECKS runs: sustained means no skipped window, no ring overrun and a hop
   latency p95 (of the windows run through the model) under the hop; prints the most streams sustained;
3. with the gate: the burst events check. One stream of CHECK_SECONDS with CHECK_BURSTS bursts is fed fast
   with and without the gate; the events of the bursts (overlapping one and staying within half a window less
   a hop of them: check_burst_events) must be the same (target, onset, offset, peak, mean) in both runs;
   prints how many match, and apart the events that reach further into the noise.

Without `--model` the model is the full-size architecture (527 classes) with random weights, whose
token-semantic bias is lowered by one constant (`make_scores_sparse`) so that its scores are as sparse as a
trained model's: inference speed does not depend on the weights, but the event stage does. Each fast run
prints its events per stream-minute. The recording is the one-minute demo soundscape (model/data/demo.wav)
unless `--recording` names another file.
"""

import functools
import os
import pickle
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from htsat_live.model.backend_choice import backend_line, choose_backend
from htsat_live.model.embedded import DEMO_RECORDING

RSS_AFTER_WINDOWS = 10
ACTIVE_SHARE = 1e-3  # share of the random model's (token, class) scores over 0.5 on the demo (make_scores_sparse)
VERIFY_SECONDS = 30.0  # length of the real-time check of the stream count the fast runs suggest
ROUND_TRIPS = 40  # windows sent one at a time through each Ray client, taking turns, for the round-trip median


def full_size_model(
    device: str, backend: str = "torch", precision: str = "fp32", calibration: str | None = None, seed: int = 0
):
    """The full-size HTS-AT (527 AudioSet classes) with random weights of `seed`, behind the Predictor API, on
    the torch backend, OpenVINO (its trunk converted, and for int8 quantised, on the recordings under
    `calibration` when given, in memory) or ONNX Runtime (exported to a temporary file, with precision "int8"
    quantised as `export-onnx --int8` does); "auto" picks one by the rule of model/backend_choice.py."""
    import tempfile
    from pathlib import Path

    import torch

    from htsat_live.model.checkpoint import Checkpoint, audioset_labels
    from htsat_live.model.htsat import HTSAT, HTSATConfig
    from htsat_live.model.predictor import Predictor, TorchBackend

    torch.manual_seed(seed)
    config = HTSATConfig()
    model = make_scores_sparse(HTSAT(config).eval())
    choice = choose_backend(backend, False, device, precision, sum(p.numel() for p in model.parameters()))
    backend = choice.backend
    if backend == "openvino":
        from htsat_live.model.openvino import OpenVinoBackend, trunk_for

        runner = OpenVinoBackend(model, trunk_for(model, precision, calibration), device, precision)
    elif backend == "onnx":
        from htsat_live.model.onnx import OnnxBackend, export_onnx

        checkpoint = Checkpoint(config, model.state_dict(), audioset_labels())
        path = export_onnx(model, checkpoint, Path(tempfile.mkdtemp()) / "model.onnx", int8=precision == "int8")
        runner = OnnxBackend(path, device)
    else:
        runner = TorchBackend(model, device, precision)
    return Predictor(runner, config, audioset_labels(), None, "full-size HTS-AT, random weights", 1, choice.why)


def demo_windows() -> np.ndarray:
    """The demo recording's whole 10-s windows at a 2.5-s hop: [21, 320000]."""
    from htsat_live.model import WINDOW_SAMPLES, read_clip

    demo = read_clip(DEMO_RECORDING)
    starts = range(0, demo.size - WINDOW_SAMPLES + 1, WINDOW_SAMPLES // 4)
    return np.stack([demo[start : start + WINDOW_SAMPLES] for start in starts])


def make_scores_sparse(model, share: float = ACTIVE_SHARE):
    """Lower the token-semantic head's bias by one constant so that, on the demo recording's 10-s windows at a
    2.5-s hop, `share` of the (token, class) scores exceed 0.5. Random weights put every score near 0.5: on the
    demo minute they fire about 7,700 events per stream (starts, provisional ones included), where a trained
    model's few active classes fire tens, and the event stage then costs as much as inference. Returns the model."""
    import torch

    from htsat_live.model.htsat import tile_frames

    with torch.inference_mode():
        logits = model.token_logits(tile_frames(model.logmel(torch.from_numpy(demo_windows()))))  # [W, C, 32]
    with torch.no_grad():
        model.tscam_conv.bias -= float(torch.quantile(logits.flatten(), 1 - share))
    return model


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class RealTimeResult:
    windows: int
    skipped: int
    overruns: int
    dropped: int
    hop_p50: float | None
    hop_p95: float | None
    rss_early: float | None
    rss_end: float
    gated: int = 0  # windows below the level gate (windows.gate_dbfs), not run


@dataclass
class FastResult:
    streams: int
    audio_seconds: float
    wall_seconds: float
    windows: int = 0
    events: int = 0  # starts, provisional ones included, of all streams
    gated: int = 0  # windows below the level gate, not run

    @property
    def windows_per_second(self) -> float:
        return self.windows / self.wall_seconds

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds


def bench_config(hop: float, fast: bool, gate_dbfs: float | None = None):
    from htsat_live.stream.config import load_config, with_overrides

    return with_overrides(
        load_config(None),
        {
            "windows.hop": hop,
            "source.fast": fast,
            "windows.stagger": True,
            "publish.bind": "tcp://127.0.0.1:*",
            "windows.gate_dbfs": gate_dbfs,  # None: no gate
        },
    )


def stream_inputs(recording: str | list[str], streams: int) -> list[str]:
    """The input of each of `streams` streams: the one recording for all, or from a list one each."""
    return [recording] * streams if isinstance(recording, str) else list(recording[:streams])


def run_real_time(
    model, recording: str | list[str], hop: float, seconds: float, streams: int = 1, inference=None, gate_dbfs=None
) -> RealTimeResult:
    """Play the recording (or a list of one per stream) in real time through the whole pipeline for `seconds`
    (or to its end), as `streams` streams at once, with the level gate at `gate_dbfs` (None: none); the
    counters and latencies are those of all streams together."""
    from htsat_live.stream.output import Listener
    from htsat_live.stream.outputs.publish import Publisher
    from htsat_live.stream.pipeline import Pipeline
    from htsat_live.stream.status import percentile

    config = bench_config(hop, fast=False, gate_dbfs=gate_dbfs)
    publisher = Publisher.from_config(config.publish)
    rss = {}  # "early" at the first status after the 10th window run, "last" at the newest status
    windows = {}  # stream -> windows run, as its newest status says

    def measure(topic, stream, body):
        windows[stream] = body["counters"]["windows"]
        rss["last"] = rss_mib()
        if "early" not in rss and sum(windows.values()) >= RSS_AFTER_WINDOWS:
            rss["early"] = rss["last"]

    pipeline = Pipeline(
        config,
        model,
        stream_inputs(recording, streams),
        outputs=[publisher, Listener(measure, topics=("status",))],
        inference=inference,
    )
    pipeline.start()
    pipeline.wait(seconds)
    dropped = sum(publisher.dropped.values())
    reports = list(pipeline.stop().values())
    latencies = [value for report in reports for value in report.hop_latencies]
    return RealTimeResult(
        sum(r.windows for r in reports),
        sum(r.skipped_windows for r in reports),
        sum(r.overruns for r in reports),
        dropped,
        percentile(latencies, 50),
        percentile(latencies, 95),
        rss.get("early"),
        rss.get("last", rss_mib()),
        sum(r.gated_windows for r in reports),
    )


def run_fast(
    model, recording: str | list[str], hop: float, streams: int, inference=None, gate_dbfs=None, outputs=()
) -> FastResult:
    """Feed the recording (or a list of one per stream) to `streams` streams at once, each as fast as the shared
    worker (running windows on `inference`, else the model) takes it, with the level gate at `gate_dbfs`."""
    from htsat_live.model.timebase import SAMPLE_RATE
    from htsat_live.stream.pipeline import Pipeline

    config = bench_config(hop, fast=True, gate_dbfs=gate_dbfs)
    pipeline = Pipeline(
        config,
        model,
        stream_inputs(recording, streams),
        outputs=list(outputs),
        max_batch=max(8, streams),
        inference=inference,
    )
    started = time.perf_counter()
    pipeline.start()
    pipeline.wait()
    wall = time.perf_counter() - started
    reports = pipeline.stop()
    audio = sum(report.samples for report in reports.values()) / SAMPLE_RATE
    return FastResult(
        streams,
        audio,
        wall,
        sum(report.windows for report in reports.values()),
        sum(report.events for report in reports.values()),
        sum(report.gated_windows for report in reports.values()),
    )


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def run_stream_bench(args) -> int:
    """`htsat-live bench --stream`. Reads from the bench command's arguments: `model` (None = the
    full-size architecture with random weights), `hop` (list of hops), `seconds` (length of the
    real-time run), and when present `threads`, `backend`, `precision`, `device`, `recording`, `streams`."""
    import soundfile
    import torch

    from htsat_live.model import load_model

    model_path = getattr(args, "model", None)
    device = getattr(args, "device", None) or "cpu"
    backend = getattr(args, "backend", None) or "auto"
    hops = getattr(args, "hop", None) or [1.25, 1.0]
    seconds = getattr(args, "seconds", None) or 60.0
    recording = getattr(args, "recording", None) or str(DEMO_RECORDING)
    max_streams = getattr(args, "streams", None) or 4
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    precision = getattr(args, "precision", None) or "fp32"
    calibration = getattr(args, "calibration", None)
    seed = getattr(args, "seed", None) or 0
    if getattr(args, "events_per_hour", None) is not None:
        from htsat_live.stream.config import ConfigError

        if not args.events_per_hour > 0:
            print(
                f"htsat-live bench --stream: --events-per-hour must be > 0, got {args.events_per_hour:g}",
                file=sys.stderr,
            )
            return 2
        try:
            bench_config(1.25, True, args.gate_dbfs)
        except ConfigError as error:
            print(f"htsat-live bench --stream: --gate-dbfs: {error}", file=sys.stderr)
            return 2
    if precision == "int8" and not (backend == "openvino" or (backend == "onnx" and model_path is None)):
        print(
            "htsat-live bench --stream: --precision int8 runs on --backend openvino, or on --backend onnx without "
            "--model (for a checkpoint on ONNX Runtime, export it with `htsat-live export-onnx --int8` and give "
            "--model X.int8.onnx)"
        )
        return 2
    try:
        if model_path:
            model = load_model(model_path, device=device, backend=backend, precision=precision, calibration=calibration)
            what = f"{model_path} ({model.num_classes} classes)"
        else:
            model = full_size_model(device, backend, precision, calibration, seed)
            what = f"full-size HTS-AT ({model.num_classes} classes, random weights, seed {seed})"
    except (OSError, ValueError) as error:
        print(f"htsat-live bench --stream: {error}", file=sys.stderr)
        return 2
    try:
        length = soundfile.info(recording).duration
    except (OSError, RuntimeError) as error:
        print(f"htsat-live bench --stream: cannot read {recording}: {error}", file=sys.stderr)
        return 2
    print(
        f"stream bench: {what}, {precision}, {backend_line(model, device)}, torch threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs; recording {recording} ({length:.1f} s)",
        flush=True,
    )
    model.predict(np.zeros((1, 320000), np.float32), short="pad")  # warm up once
    if getattr(args, "events_per_hour", None) is not None:
        return run_burst_bench(model, hops, seconds, max_streams, args.events_per_hour, args.gate_dbfs)
    if (getattr(args, "inference", None) or "local") == "ray":
        if model_path:
            build = functools.partial(
                load_model, model_path, device=device, backend=backend, precision=precision, calibration=calibration
            )
        else:
            build = functools.partial(full_size_model, device, backend, precision, calibration, seed)
        return run_ray_bench(model, build, recording, hops, max_streams, min(seconds, VERIFY_SECONDS, length))
    for hop in hops:  # the real-time runs first, before the fast runs' large batches grow the heap
        real = run_real_time(model, recording, hop, min(seconds, length))
        growth = "" if real.rss_early is None else f" ({(real.rss_end / real.rss_early - 1) * 100:+.1f}%)"
        early = "n/a" if real.rss_early is None else f"{real.rss_early:.0f} MiB"
        print(
            f"hop {hop:g} s, real time ({min(seconds, length):.0f} s): windows {real.windows}, skipped "
            f"{real.skipped}, ring overruns {real.overruns}, dropped messages {real.dropped}, "
            f"hop latency p50 {_seconds(real.hop_p50)} p95 {_seconds(real.hop_p95)}, "
            f"RSS after {RSS_AFTER_WINDOWS} windows {early}, at the end {real.rss_end:.0f} MiB{growth}",
            flush=True,
        )
    for hop in hops:
        best = None
        for streams in sorted({1, *[k for k in (2, 4, 8) if k <= max_streams], max_streams}):
            fast = run_fast(model, recording, hop, streams)
            print(
                f"hop {hop:g} s, fast, {streams} stream{'s' if streams > 1 else ''}: "
                f"{fast.audio_seconds:.0f} s of audio in {fast.wall_seconds:.1f} s, "
                f"real-time factor {fast.realtime_factor:.2f}, {fast.events / fast.audio_seconds * 60:.0f} events "
                f"per stream-minute",
                flush=True,
            )
            best = fast if best is None or fast.realtime_factor > best.realtime_factor else best
        print(
            f"hop {hop:g} s: best aggregate real-time factor {best.realtime_factor:.2f} "
            f"({best.streams} stream(s) batched)",
            flush=True,
        )
        # check it: that many streams paced in real time
        streams = most_streams_sustained(
            model, recording, hop, min(seconds, VERIFY_SECONDS, length), int(best.realtime_factor)
        )
        print(f"hop {hop:g} s: one process sustains {streams} stream(s) in real time", flush=True)
    return 0


def most_streams_sustained(model, recording: str, hop: float, seconds: float, streams: int, inference=None) -> int:
    """Play `streams` streams in real time for `seconds`, fewer each time (by a quarter, at least one) until
    one count runs with no skipped window, no overrun and a hop latency p95 under the hop; that count (0: none)."""
    where = " through Ray" if inference is not None else ""
    while streams >= 1:
        check = run_real_time(model, recording, hop, seconds, streams, inference)
        sustained = check.skipped == 0 and check.overruns == 0 and (check.hop_p95 or 0.0) < hop
        print(
            f"hop {hop:g} s, {streams} streams in real time{where} ({seconds:.0f} s): windows {check.windows}, "
            f"skipped {check.skipped}, hop latency p50 {_seconds(check.hop_p50)} p95 {_seconds(check.hop_p95)} "
            f"-> {'sustained' if sustained else 'not sustained'}",
            flush=True,
        )
        if sustained:
            return streams
        streams -= max(1, streams // 4)
    return 0


def payload_sizes(model, recording: str, hop: float) -> None:
    """Bytes per window on the wire for each payload choice (pickled as Ray sends them), and the framewise
    drift that int16 samples would cost on the recording's first full window."""
    from htsat_live.model import read_clip

    window = read_clip(recording)[:320000]  # [320000]
    quantised = np.round(np.clip(window, -1, 1) * 32767).astype(np.int16)  # [320000]
    out = model.predict(window[None], short="pad")
    drift = np.abs(
        model.predict((quantised / 32767).astype(np.float32)[None], short="pad")["framewise"] - out["framewise"]
    ).max()
    tokens = np.ascontiguousarray(out["framewise"][0, ::32])  # what a replica sends back: [32, C]
    reply = len(pickle.dumps((out["clipwise"][0], tokens), protocol=5))
    whole_map = len(pickle.dumps((out["clipwise"][0], out["framewise"][0]), protocol=5))
    choices = [
        ("float32 window (what travels)", window),
        ("int16 window", quantised),
        ("log-mel frames [1001, 64] float32", model.logmel(window)[0]),
        (f"only the new samples, float32 (hop {hop:g} s)", window[: round(hop * 32000)]),
    ]
    for what, payload in choices:
        print(f"payload {what}: {len(pickle.dumps(payload, protocol=5)):,} bytes per window to the replica", flush=True)
    print(
        f"reply (clipwise [{model.num_classes}] + per-token scores [32, {model.num_classes}] float32): {reply:,} bytes "
        f"per window (the whole framewise map [1024, {model.num_classes}] would be {whole_map:,}); int16 samples "
        f"would move framewise scores by up to {drift:.1e}",
        flush=True,
    )


def ray_round_trips(clients: dict, calls: int = ROUND_TRIPS) -> dict[str, float]:
    """Median seconds of one window's round trip through each of `clients` ({name: client}), the clients taking
    turns so that both see the same load."""
    window = np.zeros((1, 320000), np.float32)
    seconds: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(calls):
        for name, client in clients.items():
            started = time.perf_counter()
            client.predict(window)
            seconds[name].append(time.perf_counter() - started)
    return {name: float(np.median(values)) for name, values in seconds.items()}


def run_ray_bench(model, build, recording: str, hops: list[float], max_streams: int, check_seconds: float) -> int:
    """`bench --stream --inference ray`: the same pipeline with windows run by a local Ray Serve deployment
    of one replica with every CPU, beside in-process inference; through the Ray client in a child process that
    detect runs, and through a deployment handle in this process."""
    from htsat_live.stream.inference import cluster
    from htsat_live.stream.inference.remote import InferenceProcess

    started = time.perf_counter()
    cpus = os.cpu_count() or 1
    started_ray = cluster.start_ray(None, cpus)
    process = None
    try:
        settings = cluster.ServeSettings(replicas=1, max_batch=max(8, max_streams), num_cpus=cpus)
        handle = cluster.deploy(build, settings)
        direct = cluster.ServeInference(handle, cluster.gcs_address())
        print(
            f"Ray Serve: 1 replica with {cpus} CPUs at {direct.address}, up in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        started = time.perf_counter()
        process = InferenceProcess.open(direct.address, build, model.labels, settings)  # it finds the deployment
        print(f"Ray client in a child process (as detect runs it): joined in {time.perf_counter() - started:.1f} s")
        payload_sizes(model, recording, min(hops))
        clients = {"child process": process, "handle": direct}
        ray_round_trips(clients, 2)  # warm up the replica and both paths
        trips = ray_round_trips(clients)
        print(
            f"one window's round trip, median of {ROUND_TRIPS}: through the child process (detect's path) "
            f"{trips['child process'] * 1000:.1f} ms, through a handle in this process {trips['handle'] * 1000:.1f} "
            f"ms: the child process costs {(trips['child process'] - trips['handle']) * 1000:+.1f} ms per window",
            flush=True,
        )
        for hop in hops:
            for streams in sorted({1, max_streams}):
                local = run_fast(model, recording, hop, streams)
                served = {name: run_fast(model, recording, hop, streams, client) for name, client in clients.items()}
                rates = {name: result.windows_per_second for name, result in served.items()}
                print(
                    f"hop {hop:g} s, fast, {streams} stream(s): in-process {local.windows_per_second:.2f} windows/s; "
                    f"through Ray from the child process (detect's path) {rates['child process']:.2f} windows/s "
                    f"(overhead {(local.windows_per_second / rates['child process'] - 1) * 100:+.0f}%), from a handle "
                    f"in this process {rates['handle']:.2f} windows/s (overhead "
                    f"{(local.windows_per_second / rates['handle'] - 1) * 100:+.0f}%): the child process costs "
                    f"{(1 / rates['child process'] - 1 / rates['handle']) * 1000:+.1f} ms per window; real-time "
                    f"factor through the child process {served['child process'].realtime_factor:.2f}",
                    flush=True,
                )
            streams = most_streams_sustained(
                model, recording, hop, check_seconds, max(1, int(served["child process"].realtime_factor)), process
            )
            print(
                f"hop {hop:g} s: Ray sustains {streams} stream(s) in real time (child process); retries "
                f"{process.retries + direct.retries}, lost windows {process.lost + direct.lost}",
                flush=True,
            )
    finally:
        if process is not None:
            process.close()
        cluster.undeploy()
        if started_ray:
            cluster.stop_ray()
    return 0


# --- bench --stream --events-per-hour: mostly quiet streams ---------------------------------------------

NOISE_DBFS = -70.0  # RMS level of the streams' white noise
BURST_SECONDS = (1.0, 5.0)  # shortest and longest burst
CHECK_SECONDS = 90.0  # the burst events check: length of its stream
CHECK_BURSTS = 6  # ... and its bursts
MAX_CHECKS = 5  # real-time runs at most, per hop (a run of the bench stays under 5 min)
BURST_SEED = 0  # where the bursts fall and what they hold


@dataclass(frozen=True)
class Burst:
    start: float  # stream seconds
    stop: float


def quiet_streams(
    streams: int, seconds: float, bursts: int, folder: Path, seed: int, demo: np.ndarray
) -> tuple[list[str], list[list[Burst]]]:
    """Write `streams` WAV files of `seconds` of noise at NOISE_DBFS holding `bursts` bursts of the demo in all,
    each at a random time of a random stream; their paths and each one's bursts, in time order."""
    import soundfile

    from htsat_live.model import SAMPLE_RATE

    rng = np.random.default_rng(seed)
    length = round(seconds * SAMPLE_RATE)
    waves = [(10 ** (NOISE_DBFS / 20) * rng.standard_normal(length)).astype(np.float32) for _ in range(streams)]
    placed: list[list[Burst]] = [[] for _ in range(streams)]
    for _ in range(bursts):
        stream = int(rng.integers(streams))
        samples = round(rng.uniform(*BURST_SECONDS) * SAMPLE_RATE)
        source = int(rng.integers(demo.size - samples))
        at = int(rng.integers(max(1, length - samples)))
        waves[stream][at : at + samples] += demo[source : source + samples][: length - at]
        placed[stream].append(Burst(at / SAMPLE_RATE, min(at + samples, length) / SAMPLE_RATE))
    paths = []
    for number, wave in enumerate(waves):
        path = folder / f"quiet-{streams}-{number}.wav"
        soundfile.write(path, wave, SAMPLE_RATE, subtype="FLOAT")
        paths.append(str(path))
    return paths, [sorted(stream_bursts, key=lambda burst: burst.start) for stream_bursts in placed]


def bursts_for(events_per_hour: float, seconds: float, streams: int) -> int:
    return round(events_per_hour * seconds * streams / 3600)


def run_burst_bench(
    model, hops: list[float], seconds: float, streams: int, events_per_hour: float, gate_dbfs: float | None
) -> int:
    """`bench --stream --events-per-hour` (the module's docstring): 1 when the burst events differ with the gate,
    else 0."""
    from htsat_live.model import read_clip

    seed = BURST_SEED
    demo = read_clip(DEMO_RECORDING)
    gate = "off" if gate_dbfs is None else f"{gate_dbfs:g} dBFS"
    print(
        f"{events_per_hour:g} events per hour: streams of white noise at {NOISE_DBFS:g} dBFS with bursts of "
        f"{BURST_SECONDS[0]:g}-{BURST_SECONDS[1]:g} s of the demo recording at random times (seed {seed}); "
        f"level gate {gate}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="htsat-live-bench-") as folder:
        folder = Path(folder)
        for hop in hops:
            started = time.perf_counter()
            paths, _ = quiet_streams(
                streams, seconds, bursts_for(events_per_hour, seconds, streams), folder, seed, demo
            )
            fast = run_fast(model, paths, hop, streams, gate_dbfs=gate_dbfs)
            windows = fast.windows + fast.gated
            print(
                f"hop {hop:g} s, fast, {streams} streams: {fast.audio_seconds:.0f} s of audio in "
                f"{fast.wall_seconds:.1f} s, real-time factor {fast.realtime_factor:.2f}; windows run "
                f"{fast.windows}, gated {fast.gated} ({fast.gated / max(1, windows) * 100:.0f}%)",
                flush=True,
            )
            sustained = most_quiet_streams(
                model, hop, seconds, max(1, int(fast.realtime_factor)), events_per_hour, gate_dbfs, seed, folder, demo
            )
            print(
                f"hop {hop:g} s: one process sustains {sustained} stream(s) in real time at {events_per_hour:g} "
                f"events per hour, level gate {gate} ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        if gate_dbfs is not None:
            if not check_burst_events(model, min(hops), gate_dbfs, seed, folder, demo):
                return 1
    return 0


def most_quiet_streams(
    model,
    hop: float,
    seconds: float,
    streams: int,
    events_per_hour: float,
    gate_dbfs: float | None,
    seed: int,
    folder: Path,
    demo: np.ndarray,
) -> int:
    """The most streams sustained in real time, searched from `streams`: a quarter more while sustained, a quarter
    fewer until sustained, then halfway between the most sustained and the fewest not; at most MAX_CHECKS runs;
    0 when not even one."""
    best, worst = 0, None  # most sustained, fewest not sustained
    for _ in range(MAX_CHECKS):
        paths, _ = quiet_streams(streams, seconds, bursts_for(events_per_hour, seconds, streams), folder, seed, demo)
        check = run_real_time(model, paths, hop, seconds, streams, gate_dbfs=gate_dbfs)
        ok = check.skipped == 0 and check.overruns == 0 and (check.hop_p95 or 0.0) < hop
        print(
            f"hop {hop:g} s, {streams} streams in real time ({seconds:.0f} s, "
            f"{bursts_for(events_per_hour, seconds, streams)} bursts): windows run {check.windows}, gated "
            f"{check.gated}, skipped {check.skipped}, hop latency p50 {_seconds(check.hop_p50)} p95 "
            f"{_seconds(check.hop_p95)} -> {'sustained' if ok else 'not sustained'}",
            flush=True,
        )
        if ok:
            best = max(best, streams)
        else:
            worst = streams if worst is None else min(worst, streams)
        if worst is None:
            following = streams + max(1, streams // 4)
        elif best == 0:
            following = streams - max(1, streams // 4)
        else:  # between the most sustained and the fewest not sustained
            following = (best + worst) // 2
        if following <= best or following < 1 or (worst is not None and following >= worst):
            break
        streams = following
    return best


def check_burst_events(model, hop: float, gate_dbfs: float, seed: int, folder: Path, demo: np.ndarray) -> bool:
    """One stream with CHECK_BURSTS bursts fed fast without and with the gate: the events of the bursts match.

    An event of a burst overlaps it and stays within half a window less a hop of the bursts: every frame there
    is scored by a window that holds burst audio, which the gate runs. Events that reach further are the
    model's answer to the noise itself (a random model fires on noise), which the gate silences; they are
    counted apart."""
    from htsat_live.model import WINDOW_SECONDS
    from htsat_live.stream.output import Listener

    (path,), (bursts,) = quiet_streams(1, CHECK_SECONDS, CHECK_BURSTS, folder, seed + 1, demo)
    reach = WINDOW_SECONDS / 2 - hop  # seconds around the bursts whose frames the gate leaves as they are

    def near(start: float, stop: float) -> bool:  # [start, stop) lies in the bursts' reach, all of it
        covered = start
        for burst in bursts:  # in time order
            if burst.start - reach > covered:
                break
            covered = max(covered, burst.stop + reach)
        return covered >= stop

    found = {}
    for gate in (None, gate_dbfs):
        ended = []

        def keep(topic, stream, body, ended=ended):
            if topic == "event" and body["state"] == "end" and not body["cancelled"]:
                ended.append(body)

        run = run_fast(model, [path], hop, 1, gate_dbfs=gate, outputs=[Listener(keep)])
        on_bursts = [e for e in ended if any(e["onset"] < b.stop and b.start < e["offset"] for b in bursts)]
        of_bursts = sorted(
            (event["label"], event["onset_frame"], event["offset_frame"], event["peak"], event["mean"])
            for event in on_bursts
            if near(event["onset"], event["offset"])
        )
        found[gate] = (of_bursts, len(on_bursts) - len(of_bursts), len(ended) - len(on_bursts), run)
    (plain, plain_far, plain_rest, _), (gated, gated_far, gated_rest, run) = found[None], found[gate_dbfs]
    same = len(set(plain) & set(gated))
    match = plain == gated
    print(
        f"burst events (1 stream, {CHECK_SECONDS:g} s, {len(bursts)} bursts, hop {hop:g} s, fed fast): without the "
        f"gate {len(plain)}, with it {len(gated)}, the same in both {same} -> {'match' if match else 'DIFFER'}; "
        f"events on a burst reaching over {reach:g} s into the noise {plain_far} without, {gated_far} with the "
        f"gate; events off the bursts {plain_rest} without, {gated_rest} with; windows gated {run.gated} of "
        f"{run.gated + run.windows}",
        flush=True,
    )
    return match
