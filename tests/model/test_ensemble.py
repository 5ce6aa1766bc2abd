"""Ensembles: `--model A --model B` (or `[model] path` as a list) averages the members' outputs."""

import numpy as np
import pandas as pd
import pytest
import soundfile

from htsat_live.cli import main
from htsat_live.model import DEMO_RECORDING, load_model, members_of


def test_an_ensemble_is_the_mean_of_its_members(tiny_checkpoint, second_tiny, tiny_outputs):
    wave = tiny_outputs["wave10"].numpy()
    a, b = load_model(tiny_checkpoint).predict(wave), load_model(second_tiny).predict(wave)
    assert np.abs(a["framewise"] - b["framewise"]).max() > 1e-3  # the members differ
    both = load_model([tiny_checkpoint, second_tiny])
    assert len(members_of(both)) == 2 and both.labels == load_model(tiny_checkpoint).labels
    out = both.predict(wave)
    for key in ("framewise", "clipwise"):
        np.testing.assert_allclose(out[key], (a[key] + b[key]) / 2, atol=1e-6, rtol=0)


@pytest.mark.timeout(300)  # full-size models
def test_an_ensemble_of_two_official_audioset_checkpoints_is_their_mean(official_checkpoints):
    wave = (0.1 * np.random.default_rng(0).standard_normal(5 * 32000)).astype(np.float32)
    singles = [load_model(path).predict(wave) for path in official_checkpoints]
    out = load_model(official_checkpoints).predict(wave)
    for key in ("framewise", "clipwise"):
        np.testing.assert_allclose(out[key], (singles[0][key] + singles[1][key]) / 2, atol=1e-6, rtol=0)


def test_members_with_other_labels_are_refused_naming_the_difference(tiny_checkpoint, tmp_path, capsys):
    relabelled = tmp_path / "relabelled.safetensors"
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["class_0", "class_1", "Kettle", *[f"class_{i}" for i in range(3, 10)]]))
    assert main(["convert", str(tiny_checkpoint), str(relabelled), "--labels", str(labels)]) == 0
    capsys.readouterr()
    with pytest.raises(ValueError, match="class 2 is 'Kettle' in .*relabelled.safetensors and 'class_2' in"):
        load_model([tiny_checkpoint, relabelled])
    assert main(["tag", str(DEMO_RECORDING), "--model", str(tiny_checkpoint), "--model", str(relabelled)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "members must share their labels" in err


def test_detect_says_it_runs_an_ensemble_and_whose_event_rule(tiny_checkpoint, second_tiny, tmp_path, capsys):
    wave, rate = soundfile.read(DEMO_RECORDING, dtype="float32", frames=12 * 32000)
    clip = tmp_path / "demo12.wav"
    soundfile.write(clip, wave, rate)
    argv = ["detect", str(clip), "--model", str(tiny_checkpoint), "--model", str(second_tiny), "--fast"]
    argv += ["--hop", "5", "--set", "publish.enabled=false", "--set", "store.path=''"]
    assert main(argv) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("listening to") and "ensemble of 2 models" in first
    assert f"thresholds and median filter from the first member, {tiny_checkpoint}" in first
    assert main([*argv, "--preset", "home"]) == 2  # the preset names AudioSet labels the tiny model lacks
    capsys.readouterr()
    assert main([*argv, "--set", "events.thresholds.class_1=0.3"]) == 0
    assert "thresholds and median filter from the config" in capsys.readouterr().err.splitlines()[0]


def test_model_path_as_a_list_in_the_config_is_an_ensemble(tiny_checkpoint, second_tiny, tmp_path, capsys):
    config = tmp_path / "ensemble.toml"
    config.write_text(f'[model]\npath = ["{tiny_checkpoint}", "{second_tiny}"]\n')
    argv = ["detect", str(DEMO_RECORDING), "--config", str(config), "--fast", "--hop", "10"]
    argv += ["--set", "publish.enabled=false", "--set", "store.path=''"]
    assert main(argv) == 0
    assert "ensemble of 2 models" in capsys.readouterr().err.splitlines()[0]


def test_tag_with_two_models_tags_with_their_mean(tiny_checkpoint, second_tiny, capsys):
    assert main(["tag", str(DEMO_RECORDING), "--model", str(tiny_checkpoint), "--model", str(second_tiny)]) == 0
    assert "ensemble of 2 models" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_detect_dir_with_an_ensemble_averages_the_single_runs_maps(tiny_checkpoint, second_tiny, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name, seconds in (("a.wav", 10.0), ("b.wav", 4.0)):
        soundfile.write(folder / name, (0.2 * rng.standard_normal(int(seconds * 32000))).astype(np.float32), 32000)
    config = tmp_path / "rule.toml"
    config.write_text("[events]\nmedian_frames = 1\n")  # a median filter would not commute with the mean

    def scores_of(*models) -> dict:
        out = tmp_path / f"scores{len(models)}-{models[0].stem}"
        argv = ["detect-dir", str(folder), "--config", str(config), "--out", str(out) + ".tsv", "--scores", str(out)]
        for model in models:
            argv += ["--model", str(model)]
        assert main(argv) == 0
        return {name: pd.read_csv(out / f"{name}.tsv", sep="\t") for name in ("a", "b")}

    single_a, single_b, both = (
        scores_of(tiny_checkpoint),
        scores_of(second_tiny),
        scores_of(tiny_checkpoint, second_tiny),
    )
    for name in ("a", "b"):
        mean = (single_a[name].to_numpy() + single_b[name].to_numpy()) / 2
        assert list(both[name].columns) == list(single_a[name].columns)
        np.testing.assert_allclose(both[name].to_numpy(), mean, atol=2e-6, rtol=0)  # the tables hold 6 digits


def test_the_live_pipeline_runs_an_ensemble_and_status_names_its_members(tiny_checkpoint, second_tiny, tmp_path):
    from htsat_live.stream.config import load_config, with_overrides
    from htsat_live.stream.output import Listener
    from htsat_live.stream.pipeline import Pipeline

    paths = [str(tiny_checkpoint), str(second_tiny)]
    settings = {"publish.enabled": False, "source.fast": True, "windows.hop": 5.0, "model.path": paths}
    config = with_overrides(load_config(None), settings)
    clip = tmp_path / "noise.wav"
    soundfile.write(clip, (0.1 * np.random.default_rng(1).standard_normal(12 * 32000)).astype(np.float32), 32000)
    messages = []
    pipeline = Pipeline(config, load_model(paths), [str(clip)], outputs=[Listener(lambda *m: messages.append(m))])
    pipeline.start()
    assert pipeline.wait(120), "the stream did not end"
    pipeline.stop()
    statuses = [body for topic, _, body in messages if topic == "status"]
    assert statuses and statuses[-1]["model"] == " + ".join(paths) and statuses[-1]["backend"] == "torch"
    assert any(topic == "scores" for topic, _, _ in messages)
