"""`detect`'s settings (stream.building.detect_config): every key behaves the same from a file, from --set
and from its flag, and the first of flag > --set > file > default wins."""

import pytest

from htsat_live.cli import build_parser
from htsat_live.stream.building import FLAG_SETTINGS, detect_config
from htsat_live.stream.config import Config, ConfigError

# setting -> (a value for the file, another for --set, the flag's arguments and value, or None)
VALUES = {
    "source.input": ("a.wav", "b.wav", (["c.wav"], "c.wav")),
    "source.name": ("one", "two", None),
    "source.inputs": (("a.wav", "b.wav"), ("c.wav",), (["d.wav", "e.wav"], ("d.wav", "e.wav"))),  # several SOURCEs
    "source.names": (("one", "two"), ("three",), None),
    "source.fast": (True, False, None),  # --fast below: it can only turn fast on
    "source.loop": (True, False, None),
    "source.ring_seconds": (30.0, 40.0, None),
    "windows.hop": (2.5, 5.0, (["--hop", "0.625"], 0.625)),
    "windows.stagger": (True, False, None),
    "windows.gate_dbfs": (-60.0, -50.0, None),
    "model.path": ("a.ckpt", "b.ckpt", (["--model", "c.onnx"], "c.onnx")),
    "model.backend": ("onnx", "torch", (["--backend", "auto"], "auto")),
    "model.device": ("cuda", "cpu", (["--device", "cuda"], "cuda")),
    "model.precision": ("bf16", "fp32", (["--precision", "bf16"], "bf16")),
    "model.calibration": ("site-a", "site-b", (["--calibration", "site-c"], "site-c")),
    "model.dir": ("models", "other-models", None),
    "model.inference": ("ray", "ray:auto", (["--inference", "ray:10.0.0.1:6379"], "ray:10.0.0.1:6379")),
    "events.threshold": (0.3, 0.4, None),
    "events.thresholds": ({"Speech": 0.3}, {"Dog": 0.2}, None),
    "events.hysteresis": (0.5, 0.8, None),
    "events.off_thresholds": ({"Speech": 0.1}, {"Dog": 0.1}, None),
    "events.median_frames": (3, 5, None),
    "events.min_duration": (0.5, 1.5, None),
    "events.min_durations": ({"Speech": 0.5}, {"Dog": 1.0}, None),
    "events.gap_merge": (0.25, 0.75, None),
    "events.confirm_updates": (2, 3, None),
    "events.confirm_ratio": (1.5, 0.0, None),
    "events.classes": (False, True, None),
    "events.allow": (("Speech",), ("Dog",), None),
    "events.deny": (("Cat",), ("Bird",), None),
    "events.groups": ({"pets": ("Dog", "Cat")}, {"birds": ("Bird",)}, None),
    "publish.enabled": (False, True, None),
    "publish.bind": ("tcp://127.0.0.1:6000", "tcp://127.0.0.1:6001", None),
    "publish.allow_remote": (True, False, None),
    "publish.server_secret_key": ("a.key_secret", "b.key_secret", None),
    "publish.top_k": (3, 4, None),
    "publish.hwm": (50, 60, None),
    "sinks.jsonl": ("a.jsonl", "b.jsonl", None),
    "sinks.tsv": ("a.tsv", "b.tsv", None),
    "sinks.audacity": ("a.txt", "b.txt", None),
    "sinks.clips_dir": ("a", "b", None),
    "sinks.pre_roll": (2.0, 3.0, None),
    "sinks.post_roll": (2.0, 3.0, None),
    "sinks.clips_max_mb": (10.0, 20.0, None),
    "sinks.privacy": ("drop", "mute", None),
    "sinks.privacy_targets": (("Speech", "Music"), ("Dog",), None),
    "store.path": ("a.db", "", None),
    "store.keep_days": (30.0, 0.0, None),
    "mqtt.url": ("mqtt://127.0.0.1:1883", "mqtts://broker.lan", None),
    "mqtt.ca_file": ("ca.pem", "other.pem", None),
    "mqtt.username": ("a", "b", None),
    "mqtt.password_file": ("a.txt", "b.txt", None),
    "mqtt.client_id": ("a", "b", None),
    "mqtt.topic_prefix": ("a", "b", None),
    "mqtt.qos": (0, 2, None),
    "mqtt.discovery_prefix": ("ha", "", None),
    "mqtt.queue": (10, 20, None),
    "mqtt.reconnect_max": (10.0, 2.0, None),
    "metrics.bind": ("127.0.0.1:9108", "127.0.0.1:9109", None),
    "metrics.allow_remote": (True, False, None),
    "loudness.enabled": (True, False, None),
    "loudness.threshold_dbfs": (-20.0, -40.0, None),
    "loudness.hysteresis_db": (3.0, 10.0, None),
    "loudness.min_duration": (0.5, 1.0, None),
    "loudness.window": (0.25, 0.5, None),
    "loudness.weighting": ("none", "A", None),
    "web.bind": ("127.0.0.1:8080", "127.0.0.1:8081", (["--web", "127.0.0.1:8082"], "127.0.0.1:8082")),
    "web.allow_remote": (True, False, None),
    "web.token": ("a", "b", None),
    "web.seconds": (20.0, 60.0, None),
}


