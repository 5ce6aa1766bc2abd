"""What the output tests share: an event as the detector reports it."""

import pytest

from htsat_live.model import FRAME_SECONDS
from htsat_live.stream.events import Event


@pytest.fixture
def make_event():
    """`make_event(id=1, state="end", ...)`: an Event of label Dog (class 74) confirmed after 2 s, with its
    frames, seconds and wall-clock times (from `wall`) filled in from the onset and offset frames."""

    def build(
        id=1, state="end", label="Dog", onset_frame=1024, offset_frame=1536, cancelled=False, confirmed=True, wall=1.7e9
    ) -> Event:
        return Event(
            id=id,
            state=state,
            label=label,
            classes=(74,),
            onset_frame=onset_frame,
            offset_frame=offset_frame,
            onset=onset_frame * FRAME_SECONDS,
            offset=offset_frame * FRAME_SECONDS,
            onset_wall=wall + onset_frame * FRAME_SECONDS,
            offset_wall=wall + offset_frame * FRAME_SECONDS,
            peak=0.9,
            mean=0.7,
            threshold=0.5,
            final=state == "end",
            cancelled=cancelled,
            latency=1.0,
            confirmed=confirmed,
            confirm_latency=2.0 if confirmed else None,
        )

    return build
