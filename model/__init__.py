"""The HTS-AT model and the torch-free pieces every path shares; its public names are listed here.

`load_model(path).predict(wave)` is the API the stream, the GUI and the commands call. Besides it:
the clock (`timebase`: sample rate, window, frame and token lengths), audio files to 32 kHz mono
(`audio`), the event rule (`event_rule`: targets, median filter, thresholds, runs to events, the
official offline rule) and event tables (`event_table`: the DESED TSV, read, written and scored).

Names are imported on first use (PEP 562), so that a command which needs only the light pieces
(`listen`, `keys`, `--help`) does not pay for torch or pandas at start-up.
"""

import importlib

_EXPORTS = {
    "loading": ("load_model",),
    "backend_choice": ("BACKEND_CHOICES", "BACKEND_HELP", "backend_line"),
    "predictor": ("PRECISIONS", "Predictor", "TorchBackend"),
    "embedded": ("DEFAULT_MODEL", "DEMO_RECORDING"),
    "registry": ("model_dir", "resolve_model"),
    "ensemble": ("ensemble", "ensemble_line", "members_of"),
    "checkpoint": ("CheckpointError", "audioset_labels"),
    "frontend": ("N_FFT",),
    "timebase": (
        "FRAME_SECONDS",
        "HOP_LENGTH",
        "MODEL_FRAMES",
        "SAMPLES_PER_FRAME",
        "SAMPLE_RATE",
        "TOKEN_SAMPLES",
        "TOKEN_SECONDS",
        "WINDOW_SAMPLES",
        "WINDOW_SECONDS",
        "frames_for",
        "zero_padded_batch",
    ),
    "audio": (
        "AudioFileError",
        "CLIP_LEVEL",
        "Conditioner",
        "SampleCounts",
        "check_audio_file",
        "read_blocks",
        "read_clip",
    ),
    "event_rule": (
        "Target",
        "TargetError",
        "build_targets",
        "detect_clip",
        "events_from_scores",
        "median_over_frames",
        "near_misses",
        "offline_timeline",
        "official_events",
        "runs_to_events",
        "target_scores",
        "windowed_median",
    ),
    "event_table": (
        "EVENT_COLUMNS",
        "EVENT_HEADER",
        "event_f1",
        "event_row",
        "read_events",
        "read_metadata",
        "write_events",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return __all__
