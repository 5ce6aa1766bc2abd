"""The Prometheus endpoint, scraped over real HTTP while a pipeline runs."""

import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile

from htsat_live.model import SAMPLE_RATE, load_model
from htsat_live.stream.config import MetricsConfig, load_config, with_overrides
from htsat_live.stream.messages import Message
from htsat_live.stream.outputs.prometheus import PrometheusMetrics, listen_address
from htsat_live.stream.pipeline import Pipeline


def scrape(port: int) -> dict[str, float]:
    """The samples of a scrape: 'name{labels}' -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_a_scrape_during_a_run_shows_counters_levels_latencies_and_events(tmp_path, tiny_checkpoint, wait_until):
    noise = (0.1 * np.random.default_rng(0).standard_normal(20 * SAMPLE_RATE)).astype(np.float32)
    soundfile.write(tmp_path / "noise.wav", noise, SAMPLE_RATE)
    config = with_overrides(
        load_config(None),
        {"publish.enabled": False, "events.threshold": 0.05, "metrics.bind": "127.0.0.1:0", "windows.hop": 1.0},
    )
    metrics = PrometheusMetrics.from_config(config.metrics)
    pipeline = Pipeline(config, load_model(tiny_checkpoint), [str(tmp_path / "noise.wav")], outputs=[metrics])
    pipeline.start()  # paced in real time: the scrapes below happen while it runs
    try:
        wait_until(
            lambda: scrape(metrics.port).get('htsat_live_windows_total{stream="noise.wav"}', 0) >= 3,
            60,
            "three windows counted",
        )
        wait_until(
            lambda: any(name.startswith("htsat_live_events_total") for name in scrape(metrics.port)),
            60,
            "an event counted",
        )
        during = scrape(metrics.port)
        assert not pipeline.wait(0), "the stream ended before the scrape"
    finally:
        report = pipeline.stop()["noise.wav"]
    for name in ("skipped_windows", "failed_windows", "ring_overruns", "input_overflows", "reconnects"):
        assert during[f'htsat_live_{name}_total{{stream="noise.wav"}}'] == 0
    assert -30 < during['htsat_live_input_level_dbfs{stream="noise.wav"}'] < -10  # RMS 0.1 = -20 dBFS
    assert during['htsat_live_hop_latency_seconds_count{stream="noise.wav"}'] >= 3
    assert during['htsat_live_hop_latency_seconds_bucket{le="+Inf",stream="noise.wav"}'] >= 3
    starts = sum(v for k, v in during.items() if k.startswith("htsat_live_events_total") and 'state="start"' in k)
    assert 1 <= starts <= report.events
    assert during['htsat_live_event_latency_seconds_count{kind="provisional",stream="noise.wav"}'] == starts
    with pytest.raises(urllib.error.URLError):  # the pipeline closed the endpoint
        scrape(metrics.port)


def test_the_mqtt_queue_and_drops_and_the_failed_windows_come_from_the_status(wait_until):
    metrics = PrometheusMetrics("127.0.0.1", 0)
    try:
        status = {
            "counters": {
                **dict.fromkeys(
                    ("windows", "skipped_windows", "gated_windows", "overruns", "input_overflows", "reconnects"), 0
                ),
                "failed_windows": 3,
            },
            "level_dbfs": -40.0,
            "mqtt": {"connected": False, "queue": 17, "sent": 3, "dropped": 5, "reconnects": 1, "error": None},
        }
        metrics.handle(Message("status", "mic", status))
        samples = scrape(metrics.port)
    finally:
        metrics.close()
    assert samples["htsat_live_mqtt_queue"] == 17 and samples["htsat_live_mqtt_dropped_total"] == 5
    assert samples['htsat_live_failed_windows_total{stream="mic"}'] == 3
    assert samples['htsat_live_input_level_dbfs{stream="mic"}'] == -40.0


def test_the_endpoint_is_loopback_unless_allowed_and_a_busy_port_is_one_line():
    assert listen_address("127.0.0.1:9108", False) == ("127.0.0.1", 9108)
    assert listen_address("[::1]:9108", False) == ("::1", 9108)
    assert listen_address("0.0.0.0:9108", True) == ("0.0.0.0", 9108)
    with pytest.raises(ValueError, match="metrics.bind: refusing to listen on 0.0.0.0:9108: not a loopback"):
        listen_address("0.0.0.0:9108", False)
    with pytest.raises(ValueError, match="metrics.bind: expected HOST:PORT"):
        listen_address("9108", False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ValueError, match="metrics.bind: cannot listen on 127.0.0.1:.*in use"):
            PrometheusMetrics.from_config(MetricsConfig(bind=f"127.0.0.1:{busy.getsockname()[1]}"))
