"""A folder of strong-labelled soundscapes, read as it comes: our own sets and DESED-style folders.

Both layouts are one folder holding
- an event table: a TSV with the columns filename, onset, offset, event_label (DESED's `soundscapes.tsv`,
  `validation.tsv`; ours `soundscapes.tsv`),
- a durations table: a TSV with filename, duration (DESED's `durations.tsv`, `validation_durations.tsv`; ours
  `soundscapes_metadata.tsv`): it lists the clips of the set, those without events included,
- the clips the tables name, in `audio/` when the folder has one (DESED-style), else beside the tables (ours).
The tables are the two files that `htsat-live evaluate` takes as --ground-truth and --metadata. They are found
by their header among the folder's `*.tsv` files and those of its `metadata/` subfolder; their names do not
matter. `manifest.json` (what `training.soundscapes.make_set` writes) is optional: when present it names the
set (its hash) and orders its classes.

The model sees 10-s windows: a clip is cut to its first 10 s (events after that are left out, offsets cut)
and a shorter one is zero-padded. Overlapping events of one class in one clip are merged into one, as the
DCASE tools do (psds_eval refuses them); the folder keeps how many were merged away.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from htsat_live.model.event_table import (
    EVENT_COLUMNS,
    labelled,
    merge_overlaps,
    read_events,
    read_metadata,
)
from htsat_live.model.timebase import WINDOW_SECONDS


@dataclass
class SoundscapeFolder:
    directory: Path
    audio_dir: Path
    events: pd.DataFrame  # filename, onset, offset, event_label: labelled rows, merged, within the first 10 s
    durations: pd.DataFrame  # filename, duration: every clip, durations of at most 10 s
    labels: list[str]  # every label of the events: the manifest's order, else sorted by name
    data_hash: str  # SHA-256 naming the set: the manifest's hash, else one of the tables and the clips' names and sizes
    merged: int  # overlapping same-class events merged away
    cut_clips: int  # clips longer than 10 s, of which only the first 10 s are used

    @property
    def names(self) -> list[str]:
        return list(self.durations["filename"])

    def path(self, name: str) -> Path:
        return self.audio_dir / name


def table_kind(path: Path) -> str | None:
    """ "events" or "durations" by a TSV's header, None for any other file."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        columns = set(handle.readline().rstrip("\r\n").split("\t"))
    if set(EVENT_COLUMNS) <= columns:
        return "events"
    if {"filename", "duration"} <= columns:
        return "durations"
    return None


def find_tables(directory: Path) -> tuple[Path, Path]:
    """The event table and the durations table of a folder (see the module docstring), or ValueError."""
    candidates = sorted(directory.glob("*.tsv")) + sorted((directory / "metadata").glob("*.tsv"))
    found: dict[str, list[Path]] = {"events": [], "durations": []}
    for path in candidates:
        kind = table_kind(path)
        if kind:
            found[kind].append(path)
    needs = {
        "events": "event table (a .tsv with filename, onset, offset, event_label)",
        "durations": "durations table (a .tsv with filename, duration)",
    }
    for kind, paths in found.items():
        if not paths:
            seen = ", ".join(p.name for p in candidates) or "no .tsv file"
            raise ValueError(f"{directory}: no {needs[kind]} in the folder or its metadata/ (found {seen})")
        if len(paths) > 1:
            raise ValueError(
                f"{directory}: {len(paths)} {needs[kind].split(' (')[0]}s "
                f"({', '.join(p.name for p in paths)}): keep one"
            )
    return found["events"][0], found["durations"][0]


