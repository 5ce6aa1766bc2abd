"""Inference served by Ray Serve (stream/cluster.py): the same timelines and events as in-process inference,
several streams on one deployment, a replica killed mid-stream, an unreachable address, and every other
command working where Ray cannot be imported.

One real Ray instance (2 CPUs, dashboard off, no HTTP proxy) serves the embedded starter model from two
replicas for the whole module; the tests that need Ray skip with a reason where it is not installed.
"""

import functools
import os
import re
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from htsat_live.model import DEMO_RECORDING, FRAME_SECONDS, load_model, read_clip
from htsat_live.stream.config import load_config, with_overrides
from htsat_live.stream.output import Listener
from htsat_live.stream.pipeline import Pipeline
from htsat_live.stream.replay import file_timeline

DEMO = str(DEMO_RECORDING)
EVENT_LINE = re.compile(r"^\[\s*([\d.]+) s\] (start|end)\s+#\d+\s+(\S+)\s*(.*)$")


@pytest.fixture(scope="module")
def model():
    return load_model(None)  # the embedded starter model


@pytest.fixture(scope="module")
def served():
    """(the client, the ray module) of the module's Ray instance with the starter model deployed."""
    ray = pytest.importorskip("ray", reason="Ray Serve is the optional extra: pip install -e '.[cluster]'")
    from htsat_live.stream.inference import cluster

    assert cluster.start_ray(None, num_cpus=2), "a Ray instance already runs on this machine: stop it first"
    try:
        handle = cluster.deploy(
            functools.partial(load_model, None), cluster.ServeSettings(replicas=2, max_batch=8, num_cpus=1)
        )
        yield cluster.ServeInference(handle, cluster.gcs_address()), ray
    finally:
        ray.shutdown()


def fast_config(**settings):
    return with_overrides(
        load_config(None), {"publish.enabled": False, "store.path": "", "source.fast": True, **settings}
    )


def run_pipeline(config, model, inputs, inference=None, listeners=()):
    pipeline = Pipeline(config, model, inputs, outputs=[Listener(listen) for listen in listeners], inference=inference)
    pipeline.start()
    assert pipeline.wait(180), "the streams did not end"
    return pipeline.stop()


class Events:
    """A listener keeping each stream's finished events: (label, onset, offset), cancelled ones left out."""

    def __init__(self):
        self.by_stream: dict[str, list] = {}

    def __call__(self, topic: str, stream: str, body: dict) -> None:
        if topic == "event" and body["state"] == "end" and not body["cancelled"]:
            self.by_stream.setdefault(stream, []).append((body["label"], body["onset"], body["offset"]))


def test_a_local_ray_instance_listens_on_loopback_only(served):
    from htsat_live.stream.inference import cluster

    host = cluster.gcs_address().rpartition(":")[0]
    assert host == "127.0.0.1"


def test_timelines_through_ray_equal_local_inference(served, model):
    client, _ = served
    wave = read_clip(DEMO)
    local = file_timeline(model, wave, 1.25, batch_size=4)  # [frames, C]
    remote = file_timeline(client, wave, 1.25, batch_size=4)
    assert remote.shape == local.shape and local.shape[1] == len(model.labels)
    assert np.abs(remote - local).max() <= 1e-5


def detect_events(run_demo_detect, *arguments: str) -> list[tuple]:
    """The events `htsat-live detect` prints of the demo: (state, label, time, the rest of the line)."""
    result = run_demo_detect('store.path=""', flags=arguments)
    assert result.returncode == 0, result.stderr
    events = [EVENT_LINE.match(line).groups() for line in result.stdout.splitlines() if EVENT_LINE.match(line)]
    assert events, result.stdout
    return [(state, label, float(time), rest) for time, state, label, rest in events]


def test_detect_prints_the_same_events_through_ray_as_in_process(served, run_demo_detect):
    client, _ = served
    local = detect_events(run_demo_detect)
    # joins this module's Ray and its deployment
    remote = detect_events(run_demo_detect, "--inference", f"ray:{client.address}")
    assert [(state, label) for state, label, _, _ in remote] == [(state, label) for state, label, _, _ in local]
    assert all(abs(a[2] - b[2]) <= FRAME_SECONDS for a, b in zip(remote, local))


def test_four_streams_share_one_deployment_and_each_matches_local_inference(served, model):
    client, _ = served
    names = ("north", "south", "east", "west")
    local_events, remote_events = Events(), Events()
    run_pipeline(fast_config(), model, [DEMO], listeners=[local_events])
    reports = run_pipeline(fast_config(**{"source.names": names}), model, [DEMO] * 4, client, [remote_events])
    assert sorted(reports) == sorted(names)
    expected = local_events.by_stream["demo.wav"]
    for name in names:
        assert (reports[name].windows, reports[name].failed_windows, reports[name].skipped_windows) == (48, 0, 0)
        got = remote_events.by_stream[name]
        assert [label for label, _, _ in got] == [label for label, _, _ in expected]
        assert np.abs(np.array([e[1:] for e in got]) - np.array([e[1:] for e in expected])).max() <= FRAME_SECONDS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("command", [["detect", DEMO, "--fast", "--inference"], ["serve", "--address"]])
def test_an_unreachable_ray_address_is_one_line_and_exit_2(command):
    pytest.importorskip("ray", reason="Ray Serve is the optional extra: pip install -e '.[cluster]'")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    argument = f"ray:{address}" if command[0] == "detect" else address
    result = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", *command, argument], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot reach Ray at {address}" in lines[0], result.stderr


