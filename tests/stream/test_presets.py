"""Presets (`--preset home`): AudioSet's classes mapped to what a home, an office or a field recorder listens
for, shipped in the package; and per-target minimum durations (`[events.min_durations]`)."""

import argparse
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile

from htsat_live.cli import main
from htsat_live.model import DEMO_RECORDING, audioset_labels
from htsat_live.model.event_rule import Target
from htsat_live.stream.building import add_detect_arguments, detect_config
from htsat_live.stream.config import PRESETS, ConfigError, load_config, preset_names
from htsat_live.stream.events import EventDetector, targets_from_config
from htsat_live.stream.stitch import TimelineUpdate

ROOT = Path(__file__).resolve().parents[2]


def _detect_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_detect_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_presets_ship_in_the_package_and_configs_shows_each():
    assert preset_names() == ["home", "office", "wildlife"]
    for name in preset_names():
        shown = ROOT / "configs" / f"{name}.toml"
        assert shown.read_bytes() == (PRESETS / f"{name}.toml").read_bytes(), f"configs/{name}.toml differs"


@pytest.mark.parametrize("name", ["home", "office", "wildlife"])
def test_every_label_of_a_preset_is_an_audioset_label(name):
    labels = set(audioset_labels())
    events = tomllib.loads((PRESETS / f"{name}.toml").read_text())["events"]
    groups = events.get("groups", {})
    for group, members in groups.items():
        assert not set(members) - labels, f"{name}: group {group}: not AudioSet labels: {set(members) - labels}"
    for setting in ("allow", "thresholds", "min_durations"):
        names = set(events.get(setting, ()))
        assert not names - labels - set(groups), f"{name}: events.{setting}: unknown: {names - labels - set(groups)}"
    config = load_config(preset=name)
    targets = targets_from_config(config.events, audioset_labels(), None)
    assert {t.name for t in targets} >= set(groups) - set(config.events.deny)
    EventDetector.from_config(config.events, audioset_labels(), None)  # min_durations name targets


def test_precedence_is_flag_then_set_then_config_then_preset(tmp_path):
    own = tmp_path / "own.toml"
    own.write_text('[events]\ngap_merge = 3.0\nmin_duration = 0.4\n[events.groups]\nKettle = ["Steam whistle"]\n')
    preset = load_config(preset="home")
    assert preset.events.gap_merge == 0.5 and preset.events.min_durations["Baby crying"] == 2.0
    config = detect_config(_detect_args("--preset", "home", "--config", str(own), "--set", "events.min_duration=0.2"))
    assert config.events.gap_merge == 3.0  # the --config file over the preset
    assert config.events.min_duration == 0.2  # --set over the file
    assert config.events.groups["Kettle"] == ("Steam whistle",) and "Dog" in config.events.groups  # tables merge
    assert config.events.hysteresis == 0.7  # the preset over the default
    flagged = detect_config(_detect_args("--preset", "home", "--set", "windows.hop=2.5", "--hop", "5"))
    assert flagged.windows.hop == 5.0


def test_an_unknown_preset_is_one_line_and_exit_2(capsys):
    assert main(["detect", str(DEMO_RECORDING), "--preset", "garage"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--preset garage: no such preset (known: home, office, wildlife)" in err


def _run(frames_on: dict[int, tuple[int, int]], targets: list[Target], **settings) -> list:
    """Final events of a detector fed one timeline where target i scores 0.9 over frames [a, b)."""
    scores = np.zeros((1024, len(targets)), dtype=np.float32)
    for column, (a, b) in frames_on.items():
        scores[a:b, column] = 0.9
    detector = EventDetector(targets, **settings)
    update = TimelineUpdate(start=0, values=scores, end=1024, final_upto=1024)
    return [event for event in detector.update(update) + detector.flush() if event.state == "end"]


def test_min_durations_set_the_minimum_per_target():
    targets = [Target("Knock", (0,), 0.5, 0.5), Target("Speech", (1,), 0.5, 0.5)]
    # both run about 0.3 s (31 frames of 10/1024 s); Speech needs 1 s, Knock the global 0.1 s
    ended = _run({0: (100, 131), 1: (100, 131)}, targets, min_duration=0.1, min_durations={"Speech": 1.0})
    assert [event.label for event in ended] == ["Knock"]
    ended = _run({0: (100, 131), 1: (100, 231)}, targets, min_duration=0.1, min_durations={"Speech": 0.9})
    assert sorted(event.label for event in ended) == ["Knock", "Speech"]


def test_a_min_durations_name_that_is_no_target_is_refused(capsys):
    config = load_config(preset="home")
    bad = config.model_copy(update={"events": config.events.model_copy(update={"min_durations": {"Dgo": 1.0}})})
    with pytest.raises(ConfigError, match="events.min_durations: Dgo: not a detection target"):
        EventDetector.from_config(bad.events, audioset_labels(), None)


@pytest.mark.timeout(600)  # three full-size runs on the CPU
@pytest.mark.parametrize("name", ["home", "office", "wildlife"])
def test_each_preset_runs_end_to_end_on_a_full_size_audioset_model(name, official_checkpoints, tmp_path, capsys):
    wave, rate = soundfile.read(DEMO_RECORDING, dtype="float32", frames=12 * 32000)
    clip = tmp_path / "demo12.wav"
    soundfile.write(clip, wave, rate)
    tsv = tmp_path / "events.tsv"
    argv = ["detect", str(clip), "--model", str(official_checkpoints[0]), "--preset", name, "--fast", "--hop", "5"]
    argv += ["--set", "publish.enabled=false", "--set", "store.path=''", "--set", f"sinks.tsv='{tsv}'"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "listening to" in captured.err and "Traceback" not in captured.err
    groups = set(load_config(preset=name).events.groups)
    labels = {line.split("\t")[3] for line in tsv.read_text().splitlines()[1:]}
    assert labels <= groups | set(load_config(preset=name).events.allow)
