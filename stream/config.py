"""Typed configuration of a stream: frozen pydantic models loaded once from TOML and validated.

`load_config(path)` reads a TOML file (see configs/default.toml for every setting with its meaning);
`with_overrides(config, {"windows.hop": 1.0})` applies command-line flags on top. Both return a new,
fully checked `Config`; an unknown key, a wrong type or an out-of-range value raises `ConfigError`
naming the key, e.g. "events.min_duration: must be >= 0, got -1".

Types are strict as in TOML: an integer is accepted for a float setting, but a boolean is not a
number and a string is not a number; lists are read as tuples.

Settings not given keep the defaults below, which are the values written in configs/default.toml.
"""

import re
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    Strict,
    ValidationError,
    model_validator,
)

from htsat_live.model import BACKEND_CHOICES, TOKEN_SECONDS, WINDOW_SECONDS

HOP_MIN = TOKEN_SECONDS  # one HTS-AT token (10 s / 32)
HOP_MAX = WINDOW_SECONDS  # one whole window


class ConfigError(ValueError):
    """A setting is unknown, of the wrong type, or out of range; the message starts with its key."""


def _odd_or_zero(frames: int) -> int:
    if frames % 2 == 0 and frames != 0:
        raise ValueError(f"must be odd (or 0), got {frames}")
    return frames


def _no_empty_names(names: tuple) -> tuple:
    if any(isinstance(name, str) and not name for name in names):
        raise ValueError("names must not be empty")
    return names


def _one_error_for_the_union(source, handler):
    # pydantic reports a value that no member of a union accepts once per member; one error reads better
    return {
        **handler(source),
        "custom_error_type": "label_or_index",
        "custom_error_message": "Input should be a label (str) or a class index (int)",
    }


Score = Annotated[float, Field(ge=0.0, le=1.0)]
LabelOrIndex = Annotated[str | int, GetPydanticSchema(_one_error_for_the_union)]
# A TOML list becomes a tuple: the tuple itself is lax (strict would take only tuples), its items stay strict.
Names = Annotated[tuple[str, ...], Strict(False), AfterValidator(_no_empty_names)]
ModelPaths = Annotated[tuple[str, ...], Strict(False), Field(min_length=1), AfterValidator(_no_empty_names)]
Members = Annotated[tuple[LabelOrIndex, ...], Strict(False), Field(min_length=1), AfterValidator(_no_empty_names)]


class _Settings(BaseModel):
    # nan and inf are refused for every float: no setting gives them a meaning (a large number lifts a cap)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _inference(setting: str) -> str:
    if setting not in ("local", "ray") and not re.fullmatch(r"ray:\S+", setting):
        raise ValueError(f"must be local, ray or ray:ADDRESS, got {setting!r}")
    return setting


class SourceConfig(_Settings):
    input: str = ""  # "" | "mic" | "mic:NAME" | "ffmpeg:URL" | a file path
    name: str = ""  # stream id in messages; "" = derived from the input
    inputs: Names = ()  # several sources, one stream each (instead of input)
    names: Names = ()  # their stream ids, one per input; () = derived from each input
    fast: bool = False  # files: feed as fast as possible instead of in real time
    loop: bool = False  # ffmpeg:URL of a finite input (a whole file): start again at its end
    ring_seconds: float = Field(60.0, ge=20.0, le=3600.0)

    @model_validator(mode="after")
    def _distinct_names(self) -> "SourceConfig":  # the pipeline checks that there is one per input
        if len(set(self.names)) != len(self.names):
            raise ValueError("names: each stream needs its own name")
        return self


class WindowsConfig(_Settings):
    hop: float = Field(1.25, ge=HOP_MIN, le=HOP_MAX)  # seconds between window starts
    stagger: bool = False  # several streams: stream i of N moves its windows i/N of a hop later
    # a window whose every second stays below this level (dBFS, as status level_dbfs) is not run; None = off
    gate_dbfs: float | None = Field(None, gt=-120.0, le=0.0)


class ModelConfig(_Settings):
    # checkpoint or .onnx file, or a model name (`htsat-live models`); "" = the embedded default model; a list of
    # several = an ensemble, their outputs averaged
    path: str | ModelPaths = ""
    dir: str = ""  # the model folder of `htsat-live models add`; "" = $XDG_DATA_HOME/htsat-live/models
    # auto: ONNX Runtime for an .onnx file; on the CPU OpenVINO fp32 from 10 M parameters, else torch (docs/speed.md)
    backend: Literal[BACKEND_CHOICES] = "auto"
    device: Literal["cpu", "cuda"] = "cpu"
    precision: Literal["fp32", "bf16", "int8"] = "fp32"  # bf16: torch or openvino, on CPUs with bf16; int8: openvino
    calibration: str = ""  # int8: a folder of the site's own recordings to calibrate on; "" = the default set
    inference: Annotated[str, AfterValidator(_inference)] = "local"  # "local" | "ray" | "ray:ADDRESS"


