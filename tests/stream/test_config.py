"""The stream config: defaults, TOML loading, validation errors that name the key, overrides."""

import re
import typing
from pathlib import Path

import pytest

from htsat_live.stream.config import (
    Config,
    ConfigError,
    EventsConfig,
    load_config,
    parse_assignment,
    with_overrides,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_default_toml_equals_the_built_in_defaults():
    assert load_config(CONFIGS / "default.toml") == Config()


def test_every_setting_in_default_toml_has_a_comment():
    lines = (CONFIGS / "default.toml").read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^\s*[\w\"]+.*=", line):
            assert lines[number - 1].lstrip().startswith("#"), f"line {number + 1} has no comment: {line}"


def test_desed_config_maps_ten_classes_with_official_thresholds():
    events = load_config(CONFIGS / "desed.toml").events
    assert not events.classes
    assert len(events.groups) == 10
    assert events.groups["Alarm_bell_ringing"][0] == 310 and events.groups["Alarm_bell_ringing"][-1] == 402
    assert events.thresholds["Cat"] == 0.51 and events.thresholds["Vacuum_cleaner"] == 0.14
    assert events.median_frames == 1 and events.min_duration == 0.0


def test_values_from_file_are_read_and_typed(tmp_path):
    config = load_config(
        write(tmp_path, '[windows]\nhop = 1\n[events]\nallow = ["Dog"]\n[events.groups]\nalarm = ["Fire alarm", 399]\n')
    )
    assert config.windows.hop == 1.0 and isinstance(config.windows.hop, float)
    assert config.events.allow == ("Dog",)
    assert config.events.groups == {"alarm": ("Fire alarm", 399)}
    assert config.model == Config().model


@pytest.mark.parametrize(
    "text, message",
    [
        ("[events]\nmin_duration = -1\n", "events.min_duration: must be >= 0, got -1"),
        ("[windows]\nhop = 0.1\n", "windows.hop: must be >= 0.3125, got 0.1"),
        ("[windows]\nhop = 12\n", "windows.hop: must be <= 10, got 12"),
        ("[windows]\nhopp = 1\n", "windows.hopp: unknown setting"),
        ("[window]\nhop = 1\n", "window: unknown section"),
        ('[model]\nbackend = "tensorrt"\n', "model.backend: must be one of auto, torch, onnx, openvino"),
        ("[events]\nmedian_frames = 4\n", "events.median_frames: must be odd (or 0)"),
        ("[events.thresholds]\nDog = 1.5\n", "events.thresholds.Dog: must be <= 1"),
        ("[events]\nclasses = 1\n", "events.classes: must be true or false"),
        ("[publish]\ntop_k = 2.5\n", "publish.top_k: must be an integer"),
        ("[events.groups]\nalarm = []\n", "events.groups.alarm: must not be empty"),
        ("[events.groups]\nalarm = [1.5]\n", "events.groups.alarm[0]: must be a str or int"),
        ("[events]\nhysteresis = 0\n", "events.hysteresis: must be > 0"),
        ("[events]\nbogus = 1\n", "events.bogus: unknown setting (known: threshold, thresholds, hysteresis, "),
        ("[foo]\n", "foo: unknown section (known: source, windows, model, events, publish, sinks, store"),
        ("source = 5\n", "source: must be a table, got 5"),
        ('[model]\nbackend = "x"\n', "model.backend: must be one of auto, torch, onnx, openvino, got 'x'"),
        ("[events]\nthreshold = true\n", "events.threshold: must be a number, got True"),
        ('[events]\nthreshold = "0.5"\n', "events.threshold: must be a number, got '0.5'"),
        ("[windows]\nhop = nan\n", "windows.hop: must be a finite number, got nan"),
        ("[publish]\nhwm = 2.0\n", "publish.hwm: must be an integer, got 2.0"),
        ("[publish]\nhwm = 0\n", "publish.hwm: must be >= 1, got 0"),
        ("[source]\ninput = 1\n", "source.input: must be a string, got 1"),
        ('[events]\nallow = "Dog"\n', "events.allow: must be a list, got 'Dog'"),
        ('[events]\ndeny = ["Dog", 1]\n', "events.deny[1]: must be a string, got 1"),
        ('[events]\nallow = [""]\n', "events.allow: names must not be empty"),
        ('[events.groups]\nalarm = ["", 399]\n', "events.groups.alarm: names must not be empty"),
        ("[events.groups]\nalarm = [true]\n", "events.groups.alarm[0]: must be a str or int, got True"),
        ("[events]\nmedian_frames = -1\n", "events.median_frames: must be >= 0, got -1"),
        ("[events]\nmedian_frames = 1025\n", "events.median_frames: must be <= 1023, got 1025"),
        ("[sinks]\nclips_max_mb = 0\n", "sinks.clips_max_mb: must be > 0, got 0"),
        ('[mqtt]\nurl = "http://broker"\n', "mqtt.url: must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"),
        ("[mqtt]\nqos = 3\n", "mqtt.qos: must be <= 2, got 3"),
        ("[store]\nkeep_days = -1\n", "store.keep_days: must be >= 0, got -1"),
    ],
)
def test_bad_values_raise_an_error_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    assert str(error.value).startswith(message)


def test_integers_are_numbers_and_odd_frames_or_zero_pass(tmp_path):
    config = load_config(write(tmp_path, "[events]\nthreshold = 1\nmedian_frames = 7\n[events.thresholds]\nDog = 0\n"))
    assert config.events.threshold == 1.0 and isinstance(config.events.threshold, float)
    assert config.events.thresholds == {"Dog": 0.0} and isinstance(config.events.thresholds["Dog"], float)
    assert config.events.median_frames == 7


def test_sections_built_by_keyword_are_validated_and_frozen():
    events = EventsConfig(groups={"dog": ("Dog", 2)}, allow=("dog",))
    assert events.groups == {"dog": ("Dog", 2)} and events.allow == ("dog",)
    with pytest.raises(ValueError, match="must be odd"):
        EventsConfig(median_frames=4)
    with pytest.raises(ValueError, match="frozen"):
        events.allow = ()


def test_invalid_toml_and_missing_file_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[windows\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_overrides_replace_settings_and_are_validated():
    config = with_overrides(
        Config(), {"windows.hop": 1.0, "model.backend": "onnx", "model.device": None, "events.thresholds.Speech": 0.3}
    )
    assert config.windows.hop == 1.0 and config.model.backend == "onnx" and config.model.device == "cpu"
    assert config.events.thresholds == {"Speech": 0.3}
    grouped = with_overrides(Config(), {"events.groups.pets": ["Dog", 2], "events.allow": ["pets"]})
    assert grouped.events.groups == {"pets": ("Dog", 2)} and grouped.events.allow == ("pets",)
    assert with_overrides(grouped, {"events.threshold": 0.4}).events.groups == {"pets": ("Dog", 2)}
    with pytest.raises(ConfigError, match="windows.hop: must be <= 10"):
        with_overrides(Config(), {"windows.hop": 20.0})
    with pytest.raises(ConfigError, match="model.gpu: unknown setting"):
        with_overrides(Config(), {"model.gpu": True})


def test_assignments_parse_values_as_toml():
    assert parse_assignment("events.min_duration=0.5") == ("events.min_duration", 0.5)
    assert parse_assignment('events.allow=["Dog", "Cat"]') == ("events.allow", ["Dog", "Cat"])
    assert parse_assignment("source.input=mic:USB") == ("source.input", "mic:USB")
    assert parse_assignment("publish.allow_remote=true") == ("publish.allow_remote", True)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_assignment("windows.hop")


def _float_keys() -> list[str]:
    """Every float setting of the config model, by TOML key; a table of floats by one entry in it."""
    keys = []
    for section, field in Config.model_fields.items():
        for name, setting in field.annotation.model_fields.items():
            if setting.annotation is float:
                keys.append(f"{section}.{name}")
            elif typing.get_origin(setting.annotation) is dict:
                value_type = typing.get_args(setting.annotation)[1]
                if typing.get_origin(value_type) is typing.Annotated and typing.get_args(value_type)[0] is float:
                    keys.append(f"{section}.{name}.Speech")
    return keys


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_nan_and_inf_are_refused_for_every_float_setting_naming_the_key(value):
    keys = _float_keys()
    assert "sinks.clips_max_mb" in keys and "events.thresholds.Speech" in keys and len(keys) >= 15
    for key in keys:
        with pytest.raises(ConfigError) as caught:
            with_overrides(Config(), dict([parse_assignment(f"{key}={value}")]))
        assert str(caught.value) == f"{key}: must be a finite number, got {value}", key


def test_a_config_that_is_not_utf8_is_named_and_a_byte_order_mark_is_read_past(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[source]\nname = "Küche"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"^.*latin1\.toml: not UTF-8 text \(line 2, byte 0xfc\); save it as UTF-8$"):
        load_config(path)
    path = tmp_path / "bom.toml"
    path.write_bytes('[source]\nname = "Küche"\n'.encode("utf-8-sig"))
    assert load_config(path).source.name == "Küche"
