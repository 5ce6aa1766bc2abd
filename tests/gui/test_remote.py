"""Remote mode against a real ZeroMQ PUB socket on loopback: the window draws what is published and
says when the link drops and comes back after the publisher restarts."""

import time

import numpy as np
import zmq.auth

from htsat_live.gui.live_data import LiveData
from htsat_live.gui.receiver import Receiver
from htsat_live.gui.window import LiveWindow
from htsat_live.stream.outputs.publish import Publisher, Subscriber

ENVELOPE = ("schema", "topic", "stream", "seq", "sent_time")


def body(message: dict) -> dict:
    """What the pipeline hands the publisher: the message without the envelope the publisher adds."""
    return {key: value for key, value in message.items() if key not in ENVELOPE}


def wait_for(qapp, condition, seconds: float, publish=None) -> bool:
    """Run the Qt event loop (the receiver's timer polls the socket) until `condition()` holds,
    calling `publish()` every 50 ms meanwhile (ZeroMQ drops messages sent before a subscriber joins)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if publish is not None:
            publish()
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            qapp.processEvents()
            time.sleep(0.005)
        if condition():
            return True
    return False


def tone_mel(columns: int, row: int) -> np.ndarray:
    mel = np.full((columns, 64), -80.0)
    mel[:, row] = -5.0
    return mel


def test_remote_view_follows_the_publisher_across_a_restart(qapp, messages, grab):
    publisher = Publisher("tcp://127.0.0.1:*")
    address = publisher.address
    live = LiveData()
    receiver = Receiver(Subscriber(address), live)
    window = LiveWindow(live, "remote")
    window.resize(1200, 800)
    receiver.connection_changed.connect(window.status_bar.show_connection)
    states = []
    receiver.connection_changed.connect(lambda text, state: states.append(state))
    receiver.start()
    window.show()
    connection = window.status_bar.connection
    try:
        assert wait_for(
            qapp,
            lambda: "receiving" in connection.text(),
            5.0,
            lambda: publisher.send("status", "test", body(messages.status(hop=0.5))),
        )
        assert connection.text() == f"{address}: receiving"
        for second in range(10):
            publisher.send("mel", "test", body(messages.mel(second * 100, tone_mel(100, row=20))))
        publisher.send("event", "test", body(messages.event(4, "end", "Dog", 2.0, 6.0, 0.9)))
        assert wait_for(qapp, lambda: live.now >= 10.0 and live.finished, 5.0)
        window.redraw(force=True)
        image = grab(window)
        assert window.status_bar.hop.text() == "hop 0.5 s"
        assert window.lanes.lanes == ["Dog"]
        now, _ = window.display_now()
        x = now - 2.0
        assert (
            sum(image.colour(window.spectrogram, x, 20.5).getRgb()[:3])
            > sum(image.colour(window.spectrogram, x, 30.5).getRgb()[:3]) + 150
        )

        publisher.close()
        assert wait_for(qapp, lambda: "reconnecting" in connection.text(), 6.0)
        assert connection.text() == f"{address}: no data, reconnecting" and states[-1] == "lost"

        publisher = Publisher(address)  # a new run of the publisher: seq and stream time start at 0
        messages.seq.clear()
        assert wait_for(
            qapp,
            lambda: "reconnected" in connection.text(),
            6.0,
            lambda: publisher.send("mel", "test", body(messages.mel(0, tone_mel(100, row=40)))),
        )
        assert connection.text() == f"{address}: receiving (reconnected 1x)"
        assert live.counts.restarts == 1 and live.finished and not live.events()
        assert live.now == 1.0  # the old timeline is gone, the new one starts at 0
    finally:
        receiver.stop()
        publisher.close()
        window.close()


def test_remote_view_reads_an_encrypted_publisher_with_its_public_key(qapp, messages, tmp_path):
    public_file, secret_file = zmq.auth.create_certificates(tmp_path, "server")
    publisher = Publisher("tcp://127.0.0.1:*", secret_key_file=secret_file)
    live = LiveData()
    receiver = Receiver(Subscriber(publisher.address, server_key=public_file), live)
    texts = []
    receiver.connection_changed.connect(lambda text, state: texts.append(text))
    receiver.start()
    try:
        assert wait_for(
            qapp,
            lambda: live.status,
            5.0,
            lambda: publisher.send("status", "test", body(messages.status(source="secret"))),
        )
        assert live.status["source"] == "secret"
        assert texts[-1] == f"{publisher.address} (CURVE): receiving"
    finally:
        receiver.stop()
        publisher.close()


def test_a_publisher_whose_source_ended_shows_source_ended_not_a_lost_link(qapp, messages):
    publisher = Publisher("tcp://127.0.0.1:*")
    live = LiveData()
    receiver = Receiver(Subscriber(publisher.address), live)
    shown = []
    receiver.connection_changed.connect(lambda text, state: shown.append((text, state)))
    receiver.start()
    try:
        assert wait_for(
            qapp, lambda: live.status, 5.0, lambda: publisher.send("status", "test", body(messages.status()))
        )
        publisher.send("status", "test", body(messages.status(source_state="ended")))  # the file played to its end
        assert wait_for(qapp, lambda: live.status.get("source_state") == "ended", 5.0)
        publisher.close()  # and the detector exits: silence follows
        assert wait_for(qapp, lambda: not receiver.source.connection()[1], 6.0)
        receiver.poll()
        assert shown[-1] == (f"{publisher.address}: source ended", "ended")
        assert not any(state == "lost" for _, state in shown)
    finally:
        receiver.stop()
        publisher.close()