class EventsConfig(_Settings):
    threshold: Score = 0.5  # when the model has no thresholds
    thresholds: dict[str, Score] = {}  # label -> on-threshold
    hysteresis: float = Field(1.0, gt=0.0, le=1.0)  # off-threshold = ratio * on-threshold
    off_thresholds: dict[str, Score] = {}  # label -> off-threshold
    # grid frames; 1 = no filter, 0 = the model's
    median_frames: Annotated[int, Field(ge=0, le=1023), AfterValidator(_odd_or_zero)] = 0
    min_duration: float = Field(0.0, ge=0.0)  # seconds
    min_durations: dict[str, Annotated[float, Field(ge=0.0)]] = {}  # target -> its own min_duration, seconds
    gap_merge: float = Field(0.0, ge=0.0)  # seconds
    confirm_updates: int = Field(4, ge=1)  # an event is confirmed once seen in this many updates (1 = at once)
    confirm_ratio: float = Field(2.0, ge=0.0)  # ... or once its peak reaches ratio x on-threshold (0 = never)
    classes: bool = True  # every model class is a detection target besides the groups
    allow: Names = ()  # only these targets (empty = all)
    deny: Names = ()  # never these targets
    groups: dict[str, Members] = {}  # name -> labels/indices


class PublishConfig(_Settings):
    enabled: bool = True
    bind: str = "tcp://127.0.0.1:5556"
    allow_remote: bool = False  # permit a non-loopback bind address
    server_secret_key: str = ""  # CURVE secret key file; "" = no encryption
    top_k: int = Field(10, ge=0)  # classes per scores message; 0 = all
    hwm: int = Field(100, ge=1)  # messages queued per subscriber before dropping


class SinksConfig(_Settings):
    jsonl: str = ""  # events as JSON Lines; "" = off
    tsv: str = ""  # DESED-style TSV; "" = off
    audacity: str = ""  # Audacity label track; "" = off
    clips_dir: str = ""  # WAV clip per event; "" = off
    pre_roll: float = Field(1.0, ge=0.0, le=10.0)  # seconds before the onset
    post_roll: float = Field(1.0, ge=0.0, le=10.0)  # seconds after the offset
    clips_max_mb: float = Field(500.0, gt=0.0)  # disk cap of clips_dir
    privacy: Literal["off", "drop", "mute"] = "off"  # clips overlapping a privacy target: kept, not written, silenced
    privacy_targets: Names = ("Speech",)  # detection targets whose audio is never stored


def _mqtt_url(url: str) -> str:
    if url and not re.fullmatch(r"mqtts?://[^/:\s]+(:\d{1,5})?/?", url):
        raise ValueError(f"must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (or empty), got {url!r}")
    return url


class MqttConfig(_Settings):
    url: Annotated[str, AfterValidator(_mqtt_url)] = ""  # mqtt://HOST[:PORT] or mqtts://; "" = off
    ca_file: str = ""  # mqtts: CA certificate file; "" = the system's
    username: str = ""  # "" = no login
    password_file: str = ""  # file whose first line is the password
    client_id: str = ""  # "" = htsat-live-<host>-<stream names>; also names the Home Assistant device
    topic_prefix: str = "htsat-live"
    qos: int = Field(1, ge=0, le=2)
    discovery_prefix: str = "homeassistant"  # Home Assistant MQTT discovery; "" = no discovery
    queue: int = Field(1000, ge=1)  # messages held while the broker is away; the oldest go first
    reconnect_max: float = Field(5.0, ge=1.0, le=300.0)  # longest wait between reconnect attempts, seconds


class LoudnessConfig(_Settings):
    enabled: bool = False  # events of the target "Loud" when the input level passes threshold_dbfs
    threshold_dbfs: float = Field(-30.0, ge=-120.0, le=0.0)  # an event starts above this level
    hysteresis_db: float = Field(6.0, ge=0.0, le=60.0)  # ... and ends at threshold - hysteresis or below
    min_duration: float = Field(0.25, ge=0.0, le=60.0)  # seconds; shorter bursts are not events
    window: float = Field(0.125, ge=0.01, le=1.0)  # seconds per level measurement
    weighting: Literal["A", "none"] = "A"  # A-weighting (IEC 61672) or none


class MetricsConfig(_Settings):
    bind: str = ""  # HOST:PORT of the Prometheus endpoint, e.g. "127.0.0.1:9108"; "" = off
    allow_remote: bool = False  # permit a non-loopback address


