"""The event history: every finished event in an SQLite file, and the `htsat-live events` query command.

`EventStore(path, keep_days)` opens (or creates) the database and starts its one writer thread. It is an
output of the pipeline (stream.output): `handle(message)` passes each `event` report to `write(stream,
event)`, which queues it and returns at once (only confirmed ends that were not cancelled are stored: the
events that really happened); `clip_saved(stream, event_id, path)` records the clip cut for an event (the
sinks, listed after the store, call it); `close()` writes what is queued and stops the thread. Its
counters are shown on `status` under `sinks`, as `history_written`, `history_failures`, `history_dropped`.

Storage. The standard library's sqlite3 in WAL mode: readers (`htsat-live events`, another process)
never block the writer, and each batch of queued rows is one transaction, so a process killed at any
moment leaves a readable database holding every committed event. Rows older than `keep_days` are
pruned at start and then hourly.

Schema. `PRAGMA user_version` holds the schema version; `MIGRATIONS[v]` upgrades a database from
version v to v + 1, so opening an older file brings it up to date in place, and a file written by a
newer version is refused. Version 1, table `events`, one row per event:
`run` (a random id per opened history: event ids restart with each run), `stream`, `event_id`,
`label`, `onset`/`offset` (stream seconds), `onset_wall`/`offset_wall` (Unix seconds), `peak`, `mean`
(scores 0-1; dBFS for loudness events), `clip` (path of its WAV clip, or NULL).

Faults. A file that cannot be opened or is not an htsat-live history is an `EventStoreError` at start,
naming `store.path`. A write that fails later (disk full, the file made read-only) costs its rows,
counted in `failures`; a queue that fills (a stalled disk) drops new rows, counted in `dropped`.
Neither stops the stream.
"""

import argparse
import json
import logging
import math
import os
import queue
import re
import secrets
import sqlite3
import sys
import threading
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

from htsat_live.model import near_misses
from htsat_live.stream.events import Event
from htsat_live.stream.messages import EventMessage, Message
from htsat_live.stream.output import Output
from htsat_live.stream.paths import OutputPathError, output_file

