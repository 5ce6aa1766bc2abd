"""`htsat-live bench --soak HOURS`: hours of varied audio through the whole live pipeline, as fast as
inference allows, with every sink and the publisher on; then the books are checked.

The audio is made as it is fed (`SoakSource`): the demo recording looped at shifting offsets and gains,
with minutes of silence, of clipping and of NaN bursts mixed in. At every simulated minute the run
samples the process (RSS, open file descriptors, threads), the inference queue, the hop latency and the
counters into a CSV, and plots them (PNG). At the end it checks that no event was lost: every JSONL
start has an end; the TSV, the Audacity labels, the event history and the clips (written, skipped by
the disk cap, or dropped by the privacy filter) agree with the JSONL ends that were not cancelled; the
stream's counters agree with the sinks and the source.
"""

import csv
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from htsat_live.evaluation.stream_bench import rss_mib
from htsat_live.model import DEMO_RECORDING, SAMPLE_RATE, Conditioner, read_clip
from htsat_live.stream.capture import Source
from htsat_live.stream.status import percentile

MINUTE = 60 * SAMPLE_RATE
BLOCK = SAMPLE_RATE // 2  # samples per block fed to the ring
WARM_UP_MINUTES = 10  # left out of the first-hour memory figure
CLIPS_MAX_MB = 50.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class SoakSource(Source):
    """`minutes` of audio made minute by minute from `recording` (32 kHz mono): mostly the recording from a
    random offset at a random gain, else silence, clipping (gain x8 past full scale) or NaN bursts. Fed as
    fast as the consumer takes it (the ring's `consumer_position`); `on_minute(minute)` runs after each minute."""

    def __init__(self, recording: np.ndarray, minutes: int, on_minute, seed: int = 0):
        super().__init__("soak")
        self.recording = recording
        self.minutes = minutes
        self.on_minute = on_minute
        self.seed = seed
        self.stats.input_rate = SAMPLE_RATE
        self.stats.input_channels = 1

    def minute_of_audio(self, rng: np.random.Generator) -> np.ndarray:
        kind = rng.choice(["recording", "silence", "clipping", "nan"], p=[0.7, 0.1, 0.1, 0.1])
        if kind == "silence":
            return np.zeros(MINUTE, np.float32)
        start = int(rng.integers(len(self.recording)))
        audio = np.resize(np.roll(self.recording, -start), MINUTE) * np.float32(10 ** (rng.uniform(-20, 6) / 20))
        if kind == "clipping":
            audio = np.clip(audio * 8, -1.2, 1.2)  # past full scale, as an overdriven input delivers it
        if kind == "nan":
            for burst in rng.integers(0, MINUTE - 320, size=20):
                audio[burst : burst + 320] = np.nan  # 10-ms bursts of a broken driver
        return audio.astype(np.float32)

    def _blocks(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        for _ in range(self.minutes):
            audio = self.minute_of_audio(rng)
            yield from (audio[start : start + BLOCK] for start in range(0, MINUTE, BLOCK))

    def _run(self) -> None:
        self.stats.state = "running"
        conditioner = Conditioner(SAMPLE_RATE, self.stats)  # zeroes and counts NaN, counts clipping
        for block in self._blocks():
            samples = conditioner.process(block)
            self._follow_consumer(samples.size)
            if self._stop.is_set():
                return
            self._write(samples)
            if self.stats.samples % MINUTE == 0:
                self.on_minute(self.stats.samples // MINUTE)
        self.stats.state = "ended"


@dataclass
class SoakResult:
    minutes: int
    wall_seconds: float
    rows: list[dict]
    events: int  # starts reported
    real_events: int  # ends not cancelled
    problems: list[str]  # lost or inconsistent records; empty when the books agree

    def flatness(self, key: str) -> tuple[float | None, float | None, float | None]:
        """Median of `key` over the first hour after warm-up and over the last hour (runs of two hours or
        more), and the relative change between them."""

        def median(rows):
            return float(np.median([row[key] for row in rows])) if rows else None

        first = median([row for row in self.rows if WARM_UP_MINUTES < row["minute"] <= 60])
        last = median([row for row in self.rows if row["minute"] > self.minutes - 60]) if self.minutes >= 120 else None
        return first, last, None if first is None or last is None else last / first - 1


def run_soak(model, minutes: int, out_dir: Path, hop: float = 1.25, seed: int = 0, progress: bool = True) -> SoakResult:
    """Feed `minutes` of soak audio through a pipeline with every sink and the publisher on."""
    from tqdm import tqdm

    from htsat_live.stream.config import load_config, with_overrides
    from htsat_live.stream.outputs.event_store import EventStore
    from htsat_live.stream.outputs.publish import Publisher
    from htsat_live.stream.outputs.sinks import Sinks
    from htsat_live.stream.pipeline import Pipeline
    from htsat_live.stream.status import output_sections

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("events.jsonl", "events.tsv", "labels.txt", "events.db", "events.db-wal", "events.db-shm"):
        (out_dir / stale).unlink(missing_ok=True)
    config = with_overrides(
        load_config(None),
        {
            "windows.hop": hop,
            "source.fast": True,
            "publish.bind": "tcp://127.0.0.1:*",
            "sinks.jsonl": str(out_dir / "events.jsonl"),
            "sinks.tsv": str(out_dir / "events.tsv"),
            "sinks.audacity": str(out_dir / "labels.txt"),
            "sinks.clips_dir": str(out_dir / "clips"),
            "sinks.clips_max_mb": CLIPS_MAX_MB,
        },
    )
    rows: list[dict] = []
    bar = tqdm(total=minutes, desc="soak", unit="audio min", disable=not progress)
    started = time.monotonic()

    def sample(minute: int) -> None:  # on the source's thread, while the pipeline below runs: reads counters only
        runner = pipeline.runners[0]
        report, windows = runner.report, pipeline.worker.counters(runner.name)
        rows.append(
            {
                "minute": minute,
                "wall_seconds": round(time.monotonic() - started, 2),
                "rss_mib": round(rss_mib(), 1),
                "fds": open_fds(),
                "threads": threading.active_count(),
                "queue": pipeline.worker.pending(),
                "hop_latency_p50": percentile(list(report.hop_latencies), 50),
                "windows": windows.processed,
                "skipped_windows": windows.skipped,
                "failed_windows": windows.failed,
                "events": report.events,
                "nonfinite_samples": runner.source.stats.nonfinite_samples,
            }
        )
        bar.update(1)

    recording = read_clip(DEMO_RECORDING)
    source = SoakSource(recording, minutes, sample, seed)
    store = EventStore(out_dir / "events.db")
    outputs = [store, Sinks.from_config(config.sinks, store.clip_saved), Publisher.from_config(config.publish)]
    pipeline = Pipeline(config, model, inputs=[source], outputs=outputs)
    pipeline.start()
    pipeline.wait()
    report = next(iter(pipeline.stop().values()))
    bar.close()
    wall = time.monotonic() - started
    reports = [json.loads(line) for line in (out_dir / "events.jsonl").read_text().splitlines()]
    problems = check_books(out_dir, reports, report, source, output_sections(outputs)["sinks"], minutes)
    real = sum(1 for r in reports if r["state"] == "end" and not r["cancelled"])
    result = SoakResult(minutes, wall, rows, report.events, real, problems)
    write_csv(out_dir / "soak.csv", rows)
    plot(out_dir / "soak.png", rows)
    return result


def check_books(
    out_dir: Path, reports: list[dict], report, source: SoakSource, counts: dict, minutes: int
) -> list[str]:
    """What does not add up between the JSONL (its `reports`), the other sinks (and `counts`, their counters
    as `status` shows them under `sinks`), the stream's counters and the source."""
    problems = []
    starts = {r["id"] for r in reports if r["state"] == "start"}
    ends = [r for r in reports if r["state"] == "end"]
    real = [r for r in ends if not r["cancelled"]]
    if starts != {r["id"] for r in ends}:
        problems.append(f"{len(starts - {r['id'] for r in ends})} started events have no end")
    tsv_rows = (out_dir / "events.tsv").read_text().splitlines()[1:]
    if len(tsv_rows) != len(real):
        problems.append(f"TSV holds {len(tsv_rows)} events, the JSONL {len(real)} ends")
    labels = (out_dir / "labels.txt").read_text().splitlines()
    if len(labels) != len(real):
        problems.append(f"Audacity labels hold {len(labels)} events, the JSONL {len(real)} ends")
    history = history_rows(out_dir / "events.db")
    if sorted(history) != sorted((r["stream"], r["id"], r["label"], r["onset"], r["offset"]) for r in real):
        problems.append(f"the event history holds {len(history)} events, the JSONL {len(real)} ends")
    clips = (
        counts["clips_written"]
        + counts["clips_skipped"]
        + counts["clips_dir_failures"]
        + counts.get("clips_privacy_dropped", 0)
    )
    if clips != len(real):
        problems.append(f"{clips} clips written or skipped for {len(real)} ended events")
    failures = {key: value for key, value in counts.items() if key.endswith("_failures") and value}
    if failures:
        problems.append(f"sink write failures: {failures}")
    if report.events != len(starts):
        problems.append(f"the stream counted {report.events} starts, the JSONL holds {len(starts)}")
    if report.samples != source.stats.samples or source.stats.samples != minutes * MINUTE:
        problems.append(f"samples: fed {minutes * MINUTE}, source {source.stats.samples}, stream {report.samples}")
    if report.skipped_windows or report.failed_windows:
        problems.append(f"windows lost: {report.skipped_windows} skipped, {report.failed_windows} failed")
    return problems


def history_rows(path: Path) -> list[tuple]:
    """(stream, id, label, onset, offset) of every event in the history file."""
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT stream, event_id, label, onset, offset FROM events").fetchall()


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["minute"])
        writer.writeheader()
        writer.writerows(rows)


def plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    hours = [row["minute"] / 60 for row in rows]
    panels = [
        ("rss_mib", "RSS (MiB)"),
        ("fds", "open fds"),
        ("threads", "threads"),
        ("queue", "inference queue"),
        ("hop_latency_p50", "hop latency p50 (s)"),
    ]
    figure, axes = pyplot.subplots(len(panels), 1, figsize=(9, 2.0 * len(panels)), sharex=True)
    for axis, (key, title) in zip(axes, panels):
        axis.plot(hours, [row[key] if row[key] is not None else np.nan for row in rows], linewidth=1)
        axis.set_ylabel(title, fontsize=8)
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("audio fed (hours)")
    figure.suptitle("htsat-live bench --soak")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def run_soak_bench(args) -> int:
    """`htsat-live bench --soak HOURS [--model M] [--hop S] [--soak-dir DIR]`."""
    from htsat_live.stream.building import load_model_or_explain

    if find_spec("matplotlib") is None:  # asked before hours of audio, not after
        print(
            "htsat-live bench: --soak draws soak.png with matplotlib, from the [eval] extra: "
            "pip install 'htsat-live[eval]'",
            file=sys.stderr,
        )
        return 2
    model = load_model_or_explain(args.model, "cpu")
    if model is None:
        return 2
    minutes = max(1, round(args.soak * 60))
    out_dir = Path(args.soak_dir)
    result = run_soak(model, minutes, out_dir, hop=args.hop[0])
    print(
        f"soak: {minutes / 60:.2f} h of audio in {result.wall_seconds / 60:.1f} min "
        f"({minutes * 60 / result.wall_seconds:.0f}x real time), {result.events} events started, "
        f"{result.real_events} ended"
    )
    for key, unit in (("rss_mib", " MiB"), ("fds", "")):
        first, last, change = result.flatness(key)
        if first is not None:
            later = "" if last is None else f", last hour {last:.1f}{unit} ({100 * change:+.1f} %)"
            print(f"{key}: first hour after warm-up {first:.1f}{unit}{later}")
    print(
        f"inference queue max {max(row['queue'] for row in result.rows)}, threads "
        f"{min(row['threads'] for row in result.rows)}..{max(row['threads'] for row in result.rows)}"
    )
    print(f"wrote {out_dir / 'soak.csv'} and {out_dir / 'soak.png'}")
    if result.problems:
        for problem in result.problems:
            print(f"LOST OR INCONSISTENT: {problem}")
        return 1
    print("no lost events: every start has an end; TSV, labels and clips agree with the JSONL; counters agree")
    return 0
