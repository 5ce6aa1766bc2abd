"""Prometheus metrics of the live pipeline, served over HTTP by prometheus-client.

`PrometheusMetrics.from_config(config.metrics)` listens on `bind` (HOST:PORT; loopback only unless
`allow_remote`) in its own thread and, as an output of the pipeline (stream.output), takes its messages
in `handle(message)`; the pipeline closes it. Everything lives in the object's own registry (no process-wide state).

Exposed (label `stream` on each, as in messages):
- counters read from the newest `status` of each stream: `htsat_live_windows_total`,
  `htsat_live_skipped_windows_total`, `htsat_live_gated_windows_total`, `htsat_live_failed_windows_total`,
  `htsat_live_ring_overruns_total`, `htsat_live_input_overflows_total`, `htsat_live_reconnects_total`; and
  from the MQTT output's (no stream label) `htsat_live_mqtt_dropped_total`;
- `htsat_live_events_total{stream, target, state}`: event reports by detection target and state
  (`start`, `update`, `end`, and `cancelled` for a cancelled end), provisional ones included;
- gauges: `htsat_live_input_level_dbfs` (RMS of the last second), `htsat_live_mqtt_queue` (messages
  waiting for the broker);
- histograms: `htsat_live_hop_latency_seconds` (capture of a window's last sample to its scores; windows
  run through the model only, not gated ones) and
  `htsat_live_event_latency_seconds{kind}` (onset to the `start` report: `provisional`, or to
  confirmation: `confirmed`).
"""

import ipaddress
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from htsat_live.stream.config import MetricsConfig
from htsat_live.stream.events import ConfirmedView
from htsat_live.stream.messages import EventMessage, Message
from htsat_live.stream.output import Output

HOP_BUCKETS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # seconds
EVENT_BUCKETS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, 20.0)  # seconds
# status counter -> (metric name, help)
STATUS_COUNTERS = {
    "windows": ("htsat_live_windows", "Windows through inference."),
    "skipped_windows": ("htsat_live_skipped_windows", "Windows skipped (inference behind, ring overrun)."),
    "gated_windows": ("htsat_live_gated_windows", "Windows below the level gate, not run and scored 0."),
    "failed_windows": ("htsat_live_failed_windows", "Windows whose inference failed; the stream went on."),
    "overruns": ("htsat_live_ring_overruns", "Windows the ring buffer had overwritten before they were read."),
    "input_overflows": ("htsat_live_input_overflows", "Input blocks lost by the capture (PortAudio overflows)."),
    "reconnects": ("htsat_live_reconnects", "Times the source was opened again after a loss."),
}


def listen_address(bind: str, allow_remote: bool) -> tuple[str, int]:
    """ "127.0.0.1:9108" or "[::1]:9108" -> (host, port); ValueError naming metrics.bind for a bad
    address, or a non-loopback one without allow_remote."""
    host, sep, port = bind.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"metrics.bind: expected HOST:PORT, got {bind!r}")
    if not allow_remote:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:  # a host name or an interface: not known to be loopback
            loopback = False
        if not loopback:
            raise ValueError(
                f"metrics.bind: refusing to listen on {bind}: not a loopback address "
                "(set metrics.allow_remote = true to serve other machines)"
            )
    return host, int(port)


class _StatusCollector(Collector):
    """Counters and gauges read at scrape time from the newest status body of each stream."""

    def __init__(self, statuses: dict[str, dict]):
        self.statuses = statuses

    def collect(self):
        statuses = dict(self.statuses)  # the pipeline's thread may add a stream meanwhile
        for key, (name, text) in STATUS_COUNTERS.items():
            family = CounterMetricFamily(name, text, labels=["stream"])
            for stream, status in statuses.items():
                family.add_metric([stream], status["counters"][key])
            yield family
        level = GaugeMetricFamily(
            "htsat_live_input_level_dbfs", "RMS level of the last second of input, dBFS.", labels=["stream"]
        )
        for stream, status in statuses.items():
            level.add_metric([stream], status["level_dbfs"])
        yield level
        mqtt = next((status["mqtt"] for status in statuses.values() if status.get("mqtt")), None)
        if mqtt is not None:
            yield CounterMetricFamily(
                "htsat_live_mqtt_dropped", "MQTT messages dropped from the full queue.", value=mqtt["dropped"]
            )
            yield GaugeMetricFamily(
                "htsat_live_mqtt_queue", "MQTT messages waiting for the broker.", value=mqtt["queue"]
            )


class PrometheusMetrics(Output):
    """The metrics registry, its HTTP server thread, and the message handler that feeds it."""

    topics = ("status", "scores", "event")

    def __init__(self, host: str, port: int):
        self.registry = CollectorRegistry()
        self._statuses: dict[str, dict] = {}
        self.registry.register(_StatusCollector(self._statuses))
        self._events = Counter(
            "htsat_live_events",
            "Event reports by detection target and state.",
            ["stream", "target", "state"],
            registry=self.registry,
        )
        self._hop_latency = Histogram(
            "htsat_live_hop_latency_seconds",
            "Capture of a window's last sample to its scores message.",
            ["stream"],
            buckets=HOP_BUCKETS,
            registry=self.registry,
        )
        self._event_latency = Histogram(
            "htsat_live_event_latency_seconds",
            "Event onset to its start report (provisional) or confirmation.",
            ["stream", "kind"],
            buckets=EVENT_BUCKETS,
            registry=self.registry,
        )
        self._confirmed = ConfirmedView()
        try:
            self._server, self._thread = start_http_server(port, host, registry=self.registry)
        except OSError as error:
            raise ValueError(f"metrics.bind: cannot listen on {host}:{port}: {error.strerror or error}") from None
        self.port = self._server.server_address[1]  # the port given, or the one chosen for port 0

    @classmethod
    def from_config(cls, config: MetricsConfig) -> "PrometheusMetrics | None":
        """The endpoint `[metrics]` asks for, or None when its bind is empty."""
        return cls(*listen_address(config.bind, config.allow_remote)) if config.bind else None

    def handle(self, message: Message | EventMessage) -> None:
        stream = message.stream
        if message.topic == "status":
            self._statuses[stream] = message.body
        elif message.topic == "scores" and not message.body["gated"]:
            self._hop_latency.labels(stream).observe(time.time() - message.body["window_wall_end"])
        elif message.topic == "event":
            event = message.event
            self._events.labels(stream, event.label, "cancelled" if event.cancelled else event.state).inc()
            if event.state == "start":
                self._event_latency.labels(stream, "provisional").observe(event.latency)
            for shown in self._confirmed.take(stream, event):
                if shown.state == "start":
                    self._event_latency.labels(stream, "confirmed").observe(shown.confirm_latency)

    def close(self) -> None:
        """Stop serving and join the server's thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
