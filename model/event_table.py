"""Event tables: the DESED TSV format, read, written and scored.

An event table has the columns filename, onset, offset, event_label (seconds, written exactly: the
shortest decimal that reads back as the same float, so 10/1024-s frame times survive a round trip and a
table scores the same as the events it was written from); rows without a label (clips with no event) are
allowed. A metadata
table has filename, duration. `event_f1` scores detections against ground truth with the protocol of
Table 3 of the HTS-AT paper (psds_eval, DESED); training tunes its event rule for it and evaluation
reports it, so it lives here, below both. Torch-free.
"""

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

EVENT_COLUMNS = ["filename", "onset", "offset", "event_label"]
EVENT_HEADER = "\t".join(EVENT_COLUMNS)
# The Table 3 protocol (psds_eval's defaults).
F1_DTC, F1_GTC, F1_CTTC = 0.5, 0.5, 0.3


def event_row(filename: str, onset: float, offset: float, label: str) -> str:
    """One line of an event table, without its newline."""
    return f"{filename}\t{float(onset)!r}\t{float(offset)!r}\t{label}"


def write_events(path: str | Path, rows: Iterable[tuple[str, float, float, str]]) -> None:
    """An event table of (filename, onset s, offset s, label) rows."""
    with open(path, "w", encoding="utf-8") as out:
        out.write(EVENT_HEADER + "\n")
        for row in rows:
            out.write(event_row(*row) + "\n")


def read_events(path: str | Path) -> pd.DataFrame:
    """An event table (TSV), checked: every labelled row has numeric onset <= offset, or ValueError
    naming the file and line. Rows without a label (clips with no event) are kept as they are."""
    table = _read_table(path, EVENT_COLUMNS, "event table")
    events = labelled(table)
    for column in ("onset", "offset"):
        _require_numbers(path, events, column)
    table[["onset", "offset"]] = table[["onset", "offset"]].apply(pd.to_numeric, errors="coerce")
    reversed_rows = labelled(table).query("onset > offset")
    if not reversed_rows.empty:
        row = reversed_rows.iloc[0]
        raise ValueError(
            f"{path}: line {reversed_rows.index[0] + 2}: onset {row.onset:g} s is after offset "
            f"{row.offset:g} s ({row.filename}, {row.event_label}); {len(reversed_rows)} such rows"
        )
    return table


def read_metadata(path: str | Path) -> pd.DataFrame:
    """A metadata table (TSV): filename, duration (a number of seconds > 0), or ValueError naming the line."""
    table = _read_table(path, ["filename", "duration"], "metadata")
    _require_numbers(path, table, "duration")
    table["duration"] = pd.to_numeric(table["duration"])
    return table


def _read_table(path: str | Path, columns: list[str], what: str) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a tab-separated {what}: {str(error).strip().splitlines()[0]}") from None
    missing = set(columns) - set(table.columns)
    if missing:
        raise ValueError(f"{path}: {what} lacks the columns {sorted(missing)} (needs {', '.join(columns)})")
    return table[columns].copy()


def _require_numbers(path: str | Path, table: pd.DataFrame, column: str) -> None:
    numbers = pd.to_numeric(table[column], errors="coerce").astype(float)  # unreadable -> NaN
    bad = table[~np.isfinite(numbers)]
    if not bad.empty:
        raise ValueError(
            f"{path}: line {bad.index[0] + 2}: {column} {bad[column].iloc[0]!r} is not a number ({len(bad)} such rows)"
        )


def merge_overlaps(events: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Events of one class in one file that overlap become one event spanning them all, as the DCASE
    tools do (psds_eval refuses such tables); returns the table and how many events were merged away.
    Events that only touch (one ends where the next starts) stay apart."""
    rows, merged = [], 0
    for (filename, label), group in labelled(events).groupby(["filename", "event_label"], sort=False):
        onset = end = None
        for start, stop in sorted(zip(group["onset"], group["offset"])):
            if end is not None and start < end:
                end = max(end, stop)
                merged += 1
                continue
            if end is not None:
                rows.append((filename, onset, end, label))
            onset, end = start, stop
        rows.append((filename, onset, end, label))
    table = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    unlabelled = events[events["event_label"].isna()]
    if len(unlabelled):  # clips with no event keep their row
        table = pd.concat([table, unlabelled], ignore_index=True)
    return table, merged


def labelled(events: pd.DataFrame) -> pd.DataFrame:
    """The rows that hold an event."""
    return events[events["event_label"].notna()]


def event_f1(
    ground_truth: pd.DataFrame, metadata: pd.DataFrame, detections: pd.DataFrame
) -> tuple[float, dict[str, float]]:
    """Macro and per-class event-based F1 (psds_eval, Table 3 protocol), as fractions.

    Every class of the ground truth has a figure: one never detected scores 0 (psds_eval says NaN and
    leaves it out of its macro, which would flatter a detector that misses whole classes), and the macro
    is the mean over those classes. Overlapping events of one class are merged first (`merge_overlaps`).
    """
    from psds_eval import PSDSEval

    truth, detected = labelled(merge_overlaps(ground_truth)[0]), labelled(merge_overlaps(detections)[0])
    classes = sorted(set(truth["event_label"]))
    if not classes:
        raise ValueError("the ground truth holds no event")
    with warnings.catch_warnings():  # psds_eval averages empty slices for classes nobody detected
        warnings.simplefilter("ignore", RuntimeWarning)
        evaluator = PSDSEval(
            dtc_threshold=F1_DTC, gtc_threshold=F1_GTC, cttc_threshold=F1_CTTC, ground_truth=truth, metadata=metadata
        )
        _, per_class = evaluator.compute_macro_f_score(detected)
    scores = {label: _zero_if_nan(per_class.get(label, 0.0)) for label in classes}
    return sum(scores.values()) / len(scores), scores


def _zero_if_nan(value: float) -> float:
    return 0.0 if value != value else float(value)
