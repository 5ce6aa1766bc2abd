"""Inference served by Ray Serve: the windows of many capture processes batched on shared replicas.

The one module that imports Ray (the optional extra `pip install -e '.[cluster]'`). It holds both sides:

- the deployment, `WindowModel`: each replica builds one Predictor and runs the windows that reach it
  from every caller in batches (`@serve.batch`), on the CPUs or the GPU its `ray_actor_options` give;
- the client, `ServeInference`: what the capture process's InferenceWorker calls instead of a local
  Predictor (`predict(waves, short="pad")`, `frames_for`). Each window of a batch travels on its own, so
  the replicas batch windows of every stream and every process together. A window whose call is lost
  (a replica killed, the deployment restarting, a timeout) is sent again after a growing pause; every
  retry is counted, and a window still lost after the last attempt raises, so the worker counts it as
  failed and the stream goes on.

What travels per window: its float32 samples (320,000 x 4 bytes, zero-padded to 10 s) to the replica,
its clipwise [C] and per-token [32, C] float32 scores back (the framewise map repeats each token's scores over
its 32 frames, so the client rebuilds [1024, C] exactly: 68 KB back for 527 classes instead of 2.2 MB).
Replicas hold no per-stream state, so any replica can take any window; docs/scale.md measures the
alternatives (int16, log-mel, only new samples).

Capture, ring, windows, stitching, events, sinks and publishing stay in the capture process, which keeps
its local Predictor for the labels, thresholds and the `mel` messages' front end.
"""

import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import ray
from ray import serve
from ray._private import ray_constants
from ray.exceptions import RayError, RayTaskError
from ray.serve.exceptions import RayServeException

from htsat_live.model import MODEL_FRAMES, TOKEN_SAMPLES, WINDOW_SAMPLES, frames_for

APP = "htsat-live"  # the Serve application's name
DEPLOYMENT = "WindowModel"
ATTEMPTS = 4  # calls per window before it counts as lost
FIRST_BACKOFF = 0.2  # seconds before the first retry; doubles with each further one
MAX_BACKOFF = 2.0
REQUEST_TIMEOUT = 30.0  # seconds a window may take on the deployment before its call is given up
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PROBE_TIMEOUT = 5.0  # seconds to wait for a Ray address to accept a connection
FRAMES_PER_TOKEN = MODEL_FRAMES * TOKEN_SAMPLES // WINDOW_SAMPLES  # 32
RETRYABLE = (RayError, RayServeException, TimeoutError)  # a call lost on the way, not refused by the model

log = logging.getLogger(__name__)


class ClusterError(Exception):
    """Ray cannot be reached, or no deployment answers there: one line for the user."""


@dataclass(frozen=True)
class ServeSettings:
    """How the deployment runs: replicas, the resources of each, and its batching."""

    replicas: int = 1  # with max_replicas: the fewest the autoscaler keeps
    max_batch: int = 8  # windows per predict call on a replica
    batch_wait: float = 0.005  # seconds a replica waits for a batch to fill
    num_cpus: float = 1.0  # per replica
    num_gpus: float = 0.0  # per replica (1 puts it on a GPU)
    max_replicas: int | None = None  # above replicas: Serve's autoscaler adds replicas up to this many


def deployment_options(settings: ServeSettings) -> dict:
    """The Serve options of the deployment: a fixed replica count, or with max_replicas Serve's autoscaler,
    which aims at one batch in flight per replica (a second one waits while it runs)."""
    options = {
        "max_ongoing_requests": 2 * settings.max_batch,  # room for one batch running and the next filling
        "ray_actor_options": {"num_cpus": settings.num_cpus, "num_gpus": settings.num_gpus},
    }
    if settings.max_replicas is not None and settings.max_replicas > settings.replicas:
        options["autoscaling_config"] = {
            "min_replicas": settings.replicas,
            "max_replicas": settings.max_replicas,
            "target_ongoing_requests": settings.max_batch,
        }
    else:
        options["num_replicas"] = settings.replicas
    return options


