"""`htsat-live bench`: inference speed of every backend against the official op-for-op eager model.

All contenders share one set of weights (the checkpoint given, or the full-size architecture with seeded
random weights) and are timed in the same run, interleaved round by round, so that a shared, noisy machine
slows them alike. Each row gives ms per 10-s window (median and p95 over rounds), windows/s, the speed-up over
the reference at the same batch size, the achieved GFLOP/s and its share of this CPU's matrix-multiply peak
for the contender's number type, and the drift of its framewise output from the reference's, held against its
number type's budget (DRIFT_BUDGETS). The peak is the best of short probes in the same run, a torch matmul and
an OpenVINO MatMul (the kernels of the fastest contenders), before and after the timings; where a contender
ran faster still, its own rate is the peak and the table says so, so that no share is above 100 %. The drift
probes are synthetic clips, or with --probe-audio 10-s windows of the user's recordings; with --calibration
OpenVINO's int8 calibrated on the user's recordings joins the default one. A second table gives each
contender's warm-up: the time to build it (export, conversion, compilation), its first call, and the peak memory
that building and warming it up added to the process (weights, compiled graphs, arenas, the largest batch's
activations).
On a machine with CUDA the GPU backends join them (torch fp32 and bf16, ONNX Runtime's CUDA provider where
installed).
"""

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from htsat_live.model.backend_choice import BACKEND_CHOICES, BACKEND_HELP, backend_line

# framewise drift from the reference each number type may show (max, mean; None: no bound): fp32 must give the
# official outputs to float32 rounding, bf16 and int8 trade a bounded drift for speed (docs/speed.md)
DRIFT_BUDGETS = {"fp32": (1e-4, None), "bf16": (5e-2, 2e-3), "int8": (None, 5e-3)}


OWN_CALIBRATION = "openvino int8 (own calibration)"  # the row of --calibration DIR


def within_budget(dtype: str, drift: np.ndarray) -> bool:
    largest, mean = DRIFT_BUDGETS[dtype]
    return (largest is None or drift.max() <= largest) and (mean is None or drift.mean() <= mean)


@dataclass
class Contender:
    name: str
    dtype: str  # the matrix products' number type ("fp32", "bf16", "int8"): whose peak its GFLOP/s is held against
    build: Callable[[], Callable[[np.ndarray], np.ndarray]]  # -> run: waves [B, 320000] -> framewise [B, 1024, C]
    run: Callable[[np.ndarray], np.ndarray] | None = None
    build_seconds: float = 0.0  # export, conversion, compilation
    first_call_seconds: float = 0.0
    peak_mib: float | None = None  # the most memory building it and its first calls added to the process
    on_gpu: bool = False  # its share of peak is not held against the CPU's probe
    times: dict = field(default_factory=dict)  # batch size -> list of seconds per call


