"""The model folder: `htsat-live models`, `models add`, and model names wherever a checkpoint is taken."""

import json
import os
import shutil

import numpy as np
import pytest
import safetensors
import torch

from htsat_live.cli import main
from htsat_live.model import load_model
from htsat_live.model.checkpoint import read_checkpoint
from htsat_live.model.registry import model_dir, resolve_model, sha256_of


def _metadata(path) -> dict:
    with safetensors.safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["htsat_live"])


def _with_classes(tiny_checkpoint, tmp_path, classes: int, name: str):
    """The tiny checkpoint with its head resized to `classes` (what an ESC-50 or Speech Commands one holds)."""
    loaded = torch.load(tiny_checkpoint, weights_only=True)
    state = loaded["state_dict"]
    for key in [k for k in state if k.startswith(("sed_model.tscam_conv.", "sed_model.head."))]:
        shape = list(state[key].shape)
        shape[0] = classes
        state[key] = torch.randn(shape) * 0.02
    path = tmp_path / name
    torch.save(loaded, path)
    return path


def test_the_model_folder_is_under_xdg_data_home_unless_configured(tmp_path):
    assert model_dir() == model_dir(None) and str(model_dir()).startswith(os.environ["XDG_DATA_HOME"])
    assert model_dir(tmp_path / "m") == tmp_path / "m"


def test_models_lists_the_official_checkpoints_and_where_to_get_them(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("audioset-1", "audioset-6", "esc50", "speech-commands", "HTSAT_AudioSet_Saved_1.ckpt"):
        assert name in out
    assert "drive.google.com/drive/folders/" in out and "mAP 0.471 (one model), 0.487 (the six)" in out
    assert "97.0%" in out and "98.0%" in out
    assert "speech-commands: unsupported: trained on 16 kHz audio" in out
    assert "DESED: the paper's detection figures come from an AudioSet model" in out
    assert "none: `htsat-live models add FILE` adds one" in out


def test_models_add_converts_records_provenance_and_the_name_loads(tiny_checkpoint, tmp_path, capsys, tiny_outputs):
    assert main(["models", "add", str(tiny_checkpoint), "--name", "tiny"]) == 0
    assert "added tiny: 10 classes from htsat_tiny.ckpt" in capsys.readouterr().out
    stored = model_dir() / "tiny.safetensors"
    provenance = _metadata(stored)["provenance"]
    assert provenance["source_file"] == "htsat_tiny.ckpt" and provenance["sha256"] == sha256_of(tiny_checkpoint)
    assert resolve_model("tiny") == stored
    wave = tiny_outputs["wave4"].numpy()
    by_name = load_model("tiny").predict(wave)["framewise"]
    assert np.array_equal(by_name, load_model(tiny_checkpoint).predict(wave)["framewise"])
    assert read_checkpoint("tiny").config.num_classes == 10  # what train --init, export-onnx and bench read
    assert main(["models"]) == 0
    listed = capsys.readouterr().out.split("models in ")[1]
    assert "tiny" in listed and "htsat_tiny.ckpt" in listed and provenance["sha256"][:16] in listed


def test_a_name_works_for_a_command_that_takes_model(tiny_checkpoint, capsys):
    assert main(["models", "add", str(tiny_checkpoint), "--name", "tiny"]) == 0
    capsys.readouterr()
    assert main(["labels", "--model", "tiny"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("class_0")


def test_models_add_refuses_an_existing_name_unless_forced(tiny_checkpoint, capsys):
    assert main(["models", "add", str(tiny_checkpoint), "--name", "tiny"]) == 0
    assert main(["models", "add", str(tiny_checkpoint), "--name", "tiny"]) == 2
    assert "tiny: already in" in capsys.readouterr().err
    assert main(["models", "add", str(tiny_checkpoint), "--name", "tiny", "--force"]) == 0


def test_an_unrecognised_file_is_one_line_and_exit_2(tmp_path, capsys):
    junk = tmp_path / "notes.ckpt"
    junk.write_text("not weights")
    assert main(["models", "add", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.ckpt" in err and "not a readable checkpoint" in err
    assert main(["models", "add", str(tmp_path / "missing.ckpt")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    assert main(["models", "add", str(junk), "--name", "a/b"]) == 2


def test_an_esc50_checkpoint_gets_the_published_labels(tiny_checkpoint, tmp_path, capsys):
    path = _with_classes(tiny_checkpoint, tmp_path, 50, "esc50_fold1.ckpt")
    assert main(["models", "add", str(path)]) == 0
    assert "added esc50: 50 classes" in capsys.readouterr().out
    labels = load_model("esc50").labels
    assert len(labels) == 50 and labels[0] == "dog" and labels[-1] == "hand_saw" and "clock_alarm" in labels


def test_a_speech_commands_checkpoint_is_refused_with_the_reason(tiny_checkpoint, tmp_path, capsys):
    path = _with_classes(tiny_checkpoint, tmp_path, 35, "scv2.ckpt")
    assert main(["models", "add", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "16 kHz" in err and "--labels" in err
    words = tmp_path / "words.txt"
    words.write_text("\n".join(f"word{i}" for i in range(35)))
    assert main(["models", "add", str(path), "--labels", str(words), "--name", "words"]) == 0  # a model of one's own


def test_unknown_and_missing_names_say_how_to_get_them(capsys):
    with pytest.raises(ValueError, match="audioset-2: not installed; download HTSAT_AudioSet_Saved_2.ckpt from https"):
        resolve_model("audioset-2")
    with pytest.raises(ValueError, match="speech-commands: not supported"):
        resolve_model("speech-commands")
    with pytest.raises(ValueError, match="kitchen: no such checkpoint file, nor a model in"):
        load_model("kitchen")
    assert main(["labels", "--model", "audioset-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "models add" in err


@pytest.mark.timeout(300)  # a full-size checkpoint is converted
def test_an_official_audioset_checkpoint_is_named_after_its_file(official_checkpoints, tmp_path, capsys):
    assert main(["models", "--dir", str(tmp_path / "m"), "add", str(official_checkpoints[0])]) == 0
    assert "added audioset-1: 527 classes from HTSAT_AudioSet_Saved_1.ckpt" in capsys.readouterr().out
    assert main(["models", "--dir", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert [line.split()[-1] for line in out.splitlines() if line.strip().startswith("audioset-1 ")][0] == "yes"
    metadata = _metadata(tmp_path / "m" / "audioset-1.safetensors")
    assert metadata["labels"][0] == "Speech" and metadata["provenance"]["official"] == "audioset-1"
    # the converted file is the model: it can be moved and loaded as a file, without pickle
    moved = shutil.copy(tmp_path / "m" / "audioset-1.safetensors", tmp_path / "copy.safetensors")
    assert load_model(moved).num_classes == 527


def test_model_dir_in_the_config_is_where_detect_finds_a_name(tiny_checkpoint, tmp_path, capsys):
    import argparse

    from htsat_live.stream.building import add_detect_arguments, detect_config
    from htsat_live.stream.config import ConfigError

    folder = tmp_path / "models"
    assert main(["models", "--dir", str(folder), "add", str(tiny_checkpoint), "--name", "tiny"]) == 0
    parser = argparse.ArgumentParser()
    add_detect_arguments(parser)
    config = detect_config(parser.parse_args(["--model", "tiny", "--set", f"model.dir='{folder}'"]))
    assert config.model.path == str(folder / "tiny.safetensors")
    with pytest.raises(ConfigError, match="model.path: other: no such checkpoint file, nor a model in"):
        detect_config(parser.parse_args(["--model", "other", "--set", f"model.dir='{folder}'"]))
