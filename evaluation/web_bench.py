"""`htsat-live bench --stream --web-clients N`: what the browser view (stream.outputs.web) costs the detector.

The recording is fed as fast as the pipeline takes it, three ways, interleaved `--rounds` times: without the view,
with the view and no browser, and with the view and N browsers reading its live stream (N SSE readers in a
process of their own, as browsers on other machines would be). For each way it prints the real-time factor of the
whole pipeline (median over the rounds), the CPU time of the view's server thread (read from
/proc/self/task/TID/stat) per minute of audio, and what the view sent and dropped; then the cost of one browser:
the server thread's extra CPU per minute of audio, and the real-time factor lost, divided by N.
"""

import asyncio
import multiprocessing
import os
import statistics
import sys
import time

CONNECT_WAIT_S = 30.0  # for the browsers to connect


def thread_cpu_seconds(native_id: int) -> float:
    """User + system CPU seconds of one thread of this process (Linux)."""
    with open(f"/proc/self/task/{native_id}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15 of stat)


def read_live(url: str, clients: int, connected, stop) -> None:
    """In a process of its own: `clients` readers of `url`, each reading its SSE stream until `stop` is set."""
    import aiohttp

    async def reader(session: aiohttp.ClientSession) -> None:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
            connected.release()
            while not stop.is_set():
                try:
                    await asyncio.wait_for(response.content.readany(), 0.5)
                except TimeoutError:
                    continue

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(reader(session) for _ in range(clients)), return_exceptions=True)

    asyncio.run(main())


def fast_run(model, recording: str, hop: float, clients: int | None) -> dict:
    """One fast-fed run; `clients` None: no view; else the view with that many browsers."""
    from htsat_live.model import SAMPLE_RATE
    from htsat_live.stream.config import load_config, with_overrides
    from htsat_live.stream.outputs.web import WebView
    from htsat_live.stream.pipeline import Pipeline

    config = with_overrides(
        load_config(None),
        {"windows.hop": hop, "source.fast": True, "publish.enabled": False, "store.path": ""},
    )
    view = None if clients is None else WebView("127.0.0.1", 0)
    readers = None
    try:
        if clients:
            context = multiprocessing.get_context("spawn")
            connected, stop = context.Semaphore(0), context.Event()
            readers = context.Process(target=read_live, args=(view.url + "live", clients, connected, stop))
            readers.start()
            deadline = time.monotonic() + CONNECT_WAIT_S
            while view.counters()["clients"] < clients:
                if time.monotonic() > deadline or not readers.is_alive():
                    raise RuntimeError(f"{clients} browsers did not connect to the view within {CONNECT_WAIT_S:g} s")
                time.sleep(0.05)
        cpu_before = 0.0 if view is None else thread_cpu_seconds(view.server_thread_id)
        pipeline = Pipeline(config, model, [recording], outputs=[] if view is None else [view])
        started = time.perf_counter()
        pipeline.start()
        pipeline.wait()
        wall = time.perf_counter() - started
        cpu = 0.0 if view is None else thread_cpu_seconds(view.server_thread_id) - cpu_before
        reports = pipeline.stop()  # closes its outputs: the view's thread ends
        audio = sum(report.samples for report in reports.values()) / SAMPLE_RATE
        counters = {} if view is None else view.counters()
    finally:
        if readers is not None:
            stop.set()
            readers.join(timeout=10)
            if readers.is_alive():
                readers.terminate()
        if view is not None:
            view.close()
    return {"rtf": audio / wall, "cpu_per_minute": cpu / audio * 60, "audio": audio, **counters}


def run_web_bench(args) -> int:
    """Print the three ways' figures and the cost of one browser (module docstring)."""
    import soundfile
    import torch

    from htsat_live.model import DEMO_RECORDING, load_model

    clients = args.web_clients
    recording = getattr(args, "recording", None) or str(DEMO_RECORDING)
    hop = (getattr(args, "hop", None) or [1.25])[0]
    rounds = max(1, min(args.rounds, 5))
    if clients < 1:
        print("htsat-live bench: --web-clients must be at least 1")
        return 2
    try:
        model = load_model(
            args.model, device=args.device or "cpu", backend=args.backend or "auto", precision=args.precision or "fp32"
        )
        length = soundfile.info(recording).duration
    except (OSError, ValueError, RuntimeError) as error:
        print(f"htsat-live bench --stream --web-clients: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"web bench: {args.model or 'the embedded model'} ({model.backend.name}), recording {recording} "
        f"({length:.1f} s) fed fast, hop {hop:g} s, {rounds} rounds, {os.cpu_count()} CPUs",
        flush=True,
    )
    ways = {"no view": None, "view, no browser": 0, f"view, {clients} browsers": clients}
    results: dict[str, list[dict]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, readers in ways.items():
            results[name].append(fast_run(model, recording, hop, readers))
    medians = {}
    for name, runs in results.items():
        medians[name] = {key: statistics.median(run[key] for run in runs) for key in ("rtf", "cpu_per_minute")}
        line = f"{name}: real-time factor {medians[name]['rtf']:.2f}"
        if ways[name] is not None:
            line += (
                f", view thread CPU {medians[name]['cpu_per_minute'] * 1000:.0f} ms per minute of audio, "
                f"sent {runs[-1]['sent']}, dropped {runs[-1]['dropped'] + runs[-1]['backlog_dropped']}"
            )
        print(line, flush=True)
    alone, served = medians["view, no browser"], medians[f"view, {clients} browsers"]
    extra_cpu = (served["cpu_per_minute"] - alone["cpu_per_minute"]) / clients
    lost = (1 - served["rtf"] / alone["rtf"]) / clients * 100
    print(
        f"per browser: view thread CPU {extra_cpu * 1000:+.1f} ms per minute of audio "
        f"({extra_cpu / 60 * 100:.3f}% of one core at real time), real-time factor {-lost:+.2f}%",
        flush=True,
    )
    return 0
