"""Labelled clip sets as people keep them, read without a conversion step, and the clip-level scores.

Layouts (`read_clip_set` tells them apart):
- a folder per class: DATA/<class>/<any depth>/*.wav (any rate, channels, length);
- ESC-50: DATA/meta/esc50.csv (filename, fold, target, category) and the clips in DATA/audio/;
- Speech Commands: a folder per word, validation_list.txt and testing_list.txt naming the validation and
  test clips (the rest train); _background_noise_ holds noise, not a class, and is left out;
- a CSV file of `filename, labels` (AudioSet style: labels comma-separated inside one quoted field),
  file names relative to the CSV's folder: multi-label.

The model sees 10-s windows, so clips are brought to 10 s as the HTS-AT paper does: a shorter clip is tiled
(1 s x 10, 5 s x 2), a longer one cut into evenly spaced 10-s windows that share its labels; a clip's score is
the mean of its windows'. A file that cannot be read raises AudioFileError in `read_windows`; callers count
and skip it.
"""

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from htsat_live.model.audio import AudioFileError, read_clip
from htsat_live.model.timebase import WINDOW_SAMPLES

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif"}
ESC50_META = Path("meta") / "esc50.csv"
SPEECH_LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}
BACKGROUND_NOISE = "_background_noise_"
LAYOUTS = ("folders", "esc50", "speech_commands", "csv")


class ClipSetError(ValueError):
    """A clip set that cannot be used as asked; the message says why in one line."""


@dataclass(frozen=True)
class Clip:
    path: Path
    labels: tuple[str, ...]
    split: str = ""  # "train", "val" or "test" where the layout says (Speech Commands), else ""
    fold: int | None = None  # ESC-50's fold


@dataclass
class ClipSet:
    root: Path
    layout: str  # one of LAYOUTS
    labels: list[str]  # class order
    clips: list[Clip]
    multi_label: bool
    notes: list[str] = field(default_factory=list)  # what was left out, one line each

    def targets(self) -> np.ndarray:
        """[N, C] 0/1 labels of every clip."""
        column = {label: i for i, label in enumerate(self.labels)}
        target = np.zeros((len(self.clips), len(self.labels)), np.float32)
        for row, clip in enumerate(self.clips):
            target[row, [column[label] for label in clip.labels]] = 1.0
        return target

    def subset(self, indices) -> "ClipSet":
        return replace(self, clips=[self.clips[i] for i in indices])

    def split(self, name: str) -> "ClipSet":
        return replace(self, clips=[clip for clip in self.clips if clip.split == name])

    def describe(self) -> str:
        counts = self.targets().sum(axis=0).astype(int)
        shown = ", ".join(f"{label} {n}" for label, n in zip(self.labels, counts))
        return (
            f"{self.root}: {len(self.clips)} clips, {len(self.labels)} classes ({self.layout}"
            f"{', multi-label' if self.multi_label else ''}): {shown}"
        )