def read_folder(directory: str | Path) -> SoundscapeFolder:
    """A soundscape folder, checked: ValueError naming the folder or file when it cannot be used."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a folder")
    events_path, durations_path = find_tables(directory)
    durations = read_metadata(durations_path)
    events, merged = merge_overlaps(read_events(events_path))
    events = labelled(events)
    audio_dir = directory / "audio" if (directory / "audio").is_dir() else directory
    if durations.empty:
        raise ValueError(f"{durations_path}: lists no clip")
    duplicated = durations["filename"][durations["filename"].duplicated()]
    if len(duplicated):
        raise ValueError(
            f"{durations_path}: {duplicated.iloc[0]} is listed "
            f"{int((durations['filename'] == duplicated.iloc[0]).sum())} times"
        )
    missing = [name for name in durations["filename"] if not (audio_dir / name).is_file()]
    if missing:
        raise ValueError(
            f"{audio_dir}: {len(missing)} clips of {durations_path.name} are missing (first: {missing[0]})"
        )
    unlisted = sorted(set(events["filename"]) - set(durations["filename"]))
    if unlisted:
        raise ValueError(
            f"{events_path}: {len(unlisted)} clips with events are not in {durations_path.name} (first: {unlisted[0]})"
        )
    cut_clips = int((durations["duration"] > WINDOW_SECONDS).sum())
    durations = durations.assign(duration=durations["duration"].clip(upper=WINDOW_SECONDS))
    events = events[events["onset"] < WINDOW_SECONDS]
    events = events.assign(offset=events["offset"].clip(upper=WINDOW_SECONDS)).reset_index(drop=True)
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else None
    found = set(events["event_label"])
    if manifest:
        labels = [label for label in manifest["labels"] if label in found] + sorted(found - set(manifest["labels"]))
        data_hash = manifest["hash"]
    else:
        labels = sorted(found)
        content = hashlib.sha256(events_path.read_bytes() + durations_path.read_bytes())
        for name in durations["filename"]:
            content.update(f"\n{name}\t{(audio_dir / name).stat().st_size}".encode())
        data_hash = content.hexdigest()
    return SoundscapeFolder(directory, audio_dir, events, durations, labels, data_hash, merged, cut_clips)


def choose_classes(train: SoundscapeFolder, asked: list[str] | None) -> list[str]:
    """The classes to train, in order: those asked (each must have events in the training set), else every
    label of the training set (`SoundscapeFolder.labels`)."""
    if not asked:
        if not train.labels:
            raise ValueError(f"{train.directory}: the event table holds no event")
        return train.labels
    repeated = sorted({label for label in asked if asked.count(label) > 1})
    if repeated:
        raise ValueError(f"--classes names {', '.join(repeated)} more than once")
    absent = [label for label in asked if label not in train.labels]
    if absent:
        raise ValueError(f"{train.directory}: no events of {', '.join(absent)} (its labels: {', '.join(train.labels)})")
    return list(asked)


def require_events(folder: SoundscapeFolder, classes: list[str]) -> None:
    """ValueError unless the folder holds an event of one of the classes (a set to score them on)."""
    if not set(classes) & set(folder.labels):
        raise ValueError(
            f"{folder.directory}: no events of the classes trained ({', '.join(classes)}) to score them on"
        )


def describe(folder: SoundscapeFolder, classes: list[str]) -> list[str]:
    """One line on each thing about a folder that a user should know before training on it."""
    lines = [f"{folder.directory}: {len(folder.names)} clips, {len(folder.events)} events"]
    if folder.merged:
        lines.append(
            f"{folder.directory}: merged {folder.merged} overlapping events of one class into their neighbours "
            "(as the DCASE tools do)"
        )
    left_out = folder.events[~folder.events["event_label"].isin(classes)]
    if len(left_out):
        lines.append(
            f"{folder.directory}: {len(left_out)} events of classes not trained are left out "
            f"({', '.join(sorted(set(left_out['event_label'])))})"
        )
    absent = [label for label in classes if label not in folder.labels]
    if absent:
        lines.append(f"{folder.directory}: no events of {', '.join(absent)}: their F1 here is 0")
    if folder.cut_clips:
        lines.append(
            f"{folder.directory}: {folder.cut_clips} clips are longer than {WINDOW_SECONDS:g} s: only their "
            "first 10 s are used"
        )
    return lines
