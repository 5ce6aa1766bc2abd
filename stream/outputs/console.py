"""The console of `htsat-live detect`: one line per event as it starts and ends (docs/console.md).

`EventPrinter` is an output of the pipeline (stream.output) that prints confirmed events only
(stream.events.ConfirmedView), or with `provisional` every report as the detector makes it.
"""

from htsat_live.stream.events import ConfirmedView, Event
from htsat_live.stream.messages import EventMessage, Message
from htsat_live.stream.output import Output


def format_event(stream: str, event: Event, reached: float, show_stream: bool = False) -> str | None:
    """One line for an event `start` or `end` report (None for updates), stamped with `reached`, the stream
    seconds the detector had judged when it made the report (docs/console.md); show_stream puts the stream's
    name first (a detector of several sources)."""
    unit = "" if event.classes else " dBFS"  # an event of no model class is a loudness event: levels, not scores
    stamp = f"{stream}: [{reached:9.2f} s]" if show_stream else f"[{reached:9.2f} s]"
    span = f"{event.onset:.2f}-{event.offset:.2f} s"
    if event.state == "start":
        what = f"score {event.peak:.2f}" if event.classes else f"{event.peak:.1f} dBFS"
        return f"{stamp} start  #{event.id:<4} {event.label}  from {event.onset:.2f} s ({what})"
    if event.state == "end":
        if event.cancelled:
            return f"{stamp} end    #{event.id:<4} {event.label}  {span} (cancelled: revised scores)"
        return (
            f"{stamp} end    #{event.id:<4} {event.label}  {span}, peak {event.peak:.2f}{unit}, "
            f"mean {event.mean:.2f}{unit}"
        )
    return None


class EventPrinter(Output):
    """Prints events as they start and end: confirmed ones only, or with `provisional` every report as the
    detector makes it; `show_stream` names the stream on each line.

    Each line is stamped with the stream time its report was made at (the newest audio judged: the end of the
    last `scores` message, or of a loudness event), so the stamps of a stream never go back, while the
    event times in the lines may: a start is reported when confirmed, an end once the scores after it are final.
    """

    topics = ("scores", "event")

    def __init__(self, provisional: bool = False, show_stream: bool = False):
        self.view = None if provisional else ConfirmedView()
        self.show_stream = show_stream
        self.reached: dict[str, float] = {}  # stream -> stream seconds of the newest audio judged

    def handle(self, message: Message | EventMessage) -> None:
        stream = message.stream
        if message.topic == "scores":
            self._reach(stream, message.body["grid_end"] * message.body["frame_seconds"])
        if message.topic != "event":
            return
        event = message.event
        self._reach(stream, event.offset)  # a loudness event may run ahead of the newest scores
        for shown in [event] if self.view is None else self.view.take(stream, event):
            line = format_event(stream, shown, self.reached[stream], self.show_stream)
            if line is not None:
                print(line, flush=True)

    def _reach(self, stream: str, seconds: float) -> None:
        self.reached[stream] = max(self.reached.get(stream, 0.0), seconds)
