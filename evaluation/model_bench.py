"""`htsat-live bench`: inference speed of every backend against the official op-for-op eager model.

All contenders share one set of weights (the checkpoint given, or the full-size architecture with seeded
random weights) and are timed in the same run, interleaved round by round, so that a shared, noisy machine
slows them alike. Each row gives ms per 10-s window (median over rounds), windows/s, the speed-up over the
reference at the same batch size, and the drift of its framewise output from the reference's. On a machine
with CUDA the GPU backends join them (torch fp32 and bf16, ONNX Runtime's CUDA provider where installed).
"""

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass
class Contender:
    name: str
    run: Callable[[np.ndarray], np.ndarray]  # waves [B, 320000] -> framewise [B, 1024, C]
    times: dict  # batch size -> list of seconds per call


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="checkpoint to time (default: full-size architecture, random weights)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per batch size")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="batch sizes")
    parser.add_argument("--threads", type=int, default=None, help="torch/ORT threads (default: torch's default)")
    parser.add_argument("--stream", action="store_true", help="benchmark the live pipeline instead (evaluation/stream_bench.py)")
    parser.add_argument("--hop", type=float, nargs="+", default=[1.25, 1.0], help="--stream: hops to run")
    parser.add_argument("--seconds", type=float, default=60.0, help="--stream: length of the real-time run")
    parser.add_argument("--soak", type=float, default=None, metavar="HOURS",
                        help="feed HOURS of varied audio through the whole pipeline as fast as inference allows, "
                             "sample memory, fds, threads, queues and latency every audio minute, and check that no "
                             "event was lost (default model: the embedded one)")
    parser.add_argument("--soak-dir", default="soak", help="--soak: folder for its sinks, soak.csv and soak.png")


def run(args: argparse.Namespace) -> int:
    if args.soak is not None:
        from htsat_live.evaluation.soak import run_soak_bench

        return run_soak_bench(args)
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
    from htsat_live.model.commands import probe_waves, top_k_agreement
    from htsat_live.model.htsat import HTSAT, HTSATConfig
    from htsat_live.model.onnx import OnnxBackend, export_onnx

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model and str(args.model).endswith(".onnx"):
        print("htsat-live bench: every backend is timed against the official forward, which needs the weights: give "
              "the checkpoint the .onnx graph was exported from (or time the graph live: bench --stream --model X.onnx)",
              file=sys.stderr)
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
        torch.manual_seed(0)
        config = HTSATConfig()
        model = HTSAT(config).eval()
        checkpoint = Checkpoint(config, model.state_dict(), default_labels(config.num_classes))
        described = "full-size HTS-AT (random weights)"
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: {described}, {parameters / 1e6:.1f} M parameters, torch threads {torch.get_num_threads()}")

    workdir = Path(tempfile.mkdtemp(prefix="htsat-bench-"))
    with tqdm(total=2, desc="exporting ONNX fp32 + int8", unit="graph") as progress:
        fp32_path = export_onnx(model, checkpoint, workdir / "model.onnx")
        progress.update()
        int8_path = export_onnx(model, checkpoint, workdir / "model.int8.onnx", int8=True)
        progress.update()

    reference = ReferenceHTSAT(model)
    bf16_model = HTSAT(model.config).eval()
    bf16_model.load_state_dict(model.state_dict())
    bf16_model.to_bf16()
    onnx_fp32 = OnnxBackend(fp32_path, "cpu")
    onnx_int8 = OnnxBackend(int8_path, "cpu")

    def torch_runner(module):
        def call(waves):
            with torch.inference_mode():
                return module(torch.from_numpy(waves), tile_short=True)[1].float().numpy()
        return call

    contenders = [
        Contender("reference (official ops, eager)", lambda w: reference(torch.from_numpy(w))[1].numpy(), {}),
        Contender("torch fp32", torch_runner(model), {}),
        Contender("torch bf16", torch_runner(bf16_model), {}),
        Contender("onnxruntime fp32", lambda w: onnx_fp32.run(w, True)[1], {}),
        Contender("onnxruntime int8", lambda w: onnx_int8.run(w, True)[1], {}),
    ]
    contenders += cuda_contenders(checkpoint, args.model or "random weights", fp32_path)
    probes = probe_waves(4)
    outputs = {c.name: c.run(probes) for c in contenders}  # also warms every contender up
    for batch in args.batch:
        waves = np.concatenate([probes] * (batch // len(probes) + 1))[:batch]
        for contender in contenders:
            contender.run(waves)
            contender.times[batch] = []
        for _ in tqdm(range(args.rounds), desc=f"batch {batch}", unit="round"):
            for contender in contenders:
                started = time.perf_counter()
                contender.run(waves)
                contender.times[batch].append(time.perf_counter() - started)

    reference_out = outputs[contenders[0].name]
    print()
    print(f"{'contender':34s} {'batch':>5s} {'ms/window':>10s} {'windows/s':>10s} {'speed-up':>9s}  "
          f"{'framewise drift max / mean':>27s}  top-5")
    for batch in args.batch:
        base = statistics.median(contenders[0].times[batch]) / batch
        for contender in contenders:
            per_window = statistics.median(contender.times[batch]) / batch
            drift = np.abs(outputs[contender.name] - reference_out)
            # clip-level scores: the framewise mean over time
            agreement, _ = top_k_agreement(outputs[contender.name].mean(axis=1), reference_out.mean(axis=1))
            print(f"{contender.name:34s} {batch:5d} {per_window * 1000:10.1f} {1 / per_window:10.2f} "
                  f"{base / per_window:8.2f}x  {drift.max():13.2e} / {drift.mean():.2e}  {agreement:.3f}")
    return 0


def cuda_contenders(checkpoint, path: str, onnx_path: Path) -> list[Contender]:
    """The GPU backends, where this machine has CUDA: the torch backend in fp32 and bf16, and ONNX Runtime's
    CUDA provider where it has one. Each call includes the host-to-device copy of the waves and the copy of
    the outputs back, as in the stream's worker (the copy back waits for the GPU to finish)."""
    import onnxruntime as ort
    import torch

    from htsat_live.model.checkpoint import build_model
    from htsat_live.model.onnx import OnnxBackend
    from htsat_live.model.predictor import PRECISIONS, TorchBackend

    if not torch.cuda.is_available():
        return []
    contenders = []
    for precision in PRECISIONS:
        backend = TorchBackend(build_model(checkpoint, path), "cuda", precision)
        contenders.append(Contender(f"torch {precision} cuda", lambda w, b=backend: b.run(w, True)[1], {}))
    if "CUDAExecutionProvider" in ort.get_available_providers():
        onnx_cuda = OnnxBackend(onnx_path, "cuda")
        contenders.append(Contender("onnxruntime fp32 cuda", lambda w: onnx_cuda.run(w, True)[1], {}))
    return contenders