def read_clip_set(path: str | Path) -> ClipSet:
    """A clip set in any of the layouts of the module docstring; ClipSetError when it is none of them."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _read_label_csv(path)
    if path.is_file():
        raise ClipSetError(
            f"{path}: a file, not a folder of clips or a CSV file (DATA/<class>/*.wav, ESC-50, Speech Commands, "
            "or a CSV of filename, labels)"
        )
    if not path.is_dir():
        raise ClipSetError(f"{path}: no such folder or CSV file")
    if (path / ESC50_META).is_file():
        return _read_esc50(path)
    if any((path / name).is_file() for name in SPEECH_LISTS.values()):
        return _read_speech_commands(path)
    return _read_folders(path)


def _audio_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _read_folders(root: Path) -> ClipSet:
    clips = [Clip(file, (folder.name,)) for folder in _class_folders(root) for file in _audio_below(folder)]
    labels = sorted({clip.labels[0] for clip in clips})
    if not clips:
        raise ClipSetError(
            f"{root}: no audio in class folders (DATA/<class>/*.wav), and no meta/esc50.csv, "
            "validation_list.txt or testing_list.txt"
        )
    return ClipSet(root, "folders", labels, clips, multi_label=False)


def _read_esc50(root: Path) -> ClipSet:
    with open(root / ESC50_META, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"filename", "fold", "target", "category"} - set(rows[0] if rows else {})
    if missing:
        raise ClipSetError(
            f"{root / ESC50_META}: missing columns {sorted(missing)} (ESC-50: filename, fold, target, category)"
        )
    try:
        names = {int(row["target"]): row["category"] for row in rows}
        clips = [Clip(root / "audio" / row["filename"], (row["category"],), fold=int(row["fold"])) for row in rows]
    except ValueError as error:
        raise ClipSetError(f"{root / ESC50_META}: fold and target must be integers ({error})") from None
    return ClipSet(root, "esc50", [names[target] for target in sorted(names)], clips, multi_label=False)


def _read_speech_commands(root: Path) -> ClipSet:
    split_of = {}
    for split, name in SPEECH_LISTS.items():
        if (root / name).is_file():
            for line in (root / name).read_text(encoding="utf-8").splitlines():
                if line.strip():
                    split_of[line.strip()] = split
    clips = [
        Clip(file, (folder.name,), split_of.get(file.relative_to(root).as_posix(), "train"))
        for folder in _class_folders(root)
        for file in _audio_below(folder)
    ]
    if not clips:
        raise ClipSetError(f"{root}: no audio in word folders")
    notes = []
    noise = root / BACKGROUND_NOISE
    if noise.is_dir():
        notes.append(f"{BACKGROUND_NOISE}: {len(_audio_below(noise))} noise recordings, not a class: left out")
    listed = set(split_of) - {clip.path.relative_to(root).as_posix() for clip in clips}
    if listed:
        notes.append(f"{len(listed)} clips named in the lists are missing, e.g. {sorted(listed)[0]}")
    return ClipSet(root, "speech_commands", sorted({clip.labels[0] for clip in clips}), clips, False, notes)


def _read_label_csv(path: Path) -> ClipSet:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, skipinitialspace=True))
    if not rows or not {"filename", "labels"} <= set(rows[0]):
        raise ClipSetError(f"{path}: a label table needs the columns filename and labels")
    clips, labels = [], []
    for row in rows:
        names = tuple(dict.fromkeys(label.strip() for label in row["labels"].split(",") if label.strip()))
        if not names:
            raise ClipSetError(f"{path}: {row['filename']} has no labels")
        clips.append(Clip(path.parent / row["filename"], names))
        labels += [label for label in names if label not in labels]
    return ClipSet(path.parent, "csv", sorted(labels), clips, multi_label=True)


def clip_windows(wave: np.ndarray) -> np.ndarray:
    """A clip [N] at 32 kHz as the model's 10-s windows [W, 320000]: tiled to 10 s when shorter (the
    paper's repeat), else W = ceil(N / 10 s) windows evenly spaced from its start to its end."""
    if len(wave) == 0:
        raise AudioFileError("the clip holds no samples")
    if len(wave) <= WINDOW_SAMPLES:
        return np.tile(wave, math.ceil(WINDOW_SAMPLES / len(wave)))[None, :WINDOW_SAMPLES]
    count = math.ceil(len(wave) / WINDOW_SAMPLES)
    starts = np.linspace(0, len(wave) - WINDOW_SAMPLES, count).round().astype(int)
    return np.stack([wave[start : start + WINDOW_SAMPLES] for start in starts])


def read_windows(path: Path) -> np.ndarray:
    """An audio file as 10-s windows [W, 320000] (`clip_windows`); AudioFileError when it cannot be read."""
    try:
        return clip_windows(read_clip(path))
    except AudioFileError as error:
        raise AudioFileError(str(error) if str(path) in str(error) else f"{path}: {error}") from None


def clip_scores(probabilities: np.ndarray, targets: np.ndarray, labels: list[str], multi_label: bool) -> dict:
    """Clip-level figures (scikit-learn): probabilities, targets [N, C]. Single-label: top-1 and top-5
    accuracy and per-class accuracy (recall); always the mean average precision over the classes with a
    positive clip and the per-class AP (None for a class without one). Fractions."""
    from sklearn.metrics import average_precision_score, top_k_accuracy_score

    per_class = {}
    for c, label in enumerate(labels):
        positives = targets[:, c] > 0
        entry = {
            "clips": int(positives.sum()),
            "ap": float(average_precision_score(positives, probabilities[:, c])) if positives.any() else None,
        }
        if not multi_label:
            entry["accuracy"] = (
                float((probabilities[positives].argmax(axis=1) == c).mean()) if positives.any() else None
            )
        per_class[label] = entry
    aps = [entry["ap"] for entry in per_class.values() if entry["ap"] is not None]
    result = {
        "clips": int(len(targets)),
        "accuracy": None,
        "top5_accuracy": None,
        "map": float(np.mean(aps)) if aps else None,
        "per_class": per_class,
    }
    if not multi_label and len(targets):
        truth = targets.argmax(axis=1)
        result["accuracy"] = float((probabilities.argmax(axis=1) == truth).mean())
        # with 5 classes or fewer every class is in the top 5
        result["top5_accuracy"] = (
            float(top_k_accuracy_score(truth, probabilities, k=5, labels=np.arange(len(labels))))
            if len(labels) > 5
            else 1.0
        )
    return result