@serve.deployment(name=DEPLOYMENT)
class WindowModel:
    """One replica: one Predictor, fed batches of single windows from every caller."""

    def __init__(self, build: Callable, max_batch: int, batch_wait: float):
        self.model = build()  # a model.Predictor
        self.predict_window.set_max_batch_size(max_batch)
        self.predict_window.set_batch_wait_timeout_s(batch_wait)

    def info(self) -> dict:
        """What the replica serves, for the client to check against its own model."""
        return {"labels": list(self.model.labels), "source": self.model.source, "backend": self.model.backend.name}

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def predict_window(self, waves: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        batch = np.stack(waves)  # B x [320000] -> [B, 320000]
        # in a thread, so that the replica's event loop gathers the next batch meanwhile
        out = await asyncio.to_thread(self.model.predict, batch, short="pad")
        # the framewise map repeats each token's scores over its frames: one row per token travels back
        tokens = out["framewise"][:, ::FRAMES_PER_TOKEN]  # [B, 1024, C] -> [B, 32, C]
        return [(out["clipwise"][row], np.ascontiguousarray(tokens[row])) for row in range(len(waves))]  # [C], [32, C]


class ServeInference:
    """The deployment behind the Predictor methods InferenceWorker calls; counts retries and lost windows.
    Asks the deployment for its labels first, so an unanswering one fails here, at start."""

    def __init__(self, handle, address: str):
        self.handle = handle
        self.address = address  # where Ray runs, as shown on status
        self.retries = 0  # calls sent again after a lost one
        self.lost = 0  # windows given up after ATTEMPTS calls
        info = handle.info.remote().result(timeout_s=REQUEST_TIMEOUT)
        self.labels: list[str] = info["labels"]
        self.source: str = info["source"]  # what the replicas serve: a path, or an ensemble's paths joined by ' + '

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def frames_for(self, n_samples: int) -> int:
        return frames_for(n_samples)

    def counters(self) -> dict:
        return {"kind": "ray", "address": self.address, "retries": self.retries, "lost": self.lost}

    def predict(self, wave: np.ndarray, short: str = "pad") -> dict[str, np.ndarray]:
        """waves float32 [B, 320000] (zero-padded windows) -> {"clipwise": [B, C], "framewise": [B, 1024, C]}."""
        if short != "pad":
            raise ValueError("served inference takes zero-padded windows (short='pad')")
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 2 or wave.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"served inference takes [B, {WINDOW_SAMPLES}] windows, got {list(wave.shape)}")
        results: list = [None] * len(wave)
        pending = range(len(wave))
        for attempt in range(1, ATTEMPTS + 1):
            calls, lost = {}, {}
            for row in pending:  # every window is sent before any answer is awaited: the replicas batch them
                try:
                    calls[row] = self.handle.predict_window.remote(wave[row])
                except RETRYABLE as error:  # e.g. no deployment of that name now
                    lost[row] = error
            for row, call in calls.items():
                try:
                    results[row] = call.result(timeout_s=REQUEST_TIMEOUT)
                except RayTaskError:
                    raise  # the replica's model refused this window: no retry helps
                except RETRYABLE as error:
                    lost[row] = error
            if not lost:
                break
            error = next(iter(lost.values()))
            if attempt == ATTEMPTS:
                self.lost += len(lost)
                raise ClusterError(
                    f"inference on Ray lost after {ATTEMPTS} attempts: {type(error).__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else ''}"
                )
            pause = min(FIRST_BACKOFF * 2 ** (attempt - 1), MAX_BACKOFF)
            log.warning("%d window(s) lost on Ray (%s); retrying in %.1f s", len(lost), type(error).__name__, pause)
            self.retries += len(lost)
            time.sleep(pause)
            pending = sorted(lost)
        return {
            "clipwise": np.stack([r[0] for r in results]),  # [B, C]
            "framewise": np.stack([r[1] for r in results]).repeat(FRAMES_PER_TOKEN, axis=1),
        }  # [B, 32, C] -> [B, 1024, C]


def parse_inference(setting: str) -> str | None:
    """ "ray" -> None (a local deployment, started if needed); "ray:ADDRESS" -> ADDRESS; a Ray Client address
    given bare, "ray://HOST:PORT", is itself the ADDRESS (as "ray:ray://HOST:PORT")."""
    if setting.startswith("ray://"):
        return setting
    return setting.partition(":")[2] or None