@dataclass(frozen=True)
class Peak:
    """The best matrix-multiply rate of a number type, GFLOP/s (int8: GOP/s), and what gave it."""

    rate: float
    source: str  # "torch", "openvino", or the contender that ran faster than every probe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="checkpoint or model name to time (default: full-size architecture, random weights); repeated: the "
        "cost per window of the ensemble against its first member",
    )
    parser.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds per batch size")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="batch sizes")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch/ORT/OpenVINO threads (default: torch's default)"
    )
    parser.add_argument(
        "--stream", action="store_true", help="benchmark the live pipeline instead (evaluation/stream_bench.py)"
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help=f"--stream and an ensemble (--model repeated): the backend that runs the model; {BACKEND_HELP}",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "int8"),
        default="fp32",
        help="--stream: precision (bf16: torch or OpenVINO; int8: OpenVINO, or ONNX Runtime on random weights)",
    )
    parser.add_argument(
        "--calibration",
        metavar="DIR",
        help="OpenVINO int8 calibrated on the audio files under DIR (the site's own recordings): a row of its own "
        "beside the default calibration; --stream: the int8 model the pipeline runs",
    )
    parser.add_argument(
        "--probe-audio",
        metavar="DIR",
        help="measure the drift on up to 8 10-s windows of the audio files under DIR (default: synthetic probe "
        "clips); keep them apart from --calibration's recordings to see drift on audio calibration never saw",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the full-size model's random weights (default 0; not with --model)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="TEXT",
        help="time only the contenders whose name holds TEXT (repeatable; the reference always runs), e.g. "
        "--only 'openvino int8'",
    )
    parser.add_argument(
        "--inference",
        choices=("local", "ray"),
        default="local",
        help="--stream: run windows in-process, or on a local Ray Serve deployment beside in-process "
        "inference (needs the cluster extra)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cpu: every CPU backend, and the GPU ones where CUDA is present; cuda: only the GPU backends (against "
        "the reference on the CPU); --stream: where the pipeline's model runs",
    )
    parser.add_argument(
        "--streams", type=int, default=4, help="--stream: the most streams fed at once in the fast runs"
    )
    parser.add_argument("--hop", type=float, nargs="+", default=[1.25, 1.0], help="--stream: hops to run")
    parser.add_argument(
        "--web-clients",
        type=int,
        default=0,
        metavar="N",
        help="--stream: what the browser view costs instead: fast runs without it, with it, and with N browsers "
        "connected (evaluation/web_bench.py; the first --hop, up to 5 --rounds)",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="--stream: length of the real-time run")
    parser.add_argument(
        "--events-per-hour",
        type=float,
        default=None,
        metavar="N",
        help="--stream: feed streams of low noise with N bursts of real sound per hour (1-5 s each, at random "
        "times) instead of the demo, and find the streams sustained",
    )
    parser.add_argument(
        "--gate-dbfs",
        type=float,
        default=None,
        metavar="DBFS",
        help="--stream --events-per-hour: run with windows.gate_dbfs at DBFS, and check that the events of the "
        "bursts are those of a run without it (default: no gate)",
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=None,
        metavar="HOURS",
        help="feed HOURS of varied audio through the whole pipeline as fast as inference allows, "
        "sample memory, fds, threads, queues and latency every audio minute, and check that no "
        "event was lost (default model: the embedded one)",
    )
    parser.add_argument("--soak-dir", default="soak", help="--soak: folder for its sinks, soak.csv and soak.png")


def _status_mib(key: str) -> float:
    """A line of /proc/self/status ("VmRSS", "VmHWM") in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"/proc/self/status has no {key}")


def peak_mib(call: Callable[[], object]) -> float | None:
    """Run call(); return the most resident memory it added at any moment (MiB), or None where Linux's
    counters are missing. Writing 5 to /proc/self/clear_refs resets the high-water mark VmHWM to the current
    resident set."""
    try:
        before = _status_mib("VmRSS")
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        call()
        return None
    call()
    return _status_mib("VmHWM") - before


def _best_rate(multiply: Callable[[], object], flops: float, repeats: int) -> float:
    """The best rate of `repeats` calls of multiply() after a warm-up, in G(FL)OP/s."""
    multiply()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        multiply()
        best = min(best, time.perf_counter() - started)
    return flops / best / 1e9


def torch_matmul_rates(size: int, repeats: int) -> dict[str, float]:
    """torch's square products of `size`: fp32 and bf16 torch.matmul, int8 torch._int_mm."""
    import torch

    rates = {}
    for dtype, make in (
        ("fp32", lambda: torch.randn(size, size)),
        ("bf16", lambda: torch.randn(size, size).bfloat16()),
        ("int8", lambda: torch.randint(-128, 128, (size, size), dtype=torch.int8)),
    ):
        a, b = make(), make()
        multiply = torch._int_mm if dtype == "int8" else torch.matmul
        rates[dtype] = _best_rate(functools.partial(multiply, a, b), 2 * size**3, repeats)
    return rates


