"""`htsat-live train` on a DESED-style folder as a user runs it: chosen classes, overlapping events merged, the
feature cache outside the data, and a resumed run that continues its learning-rate schedule."""

import json

import pytest

from htsat_live.model import load_model
from htsat_live.model.checkpoint import read_checkpoint
from htsat_live.model.htsat import HTSATConfig
from htsat_live.training.loop import Schedule, train
from htsat_live.training.settings import TrainSettings
from htsat_live.training.soundscape_folder import read_folder

TINY_FLAGS = [
    "--embed-dim",
    "8",
    "--depths",
    "1",
    "1",
    "1",
    "1",
    "--heads",
    "1",
    "1",
    "1",
    "1",
    "--batch-size",
    "4",
    "--threads",
    "1",
    "--mixup-probability",
    "0",
]


def files_under(path):
    return sorted(p.relative_to(path) for p in path.rglob("*"))


def test_train_reads_a_desed_folder_trains_the_chosen_classes_and_caches_outside_it(
    desed_dir, train_on_desed, tmp_path, capsys
):
    before = files_under(desed_dir)
    out, cache = tmp_path / "run", tmp_path / "cache"
    code = train_on_desed(
        out,
        "--test-dir",
        str(desed_dir),
        "--classes",
        "Water,Bird",
        "--epochs",
        "1",
        "--cache-dir",
        str(cache),
        *TINY_FLAGS,
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "classes (as --classes gives them): Water, Bird" in printed
    assert f"{desed_dir}: merged 1 overlapping events of one class" in printed  # and validation ran through psds_eval
    assert "events of classes not trained are left out (Alarm, Animal, Music, Speech)" in printed
    model = load_model(out / "best.safetensors")
    assert model.labels == ["Water", "Bird"]
    metrics = read_checkpoint(out / "best.safetensors").metadata["provenance"]["metrics"]
    assert (
        set(metrics["test_event_f1"]) == {"Water", "Bird"}
        and metrics["test"]["hash"] == read_folder(desed_dir).data_hash
    )
    assert all(0.0 <= f1 <= 1.0 for f1 in metrics["test_event_f1"].values())
    assert files_under(desed_dir) == before  # the data folder is only read
    assert len(list((cache / "soundscape-logmels").glob("*.npy"))) == 1


def test_train_without_classes_takes_every_label_sorted_by_name(train_on_desed, tmp_path, capsys):
    assert train_on_desed(tmp_path / "run", "--epochs", "1", *TINY_FLAGS) == 0
    assert (
        "classes (every label of the training set, sorted by name; --classes chooses and orders them): "
        "Alarm, Animal, Bird, Music, Speech, Water"
    ) in capsys.readouterr().out
    assert load_model(tmp_path / "run" / "best.safetensors").labels == [
        "Alarm",
        "Animal",
        "Bird",
        "Music",
        "Speech",
        "Water",
    ]


def test_resume_alone_keeps_the_run_and_more_epochs_never_raise_the_rate(train_on_desed, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_on_desed(out, "--classes", "Bird", "--epochs", "1", *TINY_FLAGS) == 0
    # architecture, batch size, threads: the run's own
    assert train_on_desed(out, "--classes", "Bird", "--resume", "--epochs", "2") == 0
    assert "resuming after epoch 1 (step 2) at learning rate 1e-05" in capsys.readouterr().out
    history = json.loads((out / "history.json").read_text())
    assert [epoch["lr"][0] for epoch in history] == pytest.approx(
        [1e-3 / 1, 1e-5]
    )  # warm-up of one step; then the floor
    assert train_on_desed(out, "--classes", "Bird", "--resume", "--classes", "Water") == 2
    assert "--classes cannot change them on --resume" in capsys.readouterr().err


def test_a_run_resumed_mid_way_with_more_epochs_continues_from_the_rate_it_reached(
    desed_dir, tmp_path, interrupted_validation
):
    """Interrupted in its second epoch's validation, resumed for three epochs instead of two: the first step
    after the resume runs at the rate the uninterrupted run had there, not at the three-epoch curve's."""
    folder = read_folder(desed_dir)
    config = HTSATConfig(embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), drop_path_rate=0.0)
    settings = TrainSettings(epochs=2, batch_size=2, mixup_probability=0.0, seed=1, threads=1, warmup_fraction=0.1)
    uninterrupted = train(folder, folder, tmp_path / "a", config, settings, ["Bird", "Water"], progress=False)[
        "history"
    ]
    with interrupted_validation(2):  # in the second epoch's validation
        train(folder, folder, tmp_path / "b", config, settings, ["Bird", "Water"], progress=False)
    longer = TrainSettings(**{**settings.__dict__, "epochs": 3})
    resumed = train(folder, folder, tmp_path / "b", config, longer, ["Bird", "Water"], resume=True, progress=False)[
        "history"
    ]
    steps = 3  # 6 clips in batches of 2
    assert resumed[0]["train_loss"] == uninterrupted[0]["train_loss"] and resumed[0]["lr"] == uninterrupted[0]["lr"]
    assert resumed[1]["lr"][0] == uninterrupted[1]["lr"][0]  # step 3, where the run was interrupted
    three_epoch_curve = settings.lr * Schedule.planned(3 * steps, longer).factor(steps)
    assert resumed[1]["lr"][0] < 0.8 * three_epoch_curve  # what resuming used to jump to: 0.86e-3 against 0.66e-3
    rates = [rate for epoch in resumed for rate in epoch["lr"]]
    assert all(a >= b for a, b in zip(rates, rates[1:])) and rates[-1] < uninterrupted[1]["lr"][1]