MIGRATIONS = [  # MIGRATIONS[v]: the statements that turn schema version v into v + 1
    """
    CREATE TABLE events (
        run TEXT NOT NULL,
        stream TEXT NOT NULL,
        event_id INTEGER NOT NULL,
        label TEXT NOT NULL,
        onset REAL NOT NULL,
        offset REAL NOT NULL,
        onset_wall REAL NOT NULL,
        offset_wall REAL NOT NULL,
        peak REAL NOT NULL,
        mean REAL NOT NULL,
        clip TEXT,
        PRIMARY KEY (run, stream, event_id)
    );
    CREATE INDEX events_by_time ON events (onset_wall);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
COLUMNS = ("stream", "label", "onset", "offset", "onset_wall", "offset_wall", "peak", "mean", "clip", "run")
# `htsat-live events --run last`: the run whose first event is the newest
NEWEST_RUN = "(SELECT run FROM events GROUP BY run ORDER BY min(onset_wall) DESC LIMIT 1)"
QUEUE_LIMIT = 10_000  # rows waiting for the writer; beyond it new rows are dropped and counted
PRUNE_PERIOD = 3600.0  # seconds between two prunings of old rows
BUSY_TIMEOUT = 5.0  # seconds a statement waits for another process's write lock

log = logging.getLogger(__name__)


class EventStoreError(OSError):
    """The history cannot be opened; the message names `store.path` and the file."""


def default_path() -> Path:
    """$XDG_DATA_HOME/htsat-live/events.db (~/.local/share/htsat-live/events.db when unset)."""
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "htsat-live" / "events.db"


def resolve_path(setting: str) -> Path | None:
    """The file `[store] path` names: None for "" (off), the XDG default for "xdg", else the path."""
    if not setting:
        return None
    return default_path() if setting == "xdg" else Path(setting).expanduser()


def schema_version(connection: sqlite3.Connection) -> int:
    return connection.execute("PRAGMA user_version").fetchone()[0]


def migrate(connection: sqlite3.Connection) -> None:
    """Bring the database up to SCHEMA_VERSION, one version per transaction; ValueError for a newer one."""
    version = schema_version(connection)
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema version {version} is newer than this htsat-live's ({SCHEMA_VERSION})")
    if version == 0 and connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise ValueError("not an htsat-live event history (it holds other tables)")
    for step in range(version, SCHEMA_VERSION):
        # executescript commits first; BEGIN ... COMMIT makes each step all or nothing
        connection.executescript(f"BEGIN; {MIGRATIONS[step]} PRAGMA user_version = {step + 1}; COMMIT;")


def connect(path: Path) -> sqlite3.Connection:
    """An open, migrated history in WAL mode; EventStoreError naming store.path when it cannot be."""
    try:
        output_file(path, "store.path")
    except OutputPathError as error:
        raise EventStoreError(str(error)) from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as error:
        raise EventStoreError(f"store.path: cannot open {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        # WAL with synchronous NORMAL survives a killed process (not a power cut) without a sync per event
        connection.execute("PRAGMA synchronous = NORMAL")
        migrate(connection)
    except (sqlite3.Error, ValueError) as error:
        connection.close()
        raise EventStoreError(f"store.path: cannot use {path}: {error}") from None
    return connection


class EventStore(Output):
    """The history file and its writer thread (see the module docstring).

    Counters: `written` (rows committed), `failures` (rows a failed write cost), `dropped` (rows refused
    by a full queue).
    """

    name = "sinks"
    topics = ("event",)
    setting = "store.path"

    def __init__(self, path: str | Path, keep_days: float = 0.0):
        self.path = Path(path)
        self.keep_days = keep_days
        self.run = secrets.token_hex(8)  # 16 hex digits (RUN_ID)
        self.written = self.failures = self.dropped = 0
        self.last_error: str | None = None
        self._connection = connect(self.path)
        self._queue: queue.Queue = queue.Queue(QUEUE_LIMIT)
        self._thread = threading.Thread(target=self._write_loop, name="event history", daemon=True)
        self._thread.start()

    @classmethod
    def from_setting(cls, path: str, keep_days: float) -> "EventStore | None":
        """The history `[store]` asks for, or None when its path is ""."""
        resolved = resolve_path(path)
        return None if resolved is None else cls(resolved, keep_days)

    def handle(self, message: Message | EventMessage) -> None:
        if message.topic == "event":
            self.write(message.stream, message.event)

    def counters(self) -> dict[str, int]:
        return {"history_written": self.written, "history_failures": self.failures, "history_dropped": self.dropped}

    def write(self, stream: str, event: Event) -> None:
        """Queue a finished event (a confirmed end, not cancelled); other reports are not history."""
        if event.state == "end" and event.confirmed and not event.cancelled:
            self._put(
                (
                    "INSERT INTO events (run, stream, event_id, label, onset, offset, onset_wall, "
                    "offset_wall, peak, mean) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.run,
                        stream,
                        event.id,
                        event.label,
                        event.onset,
                        event.offset,
                        _real(event.onset_wall),
                        _real(event.offset_wall),
                        _real(event.peak),
                        _real(event.mean),
                    ),
                )
            )

    def clip_saved(self, stream: str, event_id: int, clip: Path) -> None:
        self._put(
            (
                "UPDATE events SET clip = ? WHERE run = ? AND stream = ? AND event_id = ?",
                (str(clip), self.run, stream, event_id),
            )
        )

    def close(self) -> None:
        """Write what is queued, stop the writer thread and close the file."""
        if self._thread is None:
            return
        self._queue.put(None)  # waits for room: every row queued before it is written first
        self._thread.join()
        self._thread = None
        self._connection.close()

    def _put(self, statement: tuple[str, tuple]) -> None:
        try:
            self._queue.put_nowait(statement)
        except queue.Full:
            self.dropped += 1

    def _write_loop(self) -> None:
        next_prune = 0.0
        while True:
            if self.keep_days > 0 and time.monotonic() >= next_prune:
                self._execute([("DELETE FROM events WHERE onset_wall < ?", (time.time() - self.keep_days * 86400,))])
                next_prune = time.monotonic() + PRUNE_PERIOD
            try:
                batch = [self._queue.get(timeout=PRUNE_PERIOD)]
            except queue.Empty:
                continue
            while batch[-1] is not None and not self._queue.empty():  # whatever else waits: one transaction
                batch.append(self._queue.get_nowait())
            statements = [item for item in batch if item is not None]
            if statements:
                self._execute(statements)
            if batch[-1] is None:
                return

    def _execute(self, statements: list[tuple[str, tuple]]) -> None:
        rows = sum(sql.startswith("INSERT") for sql, _ in statements)
        try:
            with self._connection:  # one transaction: all of the batch or none of it
                self._connection.execute("BEGIN")
                for sql, values in statements:
                    self._connection.execute(sql, values)
        except sqlite3.Error as error:
            self.failures += max(rows, 1)
            self.last_error = f"{self.setting}: writing {self.path}: {error}"
            if math.log10(self.failures).is_integer():  # the 1st, 10th, 100th ...: no flood of the log
                log.warning("%s (failure %d of the event history)", self.last_error, self.failures)
            return
        self.written += rows


def _real(value: float) -> float:
    return value if math.isfinite(value) else 0.0  # a column never holds NaN (sqlite would store NULL)


# --- `htsat-live events` ------------------------------------------------------------------------

DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
RUN_ID = re.compile(r"[0-9a-f]{16}")  # EventStore.run
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """`--since`: an age ("90s", "30m", "1h", "2d", "1w") or a local date/time ("2025-11-25",
    "2025-11-25 14:00") -> Unix seconds; ValueError for anything else."""
    now = time.time() if now is None else now
    match = DURATION.match(text.strip())
    if match:
        return now - float(match.group(1)) * UNIT_SECONDS[match.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(
            f"--since: expected an age such as 1h, 30m, 2d or a date such as 2025-11-25 or "
            f"'2025-11-25 14:00', got {text!r}"
        ) from None


def query(
    connection: sqlite3.Connection,
    since: float | None = None,
    label: str | None = None,
    stream: str | None = None,
    run: str | None = None,
) -> list[dict]:
    """The stored events that match, oldest first, as dicts of COLUMNS; `run` is a run id or "last" (the
    newest run)."""
    where, values = [], []
    if run == "last":
        where.append(f"run = {NEWEST_RUN}")
        run = None
    for condition, value in (
        ("onset_wall >= ?", since),
        ("label = ? COLLATE NOCASE", label),  # as typed: --label bird finds Bird
        ("stream = ?", stream),
        ("run = ?", run),
    ):
        if value is not None:
            where.append(condition)
            values.append(value)
    sql = f"SELECT {', '.join(COLUMNS)} FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = connection.execute(sql + " ORDER BY onset_wall, rowid", values).fetchall()
    return [dict(zip(COLUMNS, row)) for row in rows]


def add_events_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help=f"the history file (default: {default_path()}, the default [store] path)")
    parser.add_argument(
        "--since",
        help="only events since an age (90s, 30m, 1h, 2d, 1w) or a local date/time (2025-11-25, '2025-11-25 14:00')",
    )
    parser.add_argument("--label", help="only this detection target (in any case: bird finds Bird)")
    parser.add_argument("--stream", help="only this stream")
    parser.add_argument(
        "--run",
        dest="run_id",
        metavar="ID|last",  # args.run is the command's own (htsat_live.cli)
        help="only this run of detect: its id (the run column) or last, the newest run",
    )
    parser.add_argument("--format", choices=("table", "json", "tsv"), default="table", help="output format")


def run_events(args: argparse.Namespace) -> int:
    """Print the events of the history that match, oldest first."""
    path = Path(args.db).expanduser() if args.db else default_path()
    try:
        since = None if args.since is None else parse_since(args.since)
    except ValueError as error:
        print(f"htsat-live events: {error}", file=sys.stderr)
        return 2
    if args.run_id is not None and args.run_id != "last" and not RUN_ID.fullmatch(args.run_id):
        print(
            f"htsat-live events: --run: expected a run id (16 hex digits, as in the run column) or last, "
            f"got {args.run_id!r}",
            file=sys.stderr,
        )
        return 2
    if not path.is_file():
        print(f"htsat-live events: no event history at {path} (detect writes one; --db names another)", file=sys.stderr)
        return 2
    try:
        # read-only: a query never creates, migrates or locks the file a detector is writing
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)) as connection:
            version = schema_version(connection)
            if version != SCHEMA_VERSION:
                print(f"htsat-live events: {path}: {_unreadable_version(connection, version)}", file=sys.stderr)
                return 2
            rows = query(connection, since, args.label, args.stream, args.run_id)
            if not rows and args.label is not None:
                labels = [row[0] for row in connection.execute("SELECT DISTINCT label FROM events")]
                close = near_misses(args.label, labels)
                if close:
                    print(
                        f"htsat-live events: no events of {args.label!r}; did you mean "
                        f"{' or '.join(repr(c) for c in close)}?",
                        file=sys.stderr,
                    )
    except sqlite3.Error as error:
        print(f"htsat-live events: cannot read {path}: {error}", file=sys.stderr)
        return 2
    print(format_rows(rows, args.format), end="")
    return 0


def _unreadable_version(connection: sqlite3.Connection, version: int) -> str:
    """Why `events` cannot read a file of another schema version, and what to do about it."""
    if version > SCHEMA_VERSION:
        return (
            f"schema version {version} is newer than this htsat-live's ({SCHEMA_VERSION}): "
            "read it with the htsat-live that wrote it, or a newer one"
        )
    if version == 0 and connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        return "not an htsat-live event history (it holds other tables); --db names another file"
    if version == 0:
        return "an empty database, no event history yet"
    older = f"schema version {version} is older than this htsat-live's ({SCHEMA_VERSION})"
    return older + ": run detect with it once to upgrade"


def format_rows(rows: list[dict], style: str) -> str:
    if style == "json":
        return json.dumps(rows, indent=1) + "\n"
    if style == "tsv":
        lines = ["\t".join(COLUMNS)] + [
            "\t".join("" if row[c] is None else str(row[c]) for c in COLUMNS) for row in rows
        ]
        return "\n".join(lines) + "\n"
    header = ("start (local time)", "run", "stream", "label", "onset s", "duration s", "peak", "mean", "clip")
    table = [header] + [
        (
            datetime.fromtimestamp(row["onset_wall"]).isoformat(sep=" ", timespec="seconds"),
            row["run"],
            row["stream"],
            row["label"],
            f"{row['onset']:.2f}",
            f"{row['offset'] - row['onset']:.2f}",
            f"{row['peak']:.2f}",
            f"{row['mean']:.2f}",
            row["clip"] or "-",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table)
    return text + f"\n{len(rows)} events\n"