def test_a_bare_ray_client_address_is_quoted_whole():
    pytest.importorskip("ray", reason="Ray Serve is the optional extra: pip install -e '.[cluster]'")
    address = f"ray://127.0.0.1:{free_port()}"  # the form the help shows for ray:ADDRESS, given without ray:
    for setting in (address, f"ray:{address}"):
        result = subprocess.run(
            [sys.executable, "-m", "htsat_live.cli", "detect", DEMO, "--fast", "--inference", setting],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"htsat-live detect: cannot reach Ray at {address}: Connection refused"
        ], result.stderr


def test_max_replicas_hands_the_replica_count_to_serves_autoscaler():
    pytest.importorskip("ray", reason="Ray Serve is the optional extra: pip install -e '.[cluster]'")
    from htsat_live.stream.inference.cluster import ServeSettings, deployment_options

    fixed = deployment_options(ServeSettings(replicas=3, max_batch=8))
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    scaled = deployment_options(ServeSettings(replicas=2, max_batch=16, max_replicas=10))
    assert "num_replicas" not in scaled
    assert scaled["autoscaling_config"] == {"min_replicas": 2, "max_replicas": 10, "target_ongoing_requests": 16}
    assert scaled["max_ongoing_requests"] == 32


def test_max_replicas_below_replicas_is_one_line_and_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "serve", "--replicas", "3", "--max-replicas", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--max-replicas at least --replicas" in result.stderr


def replica_names(ray) -> list[str]:
    return [
        actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True) if "WindowModel" in actor["name"]
    ]


def test_a_replica_killed_mid_stream_is_replaced_and_the_stream_goes_on(served, model, wait_until):
    client, ray = served
    statuses, killed = [], []

    def kill_a_replica(topic, stream, body):
        if topic == "status":
            statuses.append(body)
        if topic == "scores" and not killed and body["grid_end"] > 1500:  # about 15 s into the stream
            killed.append(replica_names(ray)[0])
            ray.kill(ray.get_actor(killed[0], namespace="serve"), no_restart=True)

    reports = run_pipeline(fast_config(), model, [DEMO], client, [kill_a_replica])
    report = reports["demo.wav"]
    assert killed
    # Serve sends a call in flight on the killed replica to another one; what could not be run would be counted
    assert report.windows + report.failed_windows == 48 and report.windows >= 46
    assert statuses[-1]["inference"]["retries"] == client.retries
    assert statuses[-1]["counters"]["failed_windows"] == report.failed_windows
    wait_until(
        lambda: len(replica_names(ray)) == 2 and killed[0] not in replica_names(ray),
        120,
        "Serve to replace the killed replica",
    )
    wave = np.zeros((1, 320000), np.float32)
    np.testing.assert_allclose(
        client.predict(wave)["framewise"], model.predict(wave, short="pad")["framewise"], atol=1e-5
    )


def test_a_deployment_lost_mid_stream_costs_counted_retries_and_windows_and_the_stream_goes_on(served, model):
    from ray import serve

    from htsat_live.stream.inference import cluster

    client, _ = served
    statuses, redeploy = [], []

    def lose_the_deployment(topic, stream, body):
        if topic == "status":
            statuses.append(body)
        if topic == "scores" and not redeploy and body["grid_end"] > 1500:
            serve.delete(cluster.APP)  # every call fails from now until it is deployed again
            redeploy.append(
                threading.Thread(
                    target=cluster.deploy,
                    args=(
                        functools.partial(load_model, None),
                        cluster.ServeSettings(replicas=2, max_batch=8, num_cpus=1),
                    ),
                )
            )
            redeploy[0].start()

    retries_before = client.retries
    reports = run_pipeline(fast_config(), model, [DEMO], client, [lose_the_deployment])
    redeploy[0].join()
    report = reports["demo.wav"]
    assert client.retries > retries_before  # each lost call was sent again after a pause
    assert report.windows + report.failed_windows == 48 and report.windows > 20  # and the stream went on
    assert statuses[-1]["inference"] == client.counters()
    assert statuses[-1]["counters"]["failed_windows"] == report.failed_windows


SHIM = "raise ImportError('ray is made unimportable by this test')\n"


def test_every_other_command_works_where_ray_cannot_be_imported(tmp_path):
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text(SHIM)  # found before the installed ray

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def run(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "htsat_live.cli", *arguments], capture_output=True, text=True, timeout=300, env=env
        )

    shadowed = subprocess.run([sys.executable, "-c", "import ray"], capture_output=True, text=True, env=env)
    assert "made unimportable" in shadowed.stderr
    help_text = run("--help")
    assert help_text.returncode == 0 and "serve" in help_text.stdout
    labels = run("labels")
    assert labels.returncode == 0 and "Speech" in labels.stdout
    tagged = run("tag", DEMO)
    assert tagged.returncode == 0, tagged.stderr
    detected = run("detect", DEMO, "--fast", "--set", "publish.enabled=false", "--set", 'store.path=""')
    assert detected.returncode == 0 and "start" in detected.stdout, detected.stderr
    for arguments in (("serve",), ("detect", DEMO, "--fast", "--inference", "ray")):
        refused = run(*arguments)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1 and "pip install -e '.[cluster]'" in lines[0], refused.stderr
