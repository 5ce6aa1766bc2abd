"""Typed configuration of a stream: frozen dataclasses loaded once from TOML and validated.

`load_config(path)` reads a TOML file (see configs/default.toml for every setting with its meaning);
`with_overrides(config, {"windows.hop": 1.0})` applies command-line flags on top. Both return a new,
fully checked `Config`; an unknown key, a wrong type or an out-of-range value raises `ConfigError`
naming the key, e.g. "events.min_duration: must be >= 0, got -1".

Settings not given keep the defaults below, which are the values written in configs/default.toml.
"""

import tomllib
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from htsat_live.model import TOKEN_SECONDS, WINDOW_SECONDS

HOP_MIN = TOKEN_SECONDS  # one HTS-AT token (10 s / 32)
HOP_MAX = WINDOW_SECONDS  # one whole window


class ConfigError(ValueError):
    """A setting is unknown, of the wrong type, or out of range; the message starts with its key."""


def _setting(default, **limits):
    """A dataclass field with its limits in metadata: min, max, above (exclusive min), choices, odd (or 0)."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=limits)
    return field(default=default, metadata=limits)


@dataclass(frozen=True)
class SourceConfig:
    input: str = _setting("")  # "" | "mic" | "mic:NAME" | "ffmpeg:URL" | a file path
    name: str = _setting("")  # stream id in messages; "" = derived from the input
    fast: bool = _setting(False)  # files: feed as fast as possible instead of in real time
    ring_seconds: float = _setting(60.0, min=20.0, max=3600.0)


@dataclass(frozen=True)
class WindowsConfig:
    hop: float = _setting(1.25, min=HOP_MIN, max=HOP_MAX)  # seconds between window starts


@dataclass(frozen=True)
class ModelConfig:
    path: str = _setting("")  # checkpoint or .onnx file; "" = the embedded default model
    backend: str = _setting("torch", choices=("torch", "onnx"))
    device: str = _setting("cpu", choices=("cpu", "cuda"))
    precision: str = _setting("fp32", choices=("fp32", "bf16"))  # torch backend: bf16 transformer on CPUs with bf16


@dataclass(frozen=True)
class EventsConfig:
    threshold: float = _setting(0.5, min=0.0, max=1.0)  # when the model has no thresholds
    thresholds: dict[str, float] = _setting({}, min=0.0, max=1.0)  # label -> on-threshold
    hysteresis: float = _setting(1.0, above=0.0, max=1.0)  # off-threshold = ratio * on-threshold
    off_thresholds: dict[str, float] = _setting({}, min=0.0, max=1.0)  # label -> off-threshold
    median_frames: int = _setting(0, min=0, max=1023, odd=True)  # grid frames; 1 = no filter, 0 = the model's
    min_duration: float = _setting(0.0, min=0.0)  # seconds
    gap_merge: float = _setting(0.0, min=0.0)  # seconds
    classes: bool = _setting(True)  # every model class is a detection target besides the groups
    allow: tuple[str, ...] = _setting(())  # only these targets (empty = all)
    deny: tuple[str, ...] = _setting(())  # never these targets
    groups: dict[str, tuple[str | int, ...]] = _setting({}, nonempty=True)  # name -> labels/indices


@dataclass(frozen=True)
class PublishConfig:
    enabled: bool = _setting(True)
    bind: str = _setting("tcp://127.0.0.1:5556")
    allow_remote: bool = _setting(False)  # permit a non-loopback bind address
    server_secret_key: str = _setting("")  # CURVE secret key file; "" = no encryption
    top_k: int = _setting(10, min=0)  # classes per scores message; 0 = all
    hwm: int = _setting(100, min=1)  # messages queued per subscriber before dropping


@dataclass(frozen=True)
class SinksConfig:
    jsonl: str = _setting("")  # events as JSON Lines; "" = off
    tsv: str = _setting("")  # DESED-style TSV; "" = off
    audacity: str = _setting("")  # Audacity label track; "" = off
    clips_dir: str = _setting("")  # WAV clip per event; "" = off
    pre_roll: float = _setting(1.0, min=0.0, max=10.0)  # seconds before the onset
    post_roll: float = _setting(1.0, min=0.0, max=10.0)  # seconds after the offset
    clips_max_mb: float = _setting(500.0, above=0.0)  # disk cap of clips_dir


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    windows: WindowsConfig = field(default_factory=WindowsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    sinks: SinksConfig = field(default_factory=SinksConfig)


def load_config(path: str | Path | None = None) -> Config:
    """The config in a TOML file (None = all defaults), validated."""
    if path is None:
        return config_from_dict({})
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    return config_from_dict(data)


def config_from_dict(data: dict) -> Config:
    """A validated Config from nested dicts shaped like the TOML file."""
    _check_table("", data)
    sections = {}
    for section in fields(Config):
        values = data.get(section.name, {})
        _check_table(section.name, values)
        sections[section.name] = _build_section(section.name, section.type, values)
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section (known: {', '.join(sections)})")
    return Config(**sections)


def with_overrides(config: Config, overrides: dict[str, object]) -> Config:
    """A new validated Config with dotted keys replaced: {"windows.hop": 1.0,
    "events.thresholds.Speech": 0.3}. A value of None leaves the setting as it is."""
    data = asdict(config)
    for key, value in overrides.items():
        if value is None:
            continue
        parts = key.split(".")
        if len(parts) < 2 or parts[0] not in data or parts[1] not in data[parts[0]]:
            raise ConfigError(f"{key}: unknown setting")
        if len(parts) == 2:
            data[parts[0]][parts[1]] = value
        elif isinstance(data[parts[0]][parts[1]], dict):
            data[parts[0]][parts[1]] = {**data[parts[0]][parts[1]], ".".join(parts[2:]): value}
        else:
            raise ConfigError(f"{key}: unknown setting")
    return config_from_dict(data)


def parse_assignment(text: str) -> tuple[str, object]:
    """"events.min_duration=0.5" -> ("events.min_duration", 0.5); the value is read as TOML
    (quote strings that look like numbers or booleans: name="1")."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{text}: expected KEY=VALUE")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word is a string
    return key.strip(), value