def openvino_matmul_rates(size: int, repeats: int, threads: int) -> dict[str, float]:
    """OpenVINO's CPU plugin on one MatMul of an input [size, size] by constant weights, compiled as the
    backend compiles the trunk: f32, bf16 (where the CPU has it; else it runs f32), and int8 (both operands
    behind FakeQuantize, as NNCF writes them). {} where OpenVINO is missing."""
    from htsat_live.model.openvino import INFERENCE_PRECISION, import_openvino

    try:
        ov = import_openvino()
    except ValueError:
        return {}
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)
    weights = ops.constant(rng.standard_normal((size, size)).astype(np.float32))
    data = rng.standard_normal((size, size)).astype(np.float32)
    core = ov.Core()
    rates = {}
    for dtype in ("fp32", "bf16", "int8"):
        source = ops.parameter([size, size], np.float32)
        left, right = source, weights
        if dtype == "int8":  # 256 levels over [-4, 4]: the int8 kernels run
            low, high = ops.constant(np.float32(-4)), ops.constant(np.float32(4))
            left = ops.fake_quantize(source, low, high, low, high, 256)
            right = ops.fake_quantize(weights, low, high, low, high, 256)
        model = ov.Model([ops.matmul(left, right, False, False)], [source])
        compiled = core.compile_model(
            model,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[dtype],
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": threads,
            },
        )
        request = compiled.create_infer_request()
        rates[dtype] = _best_rate(lambda r=request: r.infer({0: data}), 2 * size**3, repeats)
    return rates


def matmul_peaks(size: int = 1024, repeats: int = 15, threads: int | None = None) -> dict[str, Peak]:
    """This CPU's best matrix-multiply rate now, per number type: the better of torch's and OpenVINO's
    kernels (the libraries of the fastest contenders), each the best of `repeats` square products of `size`.
    A short probe, run in the same process as the timings, so that the shares of peak it yields were measured
    under the same load."""
    import torch

    threads = threads or torch.get_num_threads()
    probes = {"torch": torch_matmul_rates(size, repeats), "openvino": openvino_matmul_rates(size, repeats, threads)}
    return {
        dtype: max(
            (Peak(rates[dtype], source) for source, rates in probes.items() if dtype in rates), key=lambda p: p.rate
        )
        for dtype in probes["torch"]
    }


def peaks_above_contenders(peaks: dict[str, Peak], achieved: dict[str, tuple[str, float]]) -> dict[str, Peak]:
    """The peaks, each raised to the best rate a contender of its number type achieved where that is higher
    (`achieved`: number type -> (contender, G(FL)OP/s)): no contender runs above 100 % of its peak."""
    raised = dict(peaks)
    for dtype, (name, rate) in achieved.items():
        if rate > raised[dtype].rate:
            raised[dtype] = Peak(rate, name)
    return raised


