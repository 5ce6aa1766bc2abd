"""The evaluation command and its metrics, against the paper's Table 3 and hand-made tables."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from htsat_live.cli import main
from htsat_live.evaluation import metrics as evaluate
from htsat_live.model import EVENT_COLUMNS

DESED = Path(__file__).resolve().parents[1] / "data" / "desed"

# Table 3 of the HTS-AT paper, single model (golden README), as fractions.
TABLE3_MACRO = 0.4842
TABLE3_CLASSES = {
    "Alarm_bell_ringing": 0.4856,
    "Blender": 0.5294,
    "Cat": 0.6767,
    "Dishes": 0.2496,
    "Dog": 0.4799,
    "Electric_shaver_toothbrush": 0.4292,
    "Frying": 0.6026,
    "Running_water": 0.4303,
    "Speech": 0.4678,
    "Vacuum_cleaner": 0.4912,
}


def run_evaluate(detections: Path, truth: Path, meta: Path, *options: str) -> int:
    """`htsat-live evaluate DETECTIONS --ground-truth TRUTH --metadata META *options` run in this process."""
    return main(["evaluate", str(detections), "--ground-truth", str(truth), "--metadata", str(meta), *options])


def test_evaluate_json_reproduces_table3_single_model(capsys):
    code = run_evaluate(DESED / "htsat-test_outputmap.tsv", DESED / "answer.tsv", DESED / "answer_meta.tsv", "--json")
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert round(result["macro_f1"], 4) == TABLE3_MACRO
    assert set(result["class_f1"]) == set(TABLE3_CLASSES)
    for label, expected in TABLE3_CLASSES.items():
        assert abs(result["class_f1"][label] - expected) <= 1e-4, label
    assert 0.0 < result["segment_f1"] < 1.0
    assert result["psds1"] is None


def test_evaluate_prints_a_table_with_every_class(capsys):
    run_evaluate(DESED / "htsat-test_outputmap.tsv", DESED / "answer.tsv", DESED / "answer_meta.tsv")
    table = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:] if line.strip()}
    assert rows["macro"] == ["0.4842"]  # fractions, as --json and train report them
    for label, expected in TABLE3_CLASSES.items():
        assert rows[label][0] == f"{expected:.4f}", label


def _tables():
    ground_truth = pd.DataFrame(
        [("a.wav", 1.0, 3.0, "Dog"), ("a.wav", 5.0, 9.0, "Speech"), ("b.wav", 0.0, 2.0, "Dog")], columns=EVENT_COLUMNS
    )
    metadata = pd.DataFrame({"filename": ["a.wav", "b.wav"], "duration": [10.0, 4.0]})
    return ground_truth, metadata


def test_segment_f1_counts_one_second_segments():
    ground_truth, metadata = _tables()
    # Dog right in a.wav, missed in b.wav; Speech covers 2 of its 4 segments; one false Speech segment.
    detections = pd.DataFrame(
        [("a.wav", 1.0, 3.0, "Dog"), ("a.wav", 5.0, 7.0, "Speech"), ("b.wav", 3.0, 4.0, "Speech")],
        columns=EVENT_COLUMNS,
    )
    micro, per_class = evaluate.segment_f1(ground_truth, metadata, detections)
    # Dog: tp 2, fn 2 -> F1 2*2/(2*2+2) = 2/3. Speech: tp 2, fp 1, fn 2 -> 4/7. Micro: tp 4, fp 1, fn 4 -> 8/13.
    assert per_class["Dog"] == pytest.approx(2 / 3)
    assert per_class["Speech"] == pytest.approx(4 / 7)
    assert micro == pytest.approx(8 / 13)


def _score_files(directory: Path, ground_truth: pd.DataFrame, metadata: pd.DataFrame, labels: list[str]) -> None:
    """Score files that are 1 inside each reference event and 0 elsewhere, on a 0.1-s grid."""
    for filename, duration in zip(metadata["filename"], metadata["duration"]):
        frames = np.arange(round(duration * 10))
        onsets = frames / 10
        table = pd.DataFrame({"onset": onsets, "offset": (frames + 1) / 10})
        for label in labels:
            events = ground_truth[(ground_truth.filename == filename) & (ground_truth.event_label == label)]
            table[label] = [float(any((events.onset <= t + 1e-9) & (t + 0.1 <= events.offset + 1e-9))) for t in onsets]
        table.to_csv(directory / f"{Path(filename).stem}.tsv", sep="\t", index=False)


def test_psds_is_one_for_scores_that_match_the_reference_and_drops_for_a_missed_class(tmp_path):
    ground_truth, metadata = _tables()
    _score_files(tmp_path, ground_truth, metadata, ["Dog", "Speech"])
    scores = evaluate.read_scores(tmp_path, list(metadata["filename"]))
    assert evaluate.psds(ground_truth, metadata, scores, evaluate.PSDS1) == pytest.approx(1.0)
    scores["a"]["Speech"] = 0.0
    assert evaluate.psds(ground_truth, metadata, scores, evaluate.PSDS1) < 0.6


def test_missing_score_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no score file"):
        evaluate.read_scores(tmp_path, ["a.wav"])


def test_event_table_without_required_columns_is_refused_clearly(tmp_path, capsys):
    path = tmp_path / "bad.tsv"
    path.write_text("filename\tstart\tend\tlabel\na.wav\t0\t1\tDog\n")
    code = run_evaluate(path, DESED / "answer.tsv", DESED / "answer_meta.tsv")
    assert code == 2
    assert "lacks the columns" in capsys.readouterr().err


def test_collar_event_f1_matches_within_200_ms_and_is_nan_without_events():
    reference = {"a": [(1.0, 3.0, "Dog"), (5.0, 6.0, "Cat")]}
    # Dog within the collars (onset 0.15 s late, offset 0.3 s early <= 20 % of 2 s); Cat 0.3 s late: a miss
    # and a false alarm. tp 1, fp 1, fn 1 -> F1 = 2 / 4.
    estimated = {"a": [(1.15, 2.7, "Dog"), (5.3, 6.0, "Cat")]}
    assert evaluate.event_based_f1(reference, estimated, ["Cat", "Dog"]) == pytest.approx(0.5)
    assert evaluate.event_based_f1(reference, reference, ["Cat", "Dog"]) == pytest.approx(1.0)
    assert np.isnan(evaluate.event_based_f1({"a": []}, {"a": []}, ["Cat"]))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


HEADER = "filename\tonset\toffset\tevent_label\n"


@pytest.fixture()
def small_truth(tmp_path):
    truth = _write(
        tmp_path / "truth.tsv", HEADER + "a.wav\t1.0\t3.0\tDog\na.wav\t2.0\t4.0\tDog\nb.wav\t0.0\t2.0\tCat\n"
    )
    meta = _write(tmp_path / "meta.tsv", "filename\tduration\na.wav\t10\nb.wav\t4\n")
    return truth, meta


def test_overlapping_truth_events_are_merged_and_counted(small_truth, tmp_path, capsys):
    truth, meta = small_truth
    detections = _write(tmp_path / "det.tsv", HEADER + "a.wav\t1.0\t4.0\tDog\nb.wav\t0.0\t2.0\tCat\n")
    assert run_evaluate(detections, truth, meta, "--json") == 0
    captured = capsys.readouterr()
    assert "merged 1 overlapping events" in captured.err and "ground truth" in captured.err
    result = json.loads(captured.out)
    assert result["class_f1"] == {"Cat": 1.0, "Dog": 1.0} and result["macro_f1"] == 1.0


def test_empty_detections_score_zero_and_the_json_is_strict(small_truth, tmp_path, capsys):
    truth, meta = small_truth
    detections = _write(tmp_path / "det.tsv", HEADER)
    assert run_evaluate(detections, truth, meta, "--json") == 0
    out = capsys.readouterr().out
    assert "NaN" not in out
    result = json.loads(out)
    assert result["macro_f1"] == 0.0 and result["class_f1"] == {"Cat": 0.0, "Dog": 0.0}
    assert result["segment_f1"] == 0.0
    run_evaluate(detections, truth, meta)
    assert "n/a" not in capsys.readouterr().out


def test_a_class_never_detected_counts_zero_in_the_macro(small_truth, tmp_path, capsys):
    truth, meta = small_truth
    detections = _write(tmp_path / "det.tsv", HEADER + "a.wav\t1.0\t4.0\tDog\n")
    assert run_evaluate(detections, truth, meta, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["class_f1"] == {"Cat": 0.0, "Dog": 1.0} and result["macro_f1"] == 0.5


@pytest.mark.parametrize(
    "body, message",
    [
        ("a.wav\t3.0\t1.0\tDog\n", "line 2: onset 3 s is after offset 1 s"),
        ("a.wav\tsoon\t1.0\tDog\n", "line 2: onset 'soon' is not a number"),
        ('a.wav\t1.0\n"broken\n', "not a tab-separated event table"),
    ],
)
def test_bad_detection_tables_are_one_line_errors(small_truth, tmp_path, capsys, body, message):
    truth, meta = small_truth
    detections = _write(tmp_path / "det.tsv", HEADER + body)
    assert run_evaluate(detections, truth, meta) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_evaluate_prints_no_library_warnings(small_truth, tmp_path):
    truth, meta = small_truth
    detections = _write(tmp_path / "det.tsv", HEADER + "a.wav\t1.0\t2.0\tDog\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "htsat_live.cli",
            "evaluate",
            str(detections),
            "--ground-truth",
            str(truth),
            "--metadata",
            str(meta),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
