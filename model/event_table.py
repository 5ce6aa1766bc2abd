"""Event tables: the DESED TSV format, read, written and scored.

An event table has the columns filename, onset, offset, event_label (seconds, written exactly: the
shortest decimal that reads back as the same float, so 10/1024-s frame times survive a round trip and a
table scores the same as the events it was written from); rows without a label (clips with no event) are
allowed. A metadata
table has filename, duration. `event_f1` scores detections against ground truth with the protocol of
Table 3 of the HTS-AT paper (psds_eval, DESED); training tunes its event rule for it and evaluation
reports it, so it lives here, below both. Torch-free.
"""

from collections.abc import Iterable
from pathlib import Path

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
    """An event table (TSV). Rows without a label (clips with no event) are kept as they are."""
    table = pd.read_csv(path, sep="\t")
    missing = set(EVENT_COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"{path}: event table lacks the columns {sorted(missing)} (needs {EVENT_COLUMNS})")
    return table[EVENT_COLUMNS]


def read_metadata(path: str | Path) -> pd.DataFrame:
    """A metadata table (TSV): filename, duration."""
    table = pd.read_csv(path, sep="\t")
    missing = {"filename", "duration"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: metadata lacks the columns {sorted(missing)} (needs filename, duration)")
    return table[["filename", "duration"]]


def labelled(events: pd.DataFrame) -> pd.DataFrame:
    """The rows that hold an event."""
    return events[events["event_label"].notna()]


def event_f1(ground_truth: pd.DataFrame, metadata: pd.DataFrame, detections: pd.DataFrame) -> tuple[float, dict[str, float]]:
    """Macro and per-class event-based F1 (psds_eval, Table 3 protocol), as fractions."""
    from psds_eval import PSDSEval

    evaluator = PSDSEval(dtc_threshold=F1_DTC, gtc_threshold=F1_GTC, cttc_threshold=F1_CTTC,
                         ground_truth=labelled(ground_truth), metadata=metadata)
    macro, per_class = evaluator.compute_macro_f_score(labelled(detections))
    return float(macro), {label: float(f1) for label, f1 in per_class.items()}