def window_gflop(model) -> float:
    """GFLOP of one 10-s window through the model, by torch's flop counter (a multiply-add counts 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, 320000), tile_short=True)
    return counter.get_total_flops() / 1e9


def run(args: argparse.Namespace) -> int:
    if args.model and len(args.model) > 1:
        if args.soak is not None or args.stream:
            print(
                "htsat-live bench: an ensemble (--model repeated) is timed alone, without --stream or --soak",
                file=sys.stderr,
            )
            return 2
        return run_ensemble_bench(args.model, args.rounds, args.device, args.backend)
    args.model = args.model[0] if args.model else None
    if args.seed is not None and args.model:
        print("htsat-live bench: --seed seeds the random weights, which --model replaces", file=sys.stderr)
        return 2
    if args.calibration and args.stream and (args.precision != "int8" or args.backend != "openvino"):
        print(
            f"htsat-live bench --stream: --calibration {args.calibration} calibrates int8: it needs --precision int8 "
            "--backend openvino",
            file=sys.stderr,
        )
        return 2
    try:
        from htsat_live.model.openvino import calibration_recordings

        if args.calibration:
            calibration_recordings(args.calibration, "--calibration {}")
        if args.probe_audio:
            calibration_recordings(args.probe_audio, "--probe-audio {}")
    except ValueError as error:
        print(f"htsat-live bench: {error}", file=sys.stderr)
        return 2
    if args.soak is not None:
        from htsat_live.evaluation.soak import run_soak_bench

        return run_soak_bench(args)
    if args.stream and args.web_clients:
        from htsat_live.evaluation.web_bench import run_web_bench

        return run_web_bench(args)
    if args.stream:
        from htsat_live.evaluation.stream_bench import run_stream_bench

        return run_stream_bench(args)
    import torch
    from tqdm import tqdm

    from htsat_live.evaluation.reference import ReferenceHTSAT
    from htsat_live.model.checkpoint import (
        Checkpoint,
        build_model,
        default_labels,
        read_checkpoint,
    )
    from htsat_live.model.commands import probe_waves
    from htsat_live.model.htsat import HTSAT, HTSATConfig
    from htsat_live.model.onnx import OnnxBackend, export_onnx

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("htsat-live bench: --device cuda: torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.model and str(args.model).endswith(".onnx"):
        print(
            "htsat-live bench: every backend is timed against the official forward, which needs the weights: give "
            "the checkpoint the .onnx graph was exported from (or time the graph live: bench --stream --model X.onnx)",
            file=sys.stderr,
        )
        return 2
    if args.model:
        try:
            checkpoint = read_checkpoint(args.model)
        except (OSError, ValueError) as error:
            print(f"htsat-live bench: {error}", file=sys.stderr)
            return 2
        model = build_model(checkpoint, args.model)
        described = f"{args.model}"
    else:
        torch.manual_seed(args.seed or 0)
        config = HTSATConfig()
        model = HTSAT(config).eval()
        checkpoint = Checkpoint(config, model.state_dict(), default_labels(config.num_classes))
        described = f"full-size HTS-AT (random weights, seed {args.seed or 0})"
    parameters = sum(p.numel() for p in model.parameters())
    gflop = window_gflop(model)
    threads = torch.get_num_threads()
    print(
        f"model: {described}, {parameters / 1e6:.1f} M parameters, {gflop:.1f} GFLOP per window (torch's flop "
        f"counter on our forward; the official convolution STFT adds 2.1), threads {threads}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="htsat-bench-"))

    def copy_of_model():
        copy = HTSAT(model.config).eval()
        copy.load_state_dict(model.state_dict())
        return copy

    def torch_runner(module, bf16: bool = False):
        def call(waves):
            with torch.inference_mode():
                return module(torch.from_numpy(waves), tile_short=True, bf16=bf16)[1].numpy()

        return call

    def reference():
        official = ReferenceHTSAT(model)
        return lambda w: official(torch.from_numpy(w))[1].numpy()

    def onnxruntime(int8: bool):
        def build():
            path = export_onnx(model, checkpoint, workdir / f"model{'.int8' if int8 else ''}.onnx", int8=int8)
            backend = OnnxBackend(path, "cpu", threads)
            return lambda w: backend.run(w, True)[1]

        return build

    def openvino(precision: str, calibration: str | None = None):
        def build():
            from htsat_live.model.openvino import OpenVinoBackend, trunk_for

            copy = copy_of_model()
            backend = OpenVinoBackend(copy, trunk_for(copy, precision, calibration), "cpu", precision, threads)
            return lambda w: backend.run(w, True)[1]

        return build

    contenders = [Contender("reference (official ops, eager)", "fp32", reference)]
    cpu_contenders = [
        Contender("torch fp32", "fp32", lambda: torch_runner(copy_of_model())),
        Contender("torch bf16", "bf16", lambda: torch_runner(copy_of_model(), bf16=True)),
        Contender("onnxruntime fp32", "fp32", onnxruntime(int8=False)),
        Contender("onnxruntime int8", "int8", onnxruntime(int8=True)),
    ]
    if args.device == "cpu":
        contenders += cpu_contenders
        if _has_openvino():
            contenders += [
                Contender(f"openvino {precision}", precision, openvino(precision))
                for precision in ("fp32", "bf16", "int8")
            ]
            if args.calibration:
                contenders.append(Contender(OWN_CALIBRATION, "int8", openvino("int8", args.calibration)))
    contenders += cuda_contenders(checkpoint, args.model or "random weights", workdir / "model.onnx")
    if args.only:
        contenders = contenders[:1] + [c for c in contenders[1:] if any(text in c.name for text in args.only)]
    probes = probe_waves(4) if not args.probe_audio else recorded_probes(args.probe_audio)
    if args.probe_audio:
        print(f"drift probes: {len(probes)} windows of 10 s from the recordings in {args.probe_audio}")
    outputs = {}

    def warm_up(contender: Contender) -> None:
        started = time.perf_counter()
        contender.run = contender.build()
        contender.build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        contender.run(probes[:1])
        contender.first_call_seconds = time.perf_counter() - started
        outputs[contender.name] = contender.run(probes)  # the drift probes, [4, 320000]
        for batch in args.batch:
            contender.run(waves_of(probes, batch))

    for contender in tqdm(contenders, desc="building and warming up", unit="contender"):
        contender.peak_mib = peak_mib(functools.partial(warm_up, contender))
    peaks = time_rounds(contenders, probes, args.batch, args.rounds, threads)
    print_tables(contenders, outputs, args.batch, gflop, peaks, threads)
    return 0


def recorded_probes(folder: str, count: int = 8) -> np.ndarray:
    """Drift probes from the user's recordings: up to `count` full 10-s windows under `folder`, a uniform
    sample (seeded), [N, 320000]."""
    from htsat_live.model.openvino import calibration_recordings, recording_windows
    from htsat_live.model.timebase import WINDOW_SAMPLES

    windows = recording_windows(calibration_recordings(folder, "--probe-audio {}"), count, 1, "--probe-audio")
    full = [window for window in windows if window.size == WINDOW_SAMPLES]
    if not full:
        raise ValueError(f"--probe-audio {folder}: no recording there is 10 s long")
    return np.stack(full)


def waves_of(probes: np.ndarray, batch: int) -> np.ndarray:
    """`batch` probe waves, the probes repeated: [batch, 320000]."""
    return np.concatenate([probes] * (batch // len(probes) + 1))[:batch]


def time_rounds(
    contenders: list[Contender], probes: np.ndarray, batches: list[int], rounds: int, threads: int
) -> dict[str, Peak]:
    """Time every contender on every batch size, interleaved round by round so that a change of load slows them
    alike; returns the CPU's matmul peaks, the better of a probe before and one after."""
    from tqdm import tqdm

    peaks = matmul_peaks(threads=threads)
    for batch in batches:
        waves = waves_of(probes, batch)
        for contender in contenders:
            contender.times[batch] = []
        for _ in tqdm(range(rounds), desc=f"batch {batch}", unit="round"):
            for contender in contenders:
                started = time.perf_counter()
                contender.run(waves)
                contender.times[batch].append(time.perf_counter() - started)
    peaks_after = matmul_peaks(threads=threads)  # a second probe: how much the load moved while the contenders ran
    return {dtype: max(peaks[dtype], peaks_after[dtype], key=lambda p: p.rate) for dtype in peaks}


