"""`htsat-live bench --stream --events-per-hour N`: the live pipeline on streams that are mostly quiet.

Each stream is white noise at NOISE_DBFS (a quiet room through a microphone) with bursts of real sound: 1 to
5 s cut from the demo recording at random places, put at random times (seeded: BURST_SEED). A run of
S streams for L seconds holds round(N * L * S / 3600) bursts, spread over the streams at random, so that the
load is the one N events per hour give however short the run. With `--gate-dbfs DBFS` the pipeline runs with
`windows.gate_dbfs` at that level, and windows that hold only the noise are not run (docs/live.md).

For each hop:
1. fast: S streams (`--streams`) fed as fast as inference takes them: the real-time factor, and the share of
   windows gated; its integer part is the first stream count checked;
2. real time: that many streams played together for `--seconds`, then more (a quarter more while sustained) or
   fewer (a quarter fewer until sustained): sustained means no skipped window, no ring overrun and a hop
   latency p95 (of the windows run through the model) under the hop; prints the most streams sustained;
3. with the gate: the burst events check. One stream of CHECK_SECONDS with CHECK_BURSTS bursts is fed fast
   with and without the gate; the events that end on a burst (their extent overlaps it) must be the same
   (target, onset, offset, peak, mean) in both runs; prints how many match.
"""

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from htsat_live.evaluation.stream_bench import _seconds, run_fast, run_real_time
from htsat_live.model.embedded import DEMO_RECORDING

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
    """The runs above; 1 when the burst events differ with the gate, else 0."""
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
    fewer until sustained, at most MAX_CHECKS runs; 0 when not even one."""
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
        step = max(1, streams // 4)
        following = streams + step if ok else streams - step
        if worst is not None:
            following = min(following, worst - 1)
        if following <= best or following < 1 or (worst is not None and worst - best <= 1):
            break
        streams = following
    return best


def check_burst_events(model, hop: float, gate_dbfs: float, seed: int, folder: Path, demo: np.ndarray) -> bool:
    """One stream with CHECK_BURSTS bursts fed fast without and with the gate: the events on the bursts match."""
    from htsat_live.stream.output import Listener

    (path,), (bursts,) = quiet_streams(1, CHECK_SECONDS, CHECK_BURSTS, folder, seed + 1, demo)
    found = {}
    for gate in (None, gate_dbfs):
        ended = []

        def keep(topic, stream, body, ended=ended):
            if topic == "event" and body["state"] == "end" and not body["cancelled"]:
                ended.append(body)

        run = run_fast(model, [path], hop, 1, gate_dbfs=gate, outputs=[Listener(keep)])
        on_bursts = sorted(
            (event["label"], event["onset_frame"], event["offset_frame"], event["peak"], event["mean"])
            for event in ended
            if any(event["onset"] < burst.stop and burst.start < event["offset"] for burst in bursts)
        )
        found[gate] = (on_bursts, len(ended) - len(on_bursts), run)
    (plain, plain_rest, _), (gated, gated_rest, run) = found[None], found[gate_dbfs]
    same = len(set(plain) & set(gated))
    match = plain == gated
    print(
        f"burst events (1 stream, {CHECK_SECONDS:g} s, {len(bursts)} bursts, hop {hop:g} s, fed fast): without the "
        f"gate {len(plain)}, with it {len(gated)}, the same in both {same} -> "
        f"{'match' if match else 'DIFFER'}; events off the bursts {plain_rest} without, {gated_rest} with the gate; "
        f"windows gated {run.gated} of {run.gated + run.windows}",
        flush=True,
    )
    return match
