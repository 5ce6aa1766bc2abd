"""Local mode: the pipeline runs in this process and its messages reach the GUI thread through a
bounded queue, as the same schema-v1 bodies a subscriber would receive (docs/schema.md)."""

import queue
import time

SCHEMA_VERSION = 1
QUEUE_MESSAGES = 2000  # about half a minute of messages; beyond it new ones are dropped (a `seq` gap)


class LocalSource:
    """A MessageSource for a `stream.pipeline.Pipeline` built with `listeners=[source.listen]`.

    `listen` runs on the pipeline's threads and never blocks: when the GUI falls behind, messages are
    dropped and show up as gaps in `seq`, which the viewer counts as lost.
    """

    def __init__(self):
        self.pipeline = None
        self._queue: queue.Queue[tuple[str, dict]] = queue.Queue(QUEUE_MESSAGES)
        self._seq: dict[str, int] = {}

    def attach(self, pipeline) -> None:
        """Take ownership of the pipeline: start it now, stop it on `close()`."""
        self.pipeline = pipeline
        pipeline.start()

    def listen(self, topic: str, stream: str, body: dict) -> None:
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        message = {"schema": SCHEMA_VERSION, "topic": topic, "stream": stream, "seq": seq,
                   "sent_time": time.time(), **body}
        try:
            self._queue.put_nowait((topic, message))
        except queue.Full:
            pass  # counted by the viewer from the gap in seq

    def poll(self, limit: int) -> list[tuple[str, dict]]:
        messages = []
        while len(messages) < limit:
            try:
                messages.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return messages

    def set_threshold(self, target: str, on: float) -> None:
        """Apply a threshold to the running pipeline's event detectors (shown on the next `status`)."""
        if self.pipeline is not None:
            self.pipeline.set_threshold(target, on)

    def connection(self) -> tuple[str, bool]:
        if self.pipeline is None:
            return "pipeline not started", False
        return "local pipeline", True

    def close(self) -> None:
        """Stop the pipeline: captures end, open events end, sinks are flushed."""
        if self.pipeline is not None:
            self.pipeline.stop()
            self.pipeline = None