class WebConfig(_Settings):
    bind: str = ""  # HOST:PORT of the browser view, e.g. "127.0.0.1:8080"; "" = off
    allow_remote: bool = False  # permit a non-loopback address (then token must be set)
    token: str = ""  # access token the page asks for (?token=...); "" = none (loopback only)
    seconds: float = Field(30.0, ge=10.0, le=60.0)  # length of the live timeline


class StoreConfig(_Settings):
    path: str = "xdg"  # SQLite event history; "xdg" = $XDG_DATA_HOME/htsat-live/events.db; "" = off
    keep_days: float = Field(90.0, ge=0.0)  # rows older than this are pruned; 0 = kept for ever


class Config(_Settings):
    source: SourceConfig = Field(default_factory=SourceConfig)
    windows: WindowsConfig = Field(default_factory=WindowsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    loudness: LoudnessConfig = Field(default_factory=LoudnessConfig)
    web: WebConfig = Field(default_factory=WebConfig)


PRESETS = Path(__file__).resolve().parent / "presets"  # the presets shipped with the package (--preset NAME)


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS.glob("*.toml"))


def load_config(path: str | Path | None = None, preset: str | None = None) -> Config:
    """The config in a TOML file (None = all defaults) over a preset (stream/presets/NAME.toml; None = none):
    a setting of the file wins, tables (such as [events.groups]) are merged key by key. Validated."""
    if preset:
        if preset not in preset_names():
            raise ConfigError(f"--preset {preset}: no such preset (known: {', '.join(preset_names())})")
        data = _read_toml(PRESETS / f"{preset}.toml")
        return config_from_dict(_merged(data, _read_toml(path) if path is not None else {}))
    if path is None:
        return config_from_dict({})
    return config_from_dict(_read_toml(path))


def _merged(below: dict, above: dict) -> dict:
    """`above` laid over `below`: tables merged key by key, anything else replaced."""
    merged = dict(below)
    for key, value in above.items():
        both_tables = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_tables else value
    return merged


def _read_toml(path: str | Path) -> dict:
    try:
        # utf-8-sig: a byte order mark, as some Windows editors write, is read past
        data = tomllib.loads(Path(path).read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (line {line}, byte {error.object[error.start]:#04x}); save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    return data


def config_from_dict(data: dict) -> Config:
    """A validated Config from nested dicts shaped like the TOML file."""
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_error_line(error.errors()[0])) from None


def with_overrides(config: Config, overrides: dict[str, object]) -> Config:
    """A new validated Config with dotted keys replaced: {"windows.hop": 1.0,
    "events.thresholds.Speech": 0.3}. A value of None leaves the setting as it is."""
    # Dotted keys are ours: pydantic's model_copy(update=...) neither validates nor reaches into a section.
    data = config.model_dump()
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
    """ "events.min_duration=0.5" -> ("events.min_duration", 0.5); the value is read as TOML
    (quote strings that look like numbers or booleans: name="1")."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{text}: expected KEY=VALUE")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word is a string
    return key.strip(), value


# pydantic error type -> what the setting must be
_EXPECTED = {
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "label_or_index": "a str or int",
    "tuple_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "finite_number": "a finite number",
}
# pydantic error type -> (its limit in the error's context, the comparison it failed)
_LIMITS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"), "less_than_equal": ("le", "<=")}


def _error_line(error: dict) -> str:
    """One pydantic error as a line that starts with the setting's TOML key."""
    where, kind, value = error["loc"], error["type"], error["input"]
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in where).removeprefix(".")
    if kind == "extra_forbidden":
        known = ", ".join(_annotation_at(where[:-1]).model_fields)
        return f"{key}: unknown {'section' if len(where) == 1 else 'setting'} (known: {known})"
    if kind in _EXPECTED:
        return f"{key}: must be {_EXPECTED[kind]}, got {value!r}"
    if kind in _LIMITS:
        limit, comparison = _LIMITS[kind]
        return f"{key}: must be {comparison} {error['ctx'][limit]:g}, got {value:g}"
    if kind == "literal_error":
        return f"{key}: must be one of {', '.join(typing.get_args(_annotation_at(where)))}, got {value!r}"
    if kind == "too_short":
        return f"{key}: must not be empty"
    if kind == "value_error":  # raised by the validators above, worded as the rest
        return f"{key}: {error['ctx']['error']}"
    return f"{key}: {error['msg']}"  # no other kind comes from TOML; a Python caller's keeps pydantic's words


def _annotation_at(where: tuple):
    """The type declared for a setting: ("model", "backend") -> Literal["torch", "onnx"]; () -> Config."""
    annotation = Config
    for name in where:
        annotation = annotation.model_fields[name].annotation
    return annotation