def every_setting() -> list[str]:
    return [
        f"{section}.{key}" for section, field in Config.model_fields.items() for key in field.annotation.model_fields
    ]


def toml(value) -> str:
    """A TOML value: what a file holds and what --set KEY=VALUE reads."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml(item)}" for key, item in value.items()) + "}"
    return repr(value)


def setting_of(config: Config, key: str):
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def config_for(tmp_path, key: str, file_value=None, set_value=None, flag: list[str] | None = None) -> Config:
    argv = ["detect"]
    if file_value is not None:
        section, name = key.split(".")
        path = tmp_path / "config.toml"
        path.write_text(f"[{section}]\n{name} = {toml(file_value)}\n")
        argv += ["--config", str(path)]
    if set_value is not None:
        argv += ["--set", f"{key}={toml(set_value)}"]
    return detect_config(build_parser("detect").parse_args(argv + (flag or [])))


def test_the_table_covers_every_setting_and_every_flag():
    assert sorted(VALUES) == sorted(every_setting())
    flagged = {key for key, (_, _, flag) in VALUES.items() if flag is not None}
    # several SOURCEs give source.inputs (one gives source.input, as in FLAG_SETTINGS)
    assert flagged | {"source.fast", "source.loop"} == set(FLAG_SETTINGS.values()) | {"source.inputs"}


@pytest.mark.parametrize("key", sorted(VALUES))
def test_flag_beats_set_beats_file_beats_default(tmp_path, key):
    file_value, set_value, flag = VALUES[key]
    default = setting_of(Config(), key)
    assert file_value != default and set_value != file_value
    assert setting_of(config_for(tmp_path, key), key) == default
    assert setting_of(config_for(tmp_path, key, file_value=file_value), key) == file_value
    assert setting_of(config_for(tmp_path, key, set_value=set_value), key) == set_value
    assert setting_of(config_for(tmp_path, key, file_value=file_value, set_value=set_value), key) == set_value
    if flag is not None:
        arguments, flag_value = flag
        both = config_for(tmp_path, key, file_value=file_value, set_value=set_value, flag=arguments)
        assert setting_of(both, key) == flag_value


@pytest.mark.parametrize("key, flag", [("source.fast", "--fast"), ("source.loop", "--loop")])
def test_switch_flags_turn_a_setting_on_over_set_and_file(tmp_path, key, flag):
    assert setting_of(config_for(tmp_path, key, file_value=False, set_value=False, flag=[flag]), key) is True
    assert setting_of(config_for(tmp_path, key, set_value=True), key) is True  # no flag: --set stands


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("windows.hop=abc", "windows.hop: must be a number, got 'abc'"),
        ("windows.hop=20", "windows.hop: must be <= 10"),
        ("model.backend=tensorflow", "model.backend: must be one of auto, torch, onnx, openvino"),
        ("source.nothing=1", "source.nothing: unknown setting"),
    ],
)
def test_a_bad_set_value_is_an_error_naming_the_key(assignment, message):
    with pytest.raises(ConfigError, match=message):
        detect_config(build_parser("detect").parse_args(["detect", "--set", assignment]))