def _check_table(key: str, value) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: must be a table, got {value!r}")


def _build_section(name: str, cls: type, values: dict):
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown setting (known: {', '.join(known)})")
    kwargs = {}
    for key, spec in known.items():
        full = f"{name}.{key}"
        if key in values:
            value = _coerce(full, values[key], hints[key])
        else:
            value = spec.default_factory() if spec.default is MISSING else spec.default
        _check_limits(full, value, spec.metadata)
        kwargs[key] = value
    return cls(**kwargs)


def _coerce(key: str, value, hint):
    """`value` as the annotated type, or ConfigError naming `key`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: must be a string, got {value!r}")
    if origin in (types.UnionType, typing.Union):
        for option in args:
            try:
                return _coerce(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: must be a {' or '.join(a.__name__ for a in args)}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: must be a list, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", item, args[0]) for i, item in enumerate(value))
    if origin is dict:
        _check_table(key, value)
        return {str(k): _coerce(f"{key}.{k}", v, args[1]) for k, v in value.items()}
    raise TypeError(f"no coercion for {hint}")


def _check_limits(key: str, value, limits) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            _check_limits(f"{key}.{name}", item, limits)
        return
    if "choices" in limits and value not in limits["choices"]:
        raise ConfigError(f"{key}: must be one of {', '.join(limits['choices'])}, got {value!r}")
    if "min" in limits and value < limits["min"]:
        raise ConfigError(f"{key}: must be >= {limits['min']:g}, got {value:g}")
    if "above" in limits and value <= limits["above"]:
        raise ConfigError(f"{key}: must be > {limits['above']:g}, got {value:g}")
    if "max" in limits and value > limits["max"]:
        raise ConfigError(f"{key}: must be <= {limits['max']:g}, got {value:g}")
    if limits.get("odd") and value % 2 == 0 and value != 0:
        raise ConfigError(f"{key}: must be odd (or 0), got {value}")
    if limits.get("nonempty") and not value:
        raise ConfigError(f"{key}: must not be empty")
    if isinstance(value, tuple) and any(isinstance(v, str) and not v for v in value):
        raise ConfigError(f"{key}: names must not be empty")