def print_tables(
    contenders: list[Contender], outputs: dict, batches: list[int], gflop: float, peaks: dict[str, Peak], threads: int
) -> None:
    """The speed table (per batch size, against the first contender, the reference) and the warm-up table."""
    from htsat_live.model.commands import top_k_agreement

    reference_out = outputs[contenders[0].name]
    achieved: dict[str, tuple[str, float]] = {}
    for contender in contenders:
        for batch in batches if not contender.on_gpu else ():
            rate = gflop * batch / statistics.median(contender.times[batch])
            if rate > achieved.get(contender.dtype, ("", 0.0))[1]:
                achieved[contender.dtype] = (contender.name, rate)
    peaks = peaks_above_contenders(peaks, achieved)
    print()
    print(
        f"matmul peak now (best of the torch and OpenVINO probes, before and after, {threads} threads): "
        + ", ".join(
            f"{dtype} {peak.rate:.0f} G{'OP' if dtype == 'int8' else 'FLOP'}/s ({peak.source}"
            + (", faster than every probe)" if peak.source not in ("torch", "openvino") else ")")
            for dtype, peak in peaks.items()
        )
    )
    print()
    print(
        f"{'contender':32s} {'batch':>5s} {'median ms':>9s} {'p95 ms':>7s} {'win/s':>6s} {'speed-up':>8s} "
        f"{'GFLOP/s':>7s} {'% peak':>6s}  {'framewise drift max / mean':>26s} {'budget':>6s}  top-5"
    )
    for batch in batches:
        base = statistics.median(contenders[0].times[batch]) / batch
        for contender in contenders:
            per_window = statistics.median(contender.times[batch]) / batch
            p95 = float(np.percentile(contender.times[batch], 95)) / batch
            rate = gflop / per_window
            drift = np.abs(outputs[contender.name] - reference_out)
            # clip-level scores: the framewise mean over time
            agreement, _ = top_k_agreement(outputs[contender.name].mean(axis=1), reference_out.mean(axis=1))
            share = "-" if contender.on_gpu else f"{rate / peaks[contender.dtype].rate * 100:5.0f}%"
            print(
                f"{contender.name:32s} {batch:5d} {per_window * 1000:9.1f} {p95 * 1000:7.1f} {1 / per_window:6.2f} "
                f"{base / per_window:7.2f}x {rate:7.0f} {share:>6s}  "
                f"{drift.max():12.2e} / {drift.mean():.2e} "
                f"{'ok' if within_budget(contender.dtype, drift) else 'over':>6s}  "
                f"{agreement:.3f}"
            )
    print()
    print(f"{'contender':32s} {'build s':>8s} {'first call ms':>13s} {'peak MiB added':>14s}")
    for contender in contenders:
        peak = "n/a" if contender.peak_mib is None else f"{contender.peak_mib:.0f}"
        print(
            f"{contender.name:32s} {contender.build_seconds:8.1f} {contender.first_call_seconds * 1000:13.0f} "
            f"{peak:>14s}"
        )


