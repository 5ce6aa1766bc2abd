"""Served inference from a child process, so that the detector outlives its Ray cluster.

A Ray driver dies with the cluster it joined: when the cluster goes, Ray's own code ends the driver's process
("The connection to the plasma store is failed. Terminate the process."). So the detector is no driver: the
Ray client (stream.inference.cluster.ServedInference) lives in a child process, and the capture process sends
it each batch of windows over a pipe, as numpy arrays, and gets the scores back.

`InferenceProcess.open(address, build, labels, settings)` starts the child and waits until it has joined Ray
(and, with no address and no deployment on this machine, deployed `build` there, as ServedInference does); a
ClusterError from the child is raised here, at start. Afterwards a lost child (the cluster stopped, the child
killed, no answer within CALL_TIMEOUT, LOST_BATCHES batches in a row lost) never stops the stream: each window
asked for meanwhile fails at once with "inference on Ray unreachable" (the worker counts it in
`failed_windows`), `counters()` says `state = "unreachable"` with the reason on `status`, and a reconnecting
thread starts a new child after 1, 2, 4, ... seconds (at most MAX_RECONNECT_WAIT) that joins the cluster
again (the address given, else whichever instance runs on this machine), never deploys one of its own.

The child ignores SIGINT (Ctrl-C reaches the whole process group): the capture process ends it on `close()`,
and it ends by itself when the capture process dies (its pipe closes).
"""

import multiprocessing
import signal
import threading
import time

import numpy as np

from htsat_live.model import MODEL_FRAMES, TOKEN_SAMPLES, WINDOW_SAMPLES, frames_for

CONNECT_TIMEOUT = 600.0  # seconds to join Ray and, for a deployment of our own, load the model on its replicas
REJOIN_TIMEOUT = 60.0  # seconds a reconnecting child may take to join the cluster again
CALL_TIMEOUT = 35.0  # seconds a batch may take in the child (its own calls time out after 30 s)
FIRST_RECONNECT_WAIT = 1.0  # seconds; doubles after each failed reconnect
MAX_RECONNECT_WAIT = 30.0
LOST_BATCHES = 3  # batches in a row lost by a child (its cluster gone, yet it lives) before it is replaced
CLOSE_TIMEOUT = 60.0  # seconds the child may take to undeploy and stop what it started
FRAMES_PER_TOKEN = MODEL_FRAMES * TOKEN_SAMPLES // WINDOW_SAMPLES  # 32


class InferenceUnreachable(RuntimeError):
    """No child answers now: the window is lost (counted); the stream goes on."""


