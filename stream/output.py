"""The one interface of the pipeline's outputs: whatever takes the messages of docs/schema.md.

An output is one small class. The pipeline knows none of them by name: it hands every message of
every stream to each output that takes its topic (`wants`), in the order they are listed (`handle`, one
message at a time), gathers their counters into each stream's `status` under each output's `name`
(stream.status), and closes them in the reverse order when it stops, so an output may pass its results
on to one listed before it (the sinks tell the event store where each event's clip went). Before the streams start,
`attach` shows every output each stream's ring buffer and detection targets (clips are cut from the
ring). A back-channel, such as MQTT's thresholds, is handed to its output when it is built. A stream
builds no `scores` or `mel` message that no output wants: a detector of many quiet microphones that nobody
watches live spends nothing on them.

Adding an output is writing one subclass of `Output` and listing it where the outputs are built
(stream.building for `detect`). `Listener` makes an output of a function of (topic, stream, body):
the GUI, the benchmarks and the tests listen that way.
"""

from collections.abc import Callable

from htsat_live.stream.messages import TOPICS, EventMessage, Message
from htsat_live.stream.ring import RingBuffer


class Output:
    """Takes the pipeline's messages: a subclass implements `handle`; the rest does nothing unless overridden
    (as in `logging.Handler`, whose `emit` each handler implements)."""

    name: str | None = None  # the `status` key its counters go under (docs/schema.md); outputs may share one
    topics: tuple[str, ...] = TOPICS  # the topics it takes

    def wants(self, topic: str) -> bool:
        """Whether it takes messages of `topic` now (an output whose readers come and go may say no)."""
        return topic in self.topics

    def attach(self, stream: str, ring: RingBuffer, targets: list[str]) -> None:
        """A stream of the pipeline: its name, the ring buffer its audio is in, its detection targets."""

    def handle(self, message: Message | EventMessage) -> None:
        """Take one message; an output that fails loses that message, never the stream."""
        raise NotImplementedError(f"{type(self).__name__} must implement handle")

    def counters(self) -> dict:
        """What it counted, shown on `status` under `name`."""
        return {}

    def close(self) -> None:
        """Write out what it holds and let go of it; no message comes after this."""


class Listener(Output):
    """An output that calls `listen(topic, stream, body)` for every message of `topics` (all by default)."""

    def __init__(self, listen: Callable[[str, str, dict], None], topics: tuple[str, ...] = TOPICS):
        self.listen = listen
        self.topics = topics

    def handle(self, message: Message | EventMessage) -> None:
        self.listen(message.topic, message.stream, message.body)


def close_outputs(outputs: list[Output]) -> None:
    """Close `outputs` in the reverse of their order: when the pipeline stops, or when building it failed."""
    for output in reversed(outputs):
        output.close()
