"""The ZeroMQ transport of htsat-live messages: the publisher (PUB side) and the subscriber every
shipped client uses.

Messages are multipart `[topic, json]`, built by stream.messages (docs/schema.md). The publisher is
an output of the pipeline (stream.output): `handle(message)` sends each message;
`Publisher.send(topic, stream, body)` numbers a message in its topic and stream (`seq`), wraps it
in the envelope and hands it to ZeroMQ.

Sending never blocks. A PUB socket keeps at most `hwm` messages queued per subscriber and drops
further messages for that subscriber only, so one slow or stalled subscriber never delays the
pipeline or the other subscribers. Those per-subscriber drops are invisible to the publisher; a
subscriber sees them as gaps in `seq`, and `Subscriber.missed` counts them. `Publisher.dropped`
counts the messages ZeroMQ refused outright (a full queue reported as EAGAIN, a closed context), shown on
`status` as `dropped`.

The socket is an XPUB socket: it learns which topics its subscribers asked for, and `wants(topic)` says
whether anyone takes that topic now, so that a pipeline builds no `scores` or `mel` message that nobody
would receive (stream.output). A subscriber gets exactly what a plain PUB socket would send it.

The socket binds to loopback only, unless `allow_remote` is set. With a CURVE secret key file
(`htsat-live keys PREFIX` writes PREFIX.key and PREFIX.key_secret) the publisher is a CURVE server;
subscribers then need its public key.
"""

import ipaddress
import json
import os
import time

import zmq
import zmq.auth

from htsat_live.stream.config import PublishConfig
from htsat_live.stream.messages import SCHEMA_VERSION, TOPICS, EventMessage, Message, message_json
from htsat_live.stream.output import Output

DEFAULT_ADDRESS = "tcp://127.0.0.1:5556"
HEALTHY_SILENCE_S = 3.0  # a subscriber that heard nothing for this long reports an unhealthy link
RECEIVE_HWM = 1000  # messages a subscriber queues before ZeroMQ drops (counted as gaps in seq)


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


class Publisher(Output):
    """A PUB socket that sends envelope-wrapped JSON messages without ever blocking."""

    name = "dropped"

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        allow_remote: bool = False,
        secret_key_file: str = "",
        hwm: int = 100,
        context: zmq.Context | None = None,
    ):
        if not allow_remote and not is_loopback(address):
            raise ValueError(
                f"refusing to bind {address}: not a loopback address "
                "(set publish.allow_remote = true to publish to other machines)"
            )
        self._socket = (context or zmq.Context.instance()).socket(zmq.XPUB)
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
        self._subscribed: set[bytes] = set()  # the topic prefixes that one subscriber or more asked for

    @classmethod
    def from_config(cls, config: PublishConfig) -> "Publisher":
        return cls(config.bind, config.allow_remote, config.server_secret_key, config.hwm)

    def send(self, topic: str, stream: str, body: dict) -> bool:
        """Wrap `body` in the envelope and send it; False (and counted) when ZeroMQ refused it."""
        if topic not in TOPICS:
            raise ValueError(f"unknown topic {topic!r} (topics: {', '.join(TOPICS)})")
        seq = self._seq.get((topic, stream), 0)
        self._seq[(topic, stream)] = seq + 1
        payload = message_json(topic, stream, seq, body)
        try:
            self._socket.send_multipart([topic.encode(), payload.encode()], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            self.dropped[topic] += 1
            return False
        self.sent[topic] += 1
        return True

    def handle(self, message: Message | EventMessage) -> None:
        self.send(message.topic, message.stream, message.body)

    def wants(self, topic: str) -> bool:
        """Whether a subscriber takes `topic` now (what the socket has heard of their subscriptions)."""
        self._read_subscriptions()
        name = topic.encode()
        return any(name.startswith(prefix) for prefix in self._subscribed)

    def _read_subscriptions(self) -> None:
        # XPUB hands over a topic's first subscription (b"\x01" + prefix) and, once no subscriber holds it,
        # its unsubscription (b"\x00" + prefix), a subscriber that goes away included
        while self._socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            frame = self._socket.recv(zmq.NOBLOCK)
            if frame[:1] == b"\x01":
                self._subscribed.add(frame[1:])
            elif frame[:1] == b"\x00":
                self._subscribed.discard(frame[1:])

    def counters(self) -> dict[str, int]:
        """The messages ZeroMQ refused, per topic."""
        return dict(self.dropped)

    def close(self) -> None:
        self._socket.close(linger=0)

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Subscriber:
    """A SUB socket for htsat-live messages: connect, optional CURVE, topic filter, poll.

    `receive(timeout)` returns one stream.messages.Message (its body with the envelope) or None;
    `poll(limit)` returns up to `limit` waiting (topic, body) pairs at once without waiting (the GUI's
    message source). Messages that are not JSON objects or carry another schema version are skipped and
    counted in `skipped`; `missed[topic]` counts messages lost on the way (gaps in `seq`, per stream).
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        topics: tuple[str, ...] = (),
        server_key: str = "",
        client_secret_key: str = "",
        context: zmq.Context | None = None,
    ):
        self.address = address
        self._socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        # A subscriber that stops reading (a paused terminal) holds at most this many messages; ZeroMQ drops
        # the rest, and the gaps in `seq` say how many (`missed`).
        self._socket.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
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
        return Message(topic, str(body.get("stream")), body)

    def _count_gap(self, topic: str, body: dict) -> None:
        seq = body.get("seq")
        if topic not in self.missed or not isinstance(seq, int):
            return
        key = (topic, str(body.get("stream")))
        last = self._last_seq.get(key)
        if last is not None and seq > last + 1:
            self.missed[topic] += seq - last - 1
        self._last_seq[key] = seq
