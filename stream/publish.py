"""ZeroMQ publishing of detections (PUB side) and the subscriber every shipped client uses.

Messages are multipart `[topic, json]` with the topics and fields of docs/schema.md; every body
carries the envelope `schema`, `topic`, `stream`, `seq`, `sent_time`. The builders
`event_message`, `scores_message` and `mel_message` turn pipeline data into bodies;
`Publisher.send(topic, stream, body)` adds the envelope and hands the message to ZeroMQ.

Sending never blocks. A PUB socket keeps at most `hwm` messages queued per subscriber and drops
further messages for that subscriber only, so one slow or stalled subscriber never delays the
pipeline or the other subscribers. Those per-subscriber drops are invisible to the publisher; a
subscriber sees them as gaps in `seq`, and `Subscriber.missed` counts them. `Publisher.dropped`
counts the messages ZeroMQ refused outright (a full queue reported as EAGAIN, a closed context).

The socket binds to loopback only, unless `allow_remote` is set. With a CURVE secret key file
(`htsat-live keys PREFIX` writes PREFIX.key and PREFIX.key_secret) the publisher is a CURVE server;
subscribers then need its public key.

Commands: `htsat-live listen [ADDR]` prints messages; `htsat-live keys PREFIX` writes a key pair.
"""

import argparse
import ipaddress
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq
import zmq.auth

from htsat_live.model import FRAME_SECONDS, HOP_LENGTH, SAMPLE_RATE
from htsat_live.stream.config import PublishConfig
from htsat_live.stream.events import Event
from htsat_live.stream.stitch import TimelineUpdate

SCHEMA_VERSION = 1
TOPICS = ("event", "scores", "status", "mel")
DEFAULT_ADDRESS = "tcp://127.0.0.1:5556"
MEL_FRAME_SECONDS = HOP_LENGTH / SAMPLE_RATE  # 0.01 s between log-mel columns
HEALTHY_SILENCE_S = 3.0  # a subscriber that heard nothing for this long reports an unhealthy link