def _serve_windows(connection, address, build, labels, settings) -> None:
    """The child: join Ray (ServedInference.open), say ready, then run each batch it is sent until told to close
    or its pipe closes. Replies: ("ready", address, what the deployment serves) | ("error", line) | ("ok",
    clipwise [B, C], tokens [B, 32, C], retries, lost) | ("refused", line, retries, lost) | ("lost", line,
    retries, lost)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ray.exceptions import RayTaskError

    from htsat_live.stream.inference.cluster import ClusterError, ServedInference

    try:
        served = ServedInference.open(address, build, labels, settings)
    except ClusterError as error:
        connection.send(("error", str(error)))
        return
    except Exception as error:  # noqa: BLE001 - told to the capture process as one line
        connection.send(("error", f"{type(error).__name__}: {error}"))
        return
    client = served.client
    try:
        connection.send(("ready", client.address, client.source))
        while True:
            try:
                request = connection.recv()
            except EOFError:  # the capture process is gone
                break
            if request[0] == "close":
                break
            try:
                out = client.predict(request[1], short="pad")
                tokens = np.ascontiguousarray(out["framewise"][:, ::FRAMES_PER_TOKEN])  # [B, 1024, C] -> [B, 32, C]
                connection.send(("ok", out["clipwise"], tokens, client.retries, client.lost))
            except RayTaskError as error:
                connection.send(("refused", str(error).splitlines()[0], client.retries, client.lost))
            except Exception as error:  # noqa: BLE001 - a lost window, counted by the capture process
                line = str(error).splitlines()[0] if str(error) else ""
                connection.send(("lost", f"{type(error).__name__}: {line}", client.retries, client.lost))
    finally:
        served.close()


class InferenceProcess:
    """The client the pipeline's InferenceWorker calls (`predict`, `frames_for`, `counters`, `labels`), backed
    by the child process; see the module docstring."""

    def __init__(self, address: str | None, build, labels: list[str], settings):
        self.requested = address  # as given: None = this machine's Ray
        self.address = address or "auto"  # where the cluster is, as shown on status (the child's answer once known)
        self.source: str | None = None  # what the deployment serves (ServeInference.source), once a child joined
        self.labels = list(labels)
        self._build, self._settings = build, settings
        self._context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._lock = threading.Lock()  # one batch in flight; the reconnecting thread swaps the child under it
        self._child = self._connection = None
        self._closed = threading.Event()
        self._reconnecting: threading.Thread | None = None
        self.retries = self.lost = 0  # the child's ServeInference counters, summed over children
        self._base_retries = self._base_lost = 0
        self.reconnects = 0  # children started again after a lost one
        self._lost_in_a_row = 0
        self.error: str | None = None  # why inference is unreachable now; None while it answers

    @classmethod
    def open(cls, address: str | None, build, labels: list[str], settings) -> "InferenceProcess":
        """Start the child and wait until it joined Ray; ClusterError (its line) when it cannot."""
        from htsat_live.stream.inference.cluster import ClusterError

        process = cls(address, build, labels, settings)
        try:
            process._child, process._connection = process._start_child(address, CONNECT_TIMEOUT)
        except InferenceUnreachable as error:
            process.close()
            raise ClusterError(str(error)) from None
        return process

    @property
    def client(self) -> "InferenceProcess":  # what ServedInference.client is to the commands
        return self

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def frames_for(self, n_samples: int) -> int:
        return frames_for(n_samples)

    def counters(self) -> dict:
        return {
            "kind": "ray",
            "address": self.address,
            "state": "unreachable" if self.error else "running",
            "retries": self.retries,
            "lost": self.lost,
            "reconnects": self.reconnects,
            "error": self.error,
        }

    def _start_child(self, address: str | None, timeout: float):
        """(process, pipe) of a new child joined to Ray at `address`; InferenceUnreachable with its reason when it
        cannot."""
        parent, child_end = self._context.Pipe()
        child = self._context.Process(
            target=_serve_windows,
            args=(child_end, address, self._build, self.labels, self._settings),
            name="htsat-live ray client",
            daemon=True,
        )
        child.start()
        child_end.close()
        reply = self._receive(parent, child, timeout, "to join Ray")
        if reply[0] != "ready":
            parent.close()
            child.join(CLOSE_TIMEOUT)
            raise InferenceUnreachable(reply[1])
        self.address, self.source = reply[1], reply[2]
        return child, parent

    def _receive(self, connection, child, timeout: float, what: str):
        """The child's next reply; InferenceUnreachable (after ending the child) when it dies or says nothing."""
        deadline = time.monotonic() + timeout
        while not connection.poll(0.1):
            if not child.is_alive() and not connection.poll(0):
                connection.close()
                raise InferenceUnreachable(f"the Ray client process ended (exit code {child.exitcode})")
            if time.monotonic() > deadline or self._closed.is_set():
                child.kill()
                child.join(5)
                connection.close()
                raise InferenceUnreachable(f"the Ray client process did not answer {what} within {timeout:g} s")
        try:
            return connection.recv()
        except (EOFError, OSError):
            child.join(5)
            raise InferenceUnreachable(f"the Ray client process ended (exit code {child.exitcode})") from None

    def predict(self, wave: np.ndarray, short: str = "pad") -> dict[str, np.ndarray]:
        """waves float32 [B, 320000] -> {"clipwise": [B, C], "framewise": [B, 1024, C]}, or an exception that
        costs these windows only: InferenceUnreachable while no child answers, RuntimeError for a lost or
        refused batch."""
        if short != "pad":
            raise ValueError("served inference takes zero-padded windows (short='pad')")
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 2 or wave.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"served inference takes [B, {WINDOW_SAMPLES}] windows, got {list(wave.shape)}")
        with self._lock:
            if self._child is None:
                raise InferenceUnreachable(f"inference on Ray unreachable: {self.error}; reconnecting")
            try:
                self._connection.send(("predict", wave))
                reply = self._receive(self._connection, self._child, CALL_TIMEOUT, "a batch")
            except (InferenceUnreachable, OSError) as error:
                self._lose_child(str(error))
                raise InferenceUnreachable(f"inference on Ray unreachable: {self.error}; reconnecting") from None
            kind = reply[0]
            self.retries, self.lost = self._base_retries + reply[-2], self._base_lost + reply[-1]
            self._lost_in_a_row = self._lost_in_a_row + 1 if kind == "lost" else 0
            if self._lost_in_a_row >= LOST_BATCHES:  # a client of a cluster that is gone: join again
                self._lost_in_a_row = 0
                self._lose_child(f"{LOST_BATCHES} batches in a row lost ({reply[1]})")
        if kind == "ok":
            clipwise, tokens = reply[1], reply[2]
            return {"clipwise": clipwise, "framewise": tokens.repeat(FRAMES_PER_TOKEN, axis=1)}  # -> [B, 1024, C]
        raise RuntimeError(reply[1])

    def _lose_child(self, reason: str) -> None:
        """Forget the child (under the lock), say why on status, and start reconnecting."""
        self.error = reason
        self._base_retries, self._base_lost = self.retries, self.lost
        if self._child is not None:
            self._child.kill()  # it may be stuck in a call to a cluster that is gone
            self._child.join(5)
            self._connection.close()
        self._child = self._connection = None
        if not self._closed.is_set() and (self._reconnecting is None or not self._reconnecting.is_alive()):
            self._reconnecting = threading.Thread(target=self._reconnect, name="ray reconnect", daemon=True)
            self._reconnecting.start()

    def _reconnect(self) -> None:
        """Start a child that joins the same cluster (never a new one) after growing waits, until one answers or
        close() is called."""
        wait = FIRST_RECONNECT_WAIT
        address = self.requested or "auto"  # "auto": whichever instance runs on this machine then
        while not self._closed.wait(wait):
            try:
                child, connection = self._start_child(address, REJOIN_TIMEOUT)
            except InferenceUnreachable as error:
                self.error = str(error)
                wait = min(2 * wait, MAX_RECONNECT_WAIT)
                continue
            with self._lock:
                if self._closed.is_set():  # close() came meanwhile: this child ends with the others
                    self._child, self._connection = child, connection
                    break
                self._child, self._connection = child, connection
                self.reconnects += 1
                self.error = None
                return
        self._end_child()

    def close(self) -> None:
        """End the child (it deletes the deployment and stops the Ray instance it started) and stop reconnecting."""
        self._closed.set()
        if self._reconnecting is not None:
            self._reconnecting.join(REJOIN_TIMEOUT + CLOSE_TIMEOUT + 10)
        self._end_child()

    def _end_child(self) -> None:
        with self._lock:
            child, connection = self._child, self._connection
            self._child = self._connection = None
        if child is None:
            return
        try:
            connection.send(("close",))
        except OSError:
            pass
        child.join(CLOSE_TIMEOUT)
        if child.is_alive():
            child.kill()
            child.join(5)
        connection.close()
