"""A short soak: minutes of varied audio (silence, clipping, NaN bursts) through every sink and the
publisher; no event may be lost and the counters must agree. Memory figures belong to `bench --soak`."""

import csv

from htsat_live.evaluation.soak import run_soak
from htsat_live.model import load_model


def test_a_short_soak_loses_no_event_and_its_counters_agree(tmp_path):
    result = run_soak(load_model(), minutes=3, out_dir=tmp_path, progress=False)
    assert result.problems == []
    assert result.events > 0 and result.real_events > 0  # the embedded model finds the demo's events
    rows = list(csv.DictReader(open(tmp_path / "soak.csv")))
    assert [int(row["minute"]) for row in rows] == [1, 2, 3]
    assert int(rows[-1]["windows"]) > int(rows[0]["windows"]) > 0
    assert (tmp_path / "soak.png").stat().st_size > 10_000