def _host_and_port(address: str) -> tuple[str | None, int | None]:
    """HOST:PORT or ray://HOST:PORT -> (host, port); None for what is not there."""
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def check_reachable(address: str) -> None:
    """A HOST:PORT or ray://HOST:PORT address must accept a TCP connection (ray.init would wait minutes)."""
    if address == "auto":
        return
    host, port = _host_and_port(address)
    if not host or port is None:
        raise ClusterError(f"Ray address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT).close()
    except OSError as error:
        raise ClusterError(f"cannot reach Ray at {address}: {error.strerror or error}") from None


def _init(**options) -> None:
    """ray.init, after which SIGTERM and SIGINT do what they did before: Ray's driver answers SIGTERM with a
    stack dump and an abort, so that `serve` stopped by a service manager would end without undeploying."""
    kept = {}
    if threading.current_thread() is threading.main_thread():
        kept = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        ray.init(**options)
    finally:
        for number, handler in kept.items():
            if handler is not None:  # None: not set from Python, left as it is
                signal.signal(number, handler)


def _send_the_token_as_auto_does() -> None:
    """Turn Ray's token authentication on for this process when a token exists and RAY_AUTH_MODE is unset, as
    Ray does when it joins "auto" (no-op on a Ray without token authentication)."""
    try:
        from ray._private.authentication import authentication_token_setup
    except ImportError:
        return
    logging.getLogger(authentication_token_setup.__name__).setLevel(logging.ERROR)  # no notice on our stderr
    authentication_token_setup.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def start_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Join Ray at `address` (or an instance already running on this machine, with None), else start a local
    instance (dashboard off) with None. True when this process started Ray and so must shut it down.

    An instance this starts is reachable from this machine only. Ray puts a node on the machine's network address
    even when told 127.0.0.1; the switch behind its own RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps the node, its
    servers and this driver on loopback, and a driver must be on the same address as the node it joins, so the
    switch is set for every address on this machine (none, auto, a loopback HOST:PORT). A cluster of several
    machines is started with `ray start` and joined with its address.

    An instance that `ray.init` starts requires Ray's token (~/.ray/auth_token, made then), and Ray sends it when
    joining "auto" but not a HOST:PORT; so a loopback HOST:PORT is joined as "auto" is, with the token when one
    exists (RAY_AUTH_MODE, when set, decides as always)."""
    if ray.is_initialized():
        return False
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # no progress lines of Serve on our stderr
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None or address == "auto" or _host_and_port(address)[0] in LOOPBACK:
        ray_constants.ENABLE_RAY_CLUSTER = False
        if address not in (None, "auto"):
            _send_the_token_as_auto_does()
    if address is not None:
        check_reachable(address)
        try:
            _init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as error:
            if "Could not find any running Ray instance" in str(error):  # Ray's line goes on about flags we lack
                raise ClusterError(f"cannot join Ray at {address}: no Ray instance runs on this machine") from None
            raise ClusterError(f"cannot join Ray at {address}: {str(error).splitlines()[0]}") from None
        return False
    try:
        _init(address="auto", **quiet)
        return False
    except ConnectionError:  # no instance on this machine: start one
        _init(num_cpus=num_cpus, include_dashboard=False, **quiet)
        return True


def deploy(build: Callable, settings: ServeSettings):
    """Run the deployment as the Serve application APP (no HTTP proxy: handles only); its handle."""
    serve.start(proxy_location="Disabled")
    app = WindowModel.options(**deployment_options(settings)).bind(build, settings.max_batch, settings.batch_wait)
    return serve.run(app, name=APP, route_prefix=None)


def undeploy() -> None:
    serve.delete(APP)


def stop_ray() -> None:
    """Stop the Ray instance this process started (Serve and its replicas with it)."""
    ray.shutdown()


def cluster_resources() -> dict[str, float]:
    """What the joined Ray cluster has: {"CPU": 16.0, "GPU": 2.0, ...}."""
    return ray.cluster_resources()


def gcs_address() -> str:
    """HOST:PORT of the joined Ray cluster (what `ray start --address` and `ray:ADDRESS` take)."""
    return ray.get_runtime_context().gcs_address


def deployed_handle():
    """The running APP's handle, or None when Serve runs no such application."""
    try:
        status = serve.status()
    except RayError:
        return None
    if APP not in status.applications or status.applications[APP].status != "RUNNING":
        return None
    return serve.get_app_handle(APP)


class ServedInference:
    """What `detect --inference ray[:ADDRESS]` holds: the client, and what it started and must stop.

    `open(address, build, labels)`: with an address, join Ray there and use its deployment (ClusterError when
    either is missing); without one, use this machine's instance and deployment, or start them with `build`.
    The deployment must serve a model with the same labels as the capture process's.
    """

    def __init__(self, client: ServeInference, started_ray: bool, deployed: bool):
        self.client = client
        self.started_ray = started_ray
        self.deployed = deployed

    @classmethod
    def open(
        cls, address: str | None, build: Callable, labels: list[str], settings: ServeSettings
    ) -> "ServedInference":
        started = start_ray(address, settings.replicas * int(settings.num_cpus) if address is None else None)
        handle = deployed_handle()
        deployed = False
        try:
            if handle is None:
                if address is not None:
                    raise ClusterError(
                        f"no {APP} deployment on Ray at {address}: start one there with "
                        f"`htsat-live serve --address {address}`"
                    )
                handle = deploy(build, settings)
                deployed = True
            try:
                where = gcs_address() if address in (None, "auto") else address  # "auto": the one found
                served = cls(ServeInference(handle, where), started, deployed)
            except (RayError, TimeoutError) as error:
                raise ClusterError(f"the {APP} deployment on Ray does not answer: {type(error).__name__}") from None
            served_labels = served.client.labels
            if served_labels != list(labels):
                raise ClusterError(
                    f"the deployment on Ray serves another model ({len(served_labels)} classes, "
                    f"first {served_labels[:3]}) than this detector's ({len(labels)} classes)"
                )
        except BaseException:
            cls(None, started, deployed).close()
            raise
        return served

    def close(self) -> None:
        """Delete the deployment this process made and stop the Ray instance it started."""
        if self.deployed:
            undeploy()
        if self.started_ray:  # stopping Ray stops Serve with it
            stop_ray()