def is_loopback(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// addresses on a loopback host (127.x, ::1, localhost)."""
    transport, _, rest = address.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host = rest.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name, a host name
        return False


def load_key(text: str, secret: bool = False) -> bytes:
    """A CURVE key from a key file written by `htsat-live keys` (PREFIX.key or PREFIX.key_secret)
    or given directly as 40 Z85 characters. `secret=True` returns the secret key (needs
    the .key_secret file)."""
    if len(text) == 40 and not os.path.exists(text):
        return text.encode("ascii")
    try:
        public, secret_key = zmq.auth.load_certificate(text)
    except (OSError, ValueError) as error:
        raise ValueError(f"{text}: not a CURVE key file ({error})") from None
    if secret:
        if secret_key is None:
            raise ValueError(f"{text}: holds no secret key (use the .key_secret file)")
        return secret_key
    return public


class Publisher:
    """A PUB socket that sends envelope-wrapped JSON messages without ever blocking."""

    def __init__(self, address: str = DEFAULT_ADDRESS, allow_remote: bool = False, secret_key_file: str = "",
                 hwm: int = 100, context: zmq.Context | None = None):
        if not allow_remote and not is_loopback(address):
            raise ValueError(f"refusing to bind {address}: not a loopback address "
                             "(set publish.allow_remote = true to publish to other machines)")
        self._socket = (context or zmq.Context.instance()).socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self.encrypted = bool(secret_key_file)
        try:
            if self.encrypted:
                secret = load_key(secret_key_file, secret=True)
                self._socket.curve_secretkey = secret
                self._socket.curve_publickey = zmq.curve_public(secret)
                self._socket.curve_server = True
            self._socket.bind(address)
        except (zmq.ZMQError, ValueError) as error:
            self._socket.close()
            raise ValueError(f"cannot publish on {address}: {error}") from None
        self.address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)  # the port, if "*" was asked
        self.sent = dict.fromkeys(TOPICS, 0)
        self.dropped = dict.fromkeys(TOPICS, 0)
        self._seq: dict[tuple[str, str], int] = {}  # (topic, stream) -> next seq

    @classmethod
    def from_config(cls, config: PublishConfig) -> "Publisher":
        return cls(config.bind, config.allow_remote, config.server_secret_key, config.hwm)

    def send(self, topic: str, stream: str, body: dict) -> bool:
        """Wrap `body` in the envelope and send it; False (and counted) when ZeroMQ refused it."""
        if topic not in TOPICS:
            raise ValueError(f"unknown topic {topic!r} (topics: {', '.join(TOPICS)})")
        seq = self._seq.get((topic, stream), 0)
        self._seq[(topic, stream)] = seq + 1
        message = {"schema": SCHEMA_VERSION, "topic": topic, "stream": stream, "seq": seq,
                   "sent_time": time.time(), **body}
        try:
            payload = json.dumps(message, allow_nan=False, separators=(",", ":"))
        except ValueError:  # NaN or inf somewhere: the schema says null
            payload = json.dumps(_without_nonfinite(message), separators=(",", ":"))
        try:
            self._socket.send_multipart([topic.encode(), payload.encode()], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            self.dropped[topic] += 1
            return False
        self.sent[topic] += 1
        return True

    def close(self) -> None:
        self._socket.close(linger=0)

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def event_message(event: Event) -> dict:
    """Body of an `event` message."""
    return event.to_dict()


def scores_message(update: TimelineUpdate, clipwise: np.ndarray, labels: list[str], top_k: int,
                   wall_time_start: float, window_start: int, window_samples: int, hop: float) -> dict:
    """Body of a `scores` message: the changed frames of `update` for the top_k classes of the
    newest window's clipwise scores [C] (all classes, in index order, when top_k is 0).
    `wall_time_start` is the capture wall time of grid frame `update.start`."""
    if top_k and top_k < clipwise.shape[0]:
        classes = np.argsort(-clipwise, kind="stable")[:top_k]
    else:
        classes = np.arange(clipwise.shape[0])
    return {
        "grid_start": update.start,
        "frame_seconds": FRAME_SECONDS,
        "wall_time_start": wall_time_start,
        "grid_end": update.end,
        "final_upto": update.final_upto,
        "classes": classes.tolist(),
        "labels": [labels[i] for i in classes],
        "frames": np.round(update.values[:, classes].astype(np.float64), 4).tolist(),
        "clipwise": np.round(clipwise[classes].astype(np.float64), 4).tolist(),
        "window_start": window_start,
        "window_samples": window_samples,
        "hop": hop,
    }


def mel_message(grid_start: int, columns: np.ndarray, wall_time_start: float) -> dict:
    """Body of a `mel` message: log-mel columns [n, bins] in dB from mel column `grid_start`."""
    return {
        "grid_start": grid_start,
        "frame_seconds": MEL_FRAME_SECONDS,
        "wall_time_start": wall_time_start,
        "bins": columns.shape[1],
        "frames": np.round(np.maximum(columns, -100.0).astype(np.float64), 1).tolist(),
    }


def _without_nonfinite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _without_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nonfinite(v) for v in value]
    return value


@dataclass(frozen=True)
class Message:
    topic: str
    body: dict


