"""`htsat-live serve` with a repeated --model: the deployment serves the members' averaged scores, says so first,
and refuses members whose labels differ.

Its own file: `serve` starts this machine's Ray instance itself (test_cluster.py's module holds another).
"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from htsat_live.cli import main
from htsat_live.model import load_model

REPO = Path(__file__).resolve().parents[3]


def test_serve_refuses_members_whose_labels_differ_naming_the_class(tiny_checkpoint, tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray Serve is the optional extra: pip install -e '.[cluster]'")
    relabelled = tmp_path / "relabelled.safetensors"
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["class_0", "class_1", "Kettle", *[f"class_{i}" for i in range(3, 10)]]))
    assert main(["convert", str(tiny_checkpoint), str(relabelled), "--labels", str(labels)]) == 0
    capsys.readouterr()
    assert main(["serve", "--model", str(tiny_checkpoint), "--model", str(relabelled)]) == 2  # before Ray starts
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "class 2 is 'Kettle' in" in err and "members must share their labels" in err


@pytest.mark.timeout(300)
def test_serve_with_two_models_serves_their_average_through_ray(tiny_checkpoint, second_tiny, read_lines):
    pytest.importorskip("ray", reason="Ray Serve is the optional extra: pip install -e '.[cluster]'")
    from htsat_live.stream.inference.cluster import ServeSettings
    from htsat_live.stream.inference.remote import InferenceProcess

    members = [str(tiny_checkpoint), str(second_tiny)]
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "htsat_live.cli",
            "serve",
            "--replicas",
            "1",
            "--model",
            members[0],
            "--model",
            members[1],
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = None
    try:
        lines = read_lines(serve.stdout)
        first = lines.next_line(240, "serve to deploy the ensemble")
        assert first.startswith(f"serving {members[0]} + {members[1]} (ensemble of 2 models, scores averaged; "), first
        assert "thresholds and median filter are each detector's: from its config, else its first --model" in first
        assert lines.next_line(30, "where to send windows").startswith("send windows here")
        address = re.search(r"Ray at (\S+)$", first).group(1)
        ensemble = load_model(members)
        client = InferenceProcess.open(address, None, ensemble.labels, ServeSettings())  # as detect reaches it
        assert client.source == f"{members[0]} + {members[1]}"
        waves = (0.1 * np.random.default_rng(0).standard_normal((2, 320000))).astype(np.float32)  # [2, 320000]
        served = client.predict(waves)
    finally:
        if client is not None:
            client.close()
        serve.terminate()  # SIGTERM, as a service manager stops it: it undeploys and exits 0
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(timeout=30)
    err = serve.stderr.read()
    assert serve.returncode == 0 and "stopping the deployment" in err and "SIGTERM received" not in err, err[-2000:]
    singles = [load_model(member).predict(waves, short="pad") for member in members]
    assert np.abs(singles[0]["framewise"] - singles[1]["framewise"]).max() > 1e-3  # the members differ
    for key in ("clipwise", "framewise"):
        np.testing.assert_allclose(served[key], (singles[0][key] + singles[1][key]) / 2, atol=1e-5, rtol=0)
