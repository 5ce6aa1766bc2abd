"""Publisher and subscriber over real ZeroMQ sockets on loopback: envelope, topics, non-blocking
sends with a stalled subscriber, CURVE, loopback-only binding, the listen and keys commands."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from htsat_live.stream.events import Event
from htsat_live.stream.messages import (
    SCHEMA_VERSION,
    event_message,
    mel_message,
    scores_message,
)
from htsat_live.stream.outputs.publish import Publisher, Subscriber, is_loopback
from htsat_live.stream.stitch import TimelineUpdate

ROOT = Path(__file__).resolve().parents[3]
ANY_PORT = "tcp://127.0.0.1:*"


def connect(publisher: Publisher, **kwargs) -> Subscriber:
    """A subscriber that has provably joined: status messages are sent until one arrives."""
    subscriber = Subscriber(publisher.address, **kwargs)
    for _ in range(200):
        publisher.send("status", "probe", {})
        if subscriber.receive(0.05) is not None:
            while subscriber.receive(0.05) is not None:
                pass
            return subscriber
    subscriber.close()
    raise AssertionError("subscriber never joined")


def collect(subscriber: Subscriber, n: int, timeout: float = 5.0) -> list[tuple[str, dict]]:
    """Messages until `n` arrived or `timeout` seconds passed without one."""
    messages = []
    while len(messages) < n:
        batch = subscriber.poll(n - len(messages), timeout=timeout)
        if not batch:
            break
        messages += batch
    return messages


def test_messages_carry_the_envelope_and_topic_frames():
    with Publisher(ANY_PORT) as publisher, connect(publisher) as subscriber:
        publisher.send("mel", "mic", mel_message(100, np.full((3, 64), -30.0, np.float32), 5.0))
        message = subscriber.receive(2.0)
        assert message.topic == "mel"
        body = message.body
        assert (body["schema"], body["topic"], body["stream"], body["seq"]) == (SCHEMA_VERSION, "mel", "mic", 0)
        assert body["grid_start"] == 100 and len(body["frames"]) == 3 and body["frames"][0][0] == -30.0
        assert body["sent_time"] > 1e9


def test_topic_filter_delivers_only_the_chosen_topics():
    with Publisher(ANY_PORT) as publisher, connect(publisher, topics=("event", "status")) as subscriber:
        publisher.send("scores", "s", {"n": 1})
        publisher.send("event", "s", {"n": 2})
        publisher.send("status", "s", {"n": 3})
        topics = [topic for topic, _ in collect(subscriber, 3, timeout=1.0)]
        assert topics == ["event", "status"]


def test_the_publisher_wants_only_the_topics_its_subscribers_asked_for(wait_until):
    with Publisher(ANY_PORT) as publisher:
        assert not any(publisher.wants(topic) for topic in ("event", "scores", "status", "mel"))
        with Subscriber(publisher.address, topics=("scores",)):
            wait_until(lambda: publisher.wants("scores"), 5.0, "the scores subscription reaching the publisher")
            assert not publisher.wants("mel") and not publisher.wants("event")
            with Subscriber(publisher.address):  # every topic
                wait_until(lambda: publisher.wants("mel"), 5.0, "the second subscriber's subscription")
                assert publisher.wants("event") and publisher.wants("scores")
            wait_until(lambda: not publisher.wants("mel"), 5.0, "the second subscriber leaving")
            assert publisher.wants("scores")  # the first one still takes it
        wait_until(lambda: not publisher.wants("scores"), 5.0, "the last subscriber leaving")


def test_scores_message_sends_the_changed_frames_of_the_top_classes():
    values = np.array([[0.1, 0.9, 0.5], [0.2, 0.8, 0.4]], np.float32)
    update = TimelineUpdate(start=40, values=values, end=42, final_upto=30)
    body = scores_message(
        update,
        np.array([0.3, 0.1, 0.7], np.float32),
        ["a", "b", "c"],
        2,
        wall_time_start=12.5,
        window_start=0,
        window_samples=13440,
        hop=1.25,
        window_wall_end=13.0,
    )
    assert body["classes"] == [2, 0] and body["labels"] == ["c", "a"]
    assert body["frames"] == [[0.5, 0.1], [0.4, 0.2]]
    assert body["clipwise"] == [0.7, 0.3] and body["window_wall_end"] == 13.0
    assert (body["grid_start"], body["grid_end"], body["final_upto"]) == (40, 42, 30)
    every = scores_message(update, np.array([0.3, 0.1, 0.7], np.float32), ["a", "b", "c"], 0, 0.0, 0, 1, 1.25, 9.0)
    assert every["classes"] == [0, 1, 2]
    json.dumps(body, allow_nan=False)


def test_event_messages_are_json_and_nonfinite_values_become_null():
    event = Event(
        id=3,
        state="start",
        label="Dog",
        classes=(74,),
        onset_frame=10,
        offset_frame=20,
        onset=0.1,
        offset=0.2,
        onset_wall=1.0,
        offset_wall=1.1,
        peak=0.9,
        mean=float("nan"),
        threshold=0.5,
        final=False,
        cancelled=False,
        latency=0.25,
        confirmed=False,
        confirm_latency=None,
    )
    with Publisher(ANY_PORT) as publisher, connect(publisher) as subscriber:
        assert publisher.send("event", "mic", event_message(event))
        body = subscriber.receive(2.0).body
        assert (body["id"], body["state"], body["classes"], body["mean"]) == (3, "start", [74], None)


def test_a_stalled_subscriber_never_blocks_sending_nor_starves_others():
    blob = "x" * 100_000
    count = 300  # 30 MB: more than the stalled subscriber's queues and socket buffers hold
    with Publisher(ANY_PORT, hwm=200) as publisher:
        stalled = zmq.Context.instance().socket(zmq.SUB)  # reads nothing while the sender runs, queues little
        stalled.setsockopt(zmq.RCVHWM, 5)
        stalled.setsockopt(zmq.RCVBUF, 4096)
        stalled.setsockopt(zmq.SUBSCRIBE, b"")
        stalled.connect(publisher.address)
        reader = connect(publisher)
        received = []
        sender_done = threading.Event()

        def read():  # until everything came, or the sender finished and 2 s passed in silence
            while len(received) < count:
                messages = reader.poll(1000, timeout=2.0)
                if not messages and sender_done.is_set():
                    break
                received.extend(m for m in messages if m[0] == "scores")

        def send():
            for _ in range(count):
                publisher.send("scores", "s", {"blob": blob})
                time.sleep(0.001)  # a burst of a few messages per hop, not a tight loop
            sender_done.set()

        threads = [threading.Thread(target=read), threading.Thread(target=send)]
        for thread in threads:
            thread.start()
        threads[1].join(timeout=120)
        assert not threads[1].is_alive(), "sending blocked"
        threads[0].join(timeout=120)
        assert len(received) == count and reader.missed["scores"] == 0  # the reading subscriber lost nothing
        assert publisher.dropped["scores"] == 0 and publisher.sent["scores"] == count

        seqs = []  # the stalled subscriber now reads what reached it: the rest was dropped for it alone
        while stalled.poll(500):
            topic, payload = stalled.recv_multipart()
            if topic == b"scores":
                seqs.append(json.loads(payload)["seq"])
        stalled.close(linger=0)
        reader.close()
        assert 0 < len(seqs) < count


def test_subscriber_counts_gaps_in_seq_as_missed_messages():
    with Publisher(ANY_PORT) as publisher, connect(publisher, topics=("scores", "status")) as subscriber:
        publisher.send("scores", "a", {})
        publisher._seq[("scores", "a")] += 4  # as if four messages had been dropped on the way
        publisher.send("scores", "a", {})
        publisher.send("scores", "b", {})
        assert len(collect(subscriber, 3)) == 3 and subscriber.poll(10, timeout=0.2) == []
        assert subscriber.missed["scores"] == 4


def test_messages_of_another_schema_version_are_skipped_and_counted():
    context = zmq.Context.instance()
    raw = context.socket(zmq.PUB)
    port = raw.bind_to_random_port("tcp://127.0.0.1")
    with Subscriber(f"tcp://127.0.0.1:{port}") as subscriber:
        for _ in range(200):
            raw.send_multipart([b"status", json.dumps({"schema": 99}).encode()])
            raw.send_multipart([b"status", b"not json"])
            if subscriber.receive(0.02) is None and subscriber.skipped >= 2:
                break
        assert subscriber.skipped >= 2 and subscriber.received == 0
    raw.close(linger=0)


def test_curve_roundtrip_and_clients_without_the_server_key_get_nothing(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "keys", str(tmp_path / "server")],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    public, secret = tmp_path / "server.key", tmp_path / "server.key_secret"
    assert public.exists() and secret.exists() and (secret.stat().st_mode & 0o077) == 0
    with Publisher(ANY_PORT, secret_key_file=str(secret)) as publisher:
        with connect(publisher, server_key=str(public)) as subscriber:
            publisher.send("event", "s", {"n": 7})
            assert subscriber.receive(2.0).body["n"] == 7
        plain = Subscriber(publisher.address)
        wrong = Subscriber(publisher.address, server_key=zmq.curve_keypair()[0].decode())
        for _ in range(20):
            publisher.send("event", "s", {"n": 8})
        assert plain.receive(0.5) is None and wrong.receive(0.1) is None
        plain.close()
        wrong.close()


def test_non_loopback_binds_need_allow_remote():
    assert is_loopback("tcp://127.0.0.1:5556") and is_loopback("tcp://[::1]:5556") and is_loopback("ipc:///tmp/x")
    assert not is_loopback("tcp://*:5556") and not is_loopback("tcp://0.0.0.0:5556")
    with pytest.raises(ValueError, match="not a loopback address"):
        Publisher("tcp://0.0.0.0:*")
    with Publisher("tcp://0.0.0.0:*", allow_remote=True) as publisher:
        assert publisher.address.startswith("tcp://0.0.0.0:")


def test_bad_key_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.key_secret"
    bad.write_text("nothing here")
    with pytest.raises(ValueError, match="bad.key_secret"):
        Publisher(ANY_PORT, secret_key_file=str(bad))


def test_listen_prints_received_messages_and_keys_refuses_to_overwrite(tmp_path):
    with Publisher(ANY_PORT) as publisher:
        listen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "htsat_live.cli",
                "listen",
                publisher.address,
                "--topic",
                "event",
                "--count",
                "2",
                "--timeout",
                "30",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            for n in range(600):
                publisher.send("event", "mic", {"n": n})
                if listen.poll() is not None:
                    break
                threading.Event().wait(0.05)
            out, _ = listen.communicate(timeout=30)
        finally:
            listen.kill()
    lines = out.splitlines()
    assert listen.returncode == 0 and len(lines) == 2
    topic, body = lines[0].split(" ", 1)
    assert topic == "event" and json.loads(body)["stream"] == "mic"
    prefix = str(tmp_path / "k")
    first = subprocess.run([sys.executable, "-m", "htsat_live.cli", "keys", prefix], cwd=ROOT, capture_output=True)
    again = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "keys", prefix], cwd=ROOT, capture_output=True, text=True
    )
    assert first.returncode == 0 and again.returncode == 1 and "exists" in again.stderr