class Subscriber:
    """A SUB socket for htsat-live messages: connect, optional CURVE, topic filter, poll.

    `receive(timeout)` returns one Message or None; `poll(limit)` returns up to `limit` waiting
    (topic, body) pairs at once without waiting (the GUI's message source). Messages that are not
    JSON objects or carry another schema version are skipped and counted in `skipped`;
    `missed[topic]` counts messages lost on the way (gaps in `seq`, per stream).
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, topics: tuple[str, ...] = (), server_key: str = "",
                 client_secret_key: str = "", context: zmq.Context | None = None):
        self.address = address
        self._socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, 0)  # the publisher's HWM bounds the queue; never drop here
        self.encrypted = bool(server_key)
        try:
            if self.encrypted:
                self._socket.curve_serverkey = load_key(server_key)
                if client_secret_key:
                    secret = load_key(client_secret_key, secret=True)
                    public = zmq.curve_public(secret)
                else:
                    public, secret = zmq.curve_keypair()  # a throw-away client identity
                self._socket.curve_publickey = public
                self._socket.curve_secretkey = secret
            for topic in topics or ("",):
                self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
            self._socket.connect(address)
        except (zmq.ZMQError, ValueError) as error:
            self._socket.close()
            raise ValueError(f"cannot subscribe to {address}: {error}") from None
        self.received = 0
        self.skipped = 0
        self.missed = dict.fromkeys(TOPICS, 0)
        self._last_seq: dict[tuple[str, str], int] = {}
        self._last_time: float | None = None

    def receive(self, timeout: float) -> Message | None:
        """The next valid message, waiting at most `timeout` seconds; None when none came."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            if not self._socket.poll(int(remaining * 1000)):
                return None
            message = self._take()
            if message is not None:
                return message

    def poll(self, limit: int, timeout: float = 0.0) -> list[tuple[str, dict]]:
        """Up to `limit` messages, oldest first; waits at most `timeout` s for the first one."""
        messages = []
        message = self.receive(timeout)
        while message is not None:
            messages.append((message.topic, message.body))
            if len(messages) >= limit:
                break
            message = self.receive(0.0)
        return messages

    def connection(self) -> tuple[str, bool]:
        """A short description of the link, and whether messages arrived lately (status is 1 Hz)."""
        text = self.address + (" (CURVE)" if self.encrypted else "")
        healthy = self._last_time is not None and time.monotonic() - self._last_time < HEALTHY_SILENCE_S
        return text, healthy

    def close(self) -> None:
        self._socket.close(linger=0)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _take(self) -> Message | None:
        frames = self._socket.recv_multipart(zmq.NOBLOCK)
        try:
            topic = frames[0].decode()
            body = json.loads(frames[1])
        except (IndexError, UnicodeDecodeError, ValueError):
            self.skipped += 1
            return None
        if len(frames) != 2 or not isinstance(body, dict) or body.get("schema") != SCHEMA_VERSION:
            self.skipped += 1
            return None
        self._count_gap(topic, body)
        self.received += 1
        self._last_time = time.monotonic()
        return Message(topic, body)

    def _count_gap(self, topic: str, body: dict) -> None:
        seq = body.get("seq")
        if topic not in self.missed or not isinstance(seq, int):
            return
        key = (topic, str(body.get("stream")))
        last = self._last_seq.get(key)
        if last is not None and seq > last + 1:
            self.missed[topic] += seq - last - 1
        self._last_seq[key] = seq


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", nargs="?", default=DEFAULT_ADDRESS, help=f"publisher address (default {DEFAULT_ADDRESS})")
    parser.add_argument("--topic", action="append", choices=TOPICS, help="only this topic (repeatable; default all)")
    parser.add_argument("--server-key", default="", help="the publisher's CURVE public key file (PREFIX.key) or Z85 key")
    parser.add_argument("--client-key", default="", help="this client's CURVE secret key file (default: a throw-away key)")
    parser.add_argument("--count", type=int, default=0, help="exit after this many messages (default: run until Ctrl-C)")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="exit with status 1 when no message arrives for this many seconds (default: wait forever)")


def run_listen(args: argparse.Namespace) -> int:
    """Print each message as one line: the topic, then the JSON body."""
    try:
        subscriber = Subscriber(args.address, tuple(args.topic or ()), args.server_key, args.client_key)
    except ValueError as error:
        print(f"htsat-live listen: {error}")
        return 2
    count = 0
    try:
        with subscriber:
            while not args.count or count < args.count:
                message = subscriber.receive(args.timeout if args.timeout > 0 else 3600.0)
                if message is None:
                    if args.timeout > 0:
                        print(f"htsat-live listen: nothing received for {args.timeout:g} s")
                        return 1
                    continue
                print(message.topic, json.dumps(message.body, separators=(",", ":")), flush=True)
                count += 1
    except KeyboardInterrupt:
        pass
    missed = sum(subscriber.missed.values())
    if missed or subscriber.skipped:
        print(f"htsat-live listen: {missed} messages missed, {subscriber.skipped} skipped")
    return 0


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prefix", help="writes PREFIX.key (public, give it to subscribers) and PREFIX.key_secret")
    parser.add_argument("--force", action="store_true", help="overwrite existing key files")


def run_keys(args: argparse.Namespace) -> int:
    """Write a CURVE key pair for `publish.server_secret_key` / `--server-key`."""
    prefix = Path(args.prefix)
    public, secret = Path(f"{prefix}.key"), Path(f"{prefix}.key_secret")
    if not args.force and (public.exists() or secret.exists()):
        print(f"htsat-live keys: {public} or {secret} exists (use --force to overwrite)")
        return 1
    prefix.parent.mkdir(parents=True, exist_ok=True)
    written_public, written_secret = zmq.auth.create_certificates(prefix.parent, prefix.name)
    os.chmod(written_secret, 0o600)
    print(f"public key (for subscribers, --server-key): {written_public}")
    print(f"secret key (publish.server_secret_key; keep private): {written_secret}")
    return 0
