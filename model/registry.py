"""The model folder and the official checkpoints: where `htsat-live models add` keeps converted models, which
official HTS-AT checkpoints exist, and how a model name given to `--model` becomes a file.

The folder is $XDG_DATA_HOME/htsat-live/models (~/.local/share/htsat-live/models), or `[model] dir` in the
config. Each model is one `NAME.safetensors` in our format (model/checkpoint.py), whose metadata carries its
labels and provenance (source file name, sha256): loading it never opens a pickle.
"""

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

DRIVE_FOLDER = "https://drive.google.com/drive/folders/1f5VYMk0uos_YnuBshgmaTVioXbs7Kmz6"
OFFICIAL_REPOSITORY = "https://github.com/RetroCirce/HTS-Audio-Transformer"
MODEL_SUFFIX = ".safetensors"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # a model name: no dots, no slashes
DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class OfficialModel:
    """One checkpoint the HTS-AT authors publish (paper: Chen et al., ICASSP 2022, Table 1)."""

    name: str
    file: str  # its file name in the authors' Google Drive folder ("" when the folder names it otherwise)
    trained_on: str
    figure: str  # the published figure
    classes: int
    labels: str = ""  # a label file in model/data/ that `models add` gives it ("" = AudioSet's, from the class count)
    unsupported: str = ""  # why htsat-live cannot run it ("" = it can)


OFFICIAL_MODELS = [
    *(
        OfficialModel(
            f"audioset-{i}",
            f"HTSAT_AudioSet_Saved_{i}.ckpt",
            "AudioSet (2 M clips, 527 classes)",
            "one of six: mAP 0.471 (one model), 0.487 (the six)",
            527,
        )
        for i in range(1, 7)
    ),
    OfficialModel(
        "esc50", "", "ESC-50 (50 classes), fine-tuned from AudioSet", "accuracy 97.0%", 50, labels="esc50_labels.txt"
    ),
    OfficialModel(
        "speech-commands",
        "",
        "Speech Commands V2 (35 words)",
        "accuracy 98.0%",
        35,
        unsupported="trained on 16 kHz audio with hop 160; htsat-live's front end runs at 32 kHz with hop 320, "
        "so its outputs would not be the published ones",
    ),
]
OFFICIAL_BY_NAME = {model.name: model for model in OFFICIAL_MODELS}


def model_dir(configured: str | Path | None = None) -> Path:
    """The model folder: `configured` (`[model] dir`) when given, else $XDG_DATA_HOME/htsat-live/models."""
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "htsat-live" / "models"


def model_file(name: str, folder: str | Path | None = None) -> Path:
    return model_dir(folder) / f"{name}{MODEL_SUFFIX}"


def installed_names(folder: str | Path | None = None) -> list[str]:
    folder = model_dir(folder)
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob(f"*{MODEL_SUFFIX}") if NAME_PATTERN.fullmatch(path.stem))


def official_for_file(file_name: str, classes: int) -> OfficialModel | None:
    """The official model a checkpoint's file name and class count say it is (HTSAT_AudioSet_Saved_3.ckpt with
    527 classes -> audioset-3)."""
    name = Path(file_name).name
    return next((model for model in OFFICIAL_MODELS if model.file == name and model.classes == classes), None)


def resolve_model(spec: str | Path, folder: str | Path | None = None) -> Path:
    """The file `--model` means: an existing file as it is; else a model name, `NAME.safetensors` in the model
    folder. A name that is neither raises ValueError saying how to get it; anything else is returned as a path
    (the loader then says that no such file exists)."""
    path = Path(spec)
    if path.exists() or not NAME_PATTERN.fullmatch(str(spec)):
        return path
    installed = model_file(str(spec), folder)
    if installed.is_file():
        return installed
    official = OFFICIAL_BY_NAME.get(str(spec))
    if official is not None and official.unsupported:
        raise ValueError(f"{spec}: not supported: {official.unsupported}")
    if official is not None:
        file = official.file or f"the {official.trained_on.split(' (')[0]} checkpoint"
        raise ValueError(
            f"{spec}: not installed; download {file} from {DRIVE_FOLDER} and run `htsat-live models add FILE`"
        )
    names = ", ".join(installed_names(folder)) or "none"
    raise ValueError(
        f"{spec}: no such checkpoint file, nor a model in {model_dir(folder)} (installed: {names}; "
        "`htsat-live models` lists them)"
    )


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def published_labels(official: OfficialModel) -> list[str] | None:
    """The labels `models add` gives an official checkpoint that carries none (ESC-50's 50 categories)."""
    if not official.labels:
        return None
    return [line.strip() for line in (DATA / official.labels).read_text(encoding="utf-8").splitlines() if line.strip()]