def _has_openvino() -> bool:
    from htsat_live.model.openvino import import_openvino

    try:
        import_openvino()
    except ValueError:
        print("htsat-live bench: openvino is not installed; its rows are left out", file=sys.stderr)
        return False
    return True


def cuda_contenders(checkpoint, path: str, onnx_path: Path) -> list[Contender]:
    """The GPU backends, where this machine has CUDA: the torch backend in fp32 and bf16, and ONNX Runtime's
    CUDA provider where it has one (on the graph at onnx_path, which the CPU contender exports first, or this
    one). Each call includes the host-to-device copy of the waves and the copy of the outputs back, as in the
    stream's worker (the copy back waits for the GPU to finish)."""
    import onnxruntime as ort
    import torch

    from htsat_live.model.checkpoint import build_model
    from htsat_live.model.onnx import OnnxBackend, export_onnx
    from htsat_live.model.predictor import PRECISIONS, TorchBackend

    if not torch.cuda.is_available():
        return []

    def torch_cuda(precision: str):
        backend = TorchBackend(build_model(checkpoint, path), "cuda", precision)
        return lambda w: backend.run(w, True)[1]

    def onnx_cuda():
        if not onnx_path.exists():  # bench --device cuda exports it here, with no CPU contender before it
            export_onnx(build_model(checkpoint, path), checkpoint, onnx_path)
        backend = OnnxBackend(onnx_path, "cuda")
        return lambda w: backend.run(w, True)[1]

    contenders = [
        Contender(f"torch {precision} cuda", precision, lambda p=precision: torch_cuda(p), on_gpu=True)
        for precision in PRECISIONS
    ]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        contenders.append(Contender("onnxruntime fp32 cuda", "fp32", onnx_cuda, on_gpu=True))
    return contenders


def run_ensemble_bench(paths: list[str], rounds: int, device: str = "cpu", backend: str = "auto") -> int:
    """Seconds per 10-s window of an ensemble and of its first member alone (batch 1, the median of `rounds`
    interleaved calls), printed with their ratio."""
    from htsat_live.model import load_model, members_of
    from htsat_live.model.commands import probe_waves

    try:
        ensemble = load_model(paths, device=device, backend=backend)
    except (OSError, ValueError) as error:
        print(f"htsat-live bench: {error}", file=sys.stderr)
        return 2
    first = members_of(ensemble)[0]
    wave = probe_waves(1)
    ensemble.predict(wave), first.predict(wave)  # warm-up
    times: dict[str, list[float]] = {"ensemble": [], "first": []}
    for _ in range(max(1, rounds)):
        for name, model in (("ensemble", ensemble), ("first", first)):
            started = time.perf_counter()
            model.predict(wave)
            times[name].append(time.perf_counter() - started)
    each, one = (float(np.median(times[name])) for name in ("ensemble", "first"))
    print(
        f"ensemble of {len(paths)} models ({' + '.join(map(str, paths))}), {backend_line(ensemble, device)}, batch 1, "
        f"{rounds} rounds:"
    )
    print(f"  ensemble      {each * 1000:8.1f} ms per window")
    print(f"  first member  {one * 1000:8.1f} ms per window ({first.source})")
    print(f"  ratio         {each / one:8.2f}x")
    return 0
