"""Redraw rate of the visualiser while the pipeline runs in the same process.

    python -m htsat_live.gui.bench [--model PATH] [--warmup 60] [--measure 20]

A synthetic recording is played in real time through the real pipeline (hop 1 s, every class sent
in each `scores` message) into the window, offscreen unless a display is set. After `--warmup`
seconds (enough to fill the 60-s history) the window is redrawn and painted as fast as it can for
`--measure` seconds; the figures printed are frames per second, frame times, and how the pipeline
kept up meanwhile.

Without `--model` the model is the full-size 527-class HTS-AT with untrained (seeded random)
weights: the same message sizes and inference cost as a trained AudioSet model, for timing only.
Untrained scores hover near 0.5, so the event threshold defaults to 0.8 to keep events sparse.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from htsat_live.model.timebase import SAMPLE_RATE

GOAL_FPS = 20.0


def synthetic_recording(path: Path, seconds: float) -> None:
    """Noise with tone sweeps and bursts, so every panel has something to draw."""
    import soundfile

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = 0.02 * rng.standard_normal(len(t))
    wave += 0.2 * np.sin(2 * np.pi * (400 + 300 * np.sin(2 * np.pi * t / 7)) * t) * (np.sin(2 * np.pi * t / 11) > 0)
    wave += 0.3 * rng.standard_normal(len(t)) * ((t % 5) < 0.4)
    soundfile.write(path, wave.astype(np.float32), SAMPLE_RATE, subtype="FLOAT")


def random_full_size_model(path: Path) -> Path:
    """The full-size AudioSet architecture (527 classes) with seeded random weights, saved at `path`."""
    import torch

    from htsat_live.model.checkpoint import audioset_labels, save_checkpoint
    from htsat_live.model.htsat import HTSAT, HTSATConfig

    torch.manual_seed(0)
    save_checkpoint(
        path, HTSAT(HTSATConfig()).eval(), audioset_labels(), provenance={"weights": "random, for timing only"}
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m htsat_live.gui.bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="checkpoint (default: full-size 527-class HTS-AT with random weights)"
    )
    parser.add_argument("--hop", type=float, default=1.0, help="pipeline hop in seconds")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of live audio before measuring")
    parser.add_argument("--measure", type=float, default=20.0, help="seconds of redrawing measured")
    parser.add_argument("--classes", type=int, default=8, help="heatmap rows")
    parser.add_argument(
        "--threshold", type=float, default=0.8, help="event threshold for a model without thresholds of its own"
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtWidgets import QApplication

    from htsat_live.gui.live_data import LiveData
    from htsat_live.gui.local_source import LocalSource
    from htsat_live.gui.receiver import Receiver
    from htsat_live.gui.window import LiveWindow
    from htsat_live.stream.building import load_model_or_explain
    from htsat_live.stream.config import load_config, with_overrides
    from htsat_live.stream.output import Listener
    from htsat_live.stream.pipeline import Pipeline

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as folder:
        model_path = args.model or random_full_size_model(Path(folder) / "random.safetensors")
        model = load_model_or_explain(model_path, "cpu", "torch")
        if model is None:
            return 2
        recording = Path(folder) / "bench.wav"
        synthetic_recording(recording, args.warmup + args.measure + 15)
        config = with_overrides(
            load_config(None),
            {
                "publish.enabled": False,
                "publish.top_k": 0,
                "windows.hop": args.hop,
                "source.fast": False,
                "events.threshold": args.threshold,
            },
        )
        source = LocalSource()
        source.attach(Pipeline(config, model, [str(recording)], outputs=[Listener(source.listen)]))
        live = LiveData()
        receiver = Receiver(source, live)
        window = LiveWindow(live, "bench", span_seconds=60, top_n=args.classes)
        window.resize(1600, 900)
        window.timer.stop()  # redrawn below, as fast as it goes
        receiver.start()
        window.show()
        try:
            print(f"warming up: {args.warmup:g} s of live audio into the 60-s history ...", flush=True)
            deadline = time.monotonic() + args.warmup
            while time.monotonic() < deadline:
                app.processEvents()
                window.redraw()
                time.sleep(0.01)
            status_before = dict(live.status)
            frame_times = []
            start = time.perf_counter()
            while time.perf_counter() - start < args.measure:
                begin = time.perf_counter()
                window.redraw(force=True)
                app.processEvents()  # paints what the redraw changed; the receiver's poll runs here too
                frame_times.append(time.perf_counter() - begin)
            elapsed = time.perf_counter() - start
            status_after = dict(live.status)
        finally:
            receiver.stop()
            window.close()
    report(args, model, live, frame_times, elapsed, status_before, status_after)
    return 0


def report(args, model, live, frame_times, elapsed, status_before, status_after) -> None:
    times = np.asarray(frame_times) * 1000
    fps = len(frame_times) / elapsed
    counters_before, counters_after = status_before.get("counters", {}), status_after.get("counters", {})
    windows = counters_after.get("windows", 0) - counters_before.get("windows", 0)
    skipped = counters_after.get("skipped_windows", 0) - counters_before.get("skipped_windows", 0)
    events = counters_after.get("events", 0) - counters_before.get("events", 0)
    latency = status_after.get("latency", {})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    weights = "random weights" if args.model is None else args.model
    print(
        f"model: {model.num_classes} classes ({weights}), all sent in every scores message; "
        f"{min(live.now, live.history_seconds):.0f} s of the {live.history_seconds:g}-s history filled and shown "
        f"(span 60 s), {args.classes} heatmap rows, window 1600x900"
    )
    print(
        f"pipeline: hop {args.hop:g} s, torch on cpu, audio paced in real time; {cores} CPU cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"redraw: {len(frame_times)} frames in {elapsed:.1f} s = {fps:.1f} fps; frame time "
        f"p50 {np.percentile(times, 50):.1f} ms, p95 {np.percentile(times, 95):.1f} ms, max {times.max():.1f} ms"
    )
    print(
        f"pipeline meanwhile: {windows} windows, {skipped} skipped, {events} events started, hop latency p50 "
        f"{latency.get('hop_p50')} s, p95 {latency.get('hop_p95')} s; messages lost {live.counts.missed}"
    )
    print(f"goal >= {GOAL_FPS:g} fps: {'met' if fps >= GOAL_FPS else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
