"""The browser view: a web page served by the detector with its live timeline, events, status, history and clips.

`WebView.from_config(config)` listens on `[web] bind` (HOST:PORT; loopback only unless `allow_remote`, which
also needs `token`) and serves, from its own thread running an asyncio loop with aiohttp:
- `/`: the page (stream/outputs/web_page/: plain HTML, CSS and JavaScript, no build step, nothing from a CDN);
- `/live`: the live messages as Server-Sent Events, one JSON object per message (`topic` names it): the
  scores of the top classes with each class's colour (stream.colours), the confirmed events as the console shows
  them (stream.events.ConfirmedView), each stream's `status` with the view's own counters under `web`. A
  browser that connects first gets the last `seconds` of the timeline, the recent events and the newest status;
- `/api/history`: the event history of `[store] path` (stream.outputs.event_store.query) filtered by label,
  stream, run and age, newest first; `/api/history/options`: the labels, streams and runs it holds;
- `/clips/NAME`: a clip of `[sinks] clips_dir`, only a file the clip sink names (htsat-*.wav) that lies in that
  folder once resolved. Clips are written through the privacy filter (stream.outputs.privacy), so what is dropped
  was never written and what is muted is served muted. With `[sinks] privacy = "drop"` the view also holds back
  every clip whose audio (with its pre- and post-roll) overlaps a stored event of a privacy target of its run and
  stream, such as a clip written before the filter was turned on: it is neither listed nor served.

As an output of the pipeline (stream.output) `handle(message)` only hands the message to the server's loop
(`call_soon_threadsafe`), so the detector never waits on a browser: each browser has a queue of at most
CLIENT_QUEUE messages, and what does not fit is dropped for that browser alone and counted (`dropped`);
messages the loop has not taken yet are capped at PENDING_LIMIT (beyond it: `backlog_dropped`). Counters
(`status` under `web`): `clients`, `sent`, `dropped`, `backlog_dropped`, `refused` (requests without the right
token), `skipped` (received messages unlike docs/schema.md).

With a token, every request needs it: `?token=` on any URL (the page's answer then sets an HttpOnly cookie the
browser sends with the rest), the cookie, or `Authorization: Bearer TOKEN`; none is refused with 401, a
wrong one with 403.
"""

import asyncio
import hmac
import ipaddress
import json
import math
import os
import re
import sqlite3
import threading
from collections import deque
from contextlib import closing
from dataclasses import fields
from pathlib import Path

from aiohttp import web

from htsat_live.stream.colours import class_colour_hex
from htsat_live.stream.config import Config, WebConfig
from htsat_live.stream.events import ConfirmedView, Event
from htsat_live.stream.messages import EventMessage, Message
from htsat_live.stream.output import Output
from htsat_live.stream.outputs.event_store import BUSY_TIMEOUT, COLUMNS, RUN_ID, parse_since, query, resolve_path

PAGE = Path(__file__).resolve().parent / "web_page"  # index.html, web.css, web.js
CLIENT_QUEUE = 256  # messages queued per browser (about 50 s of one stream's scores, status and events)
PENDING_LIMIT = 2000  # messages handed to the loop and not taken yet
RECENT_EVENTS = 100  # event reports per stream a new browser is shown
HISTORY_ROWS = 500  # newest rows of one history answer
KEEPALIVE_S = 15.0  # a comment line to an idle browser, so that proxies and the browser keep the link
RECONNECT_MS = 1000  # the browser's wait before it connects again (the SSE `retry` field)
TOKEN_COOKIE = "htsat_live_token"
CLIP_NAME = re.compile(r"htsat-[A-Za-z0-9._-]+\.wav")  # stream.outputs.sinks.ClipSink's names
EVENT_FIELDS = tuple(item.name for item in fields(Event))


def listen_address(bind: str, allow_remote: bool, token: str) -> tuple[str, int]:
    """ "127.0.0.1:8080" or "[::1]:8080" -> (host, port); ValueError naming the setting for a bad address, a
    non-loopback one without web.allow_remote, or one without web.token."""
    host, sep, port = bind.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"web.bind: expected HOST:PORT, got {bind!r}")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name or an interface: not known to be loopback
        loopback = False
    if not loopback and not allow_remote:
        raise ValueError(
            f"web.bind: refusing to listen on {bind}: not a loopback address "
            "(set web.allow_remote = true and a web.token to serve other machines)"
        )
    if not loopback and not token:
        raise ValueError(f"web.token: listening on {bind}, a non-loopback address, needs an access token")
    return host, int(port)


def event_from_body(body: dict) -> Event:
    """The report of an `event` message as received (envelope and all) from a publisher."""
    values = {name: body[name] for name in EVENT_FIELDS}
    return Event(**{**values, "classes": tuple(values["classes"])})


class _Client:
    """One connected browser: its queue of encoded messages (None: the end)."""

    def __init__(self):
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_QUEUE)


class _StreamMemory:
    """What a browser that connects now is shown first of one stream: its recent scores, events and status."""

    def __init__(self):
        self.scores: deque[tuple[int, bytes]] = deque()  # (grid_end, encoded message), oldest first
        self.events: deque[bytes] = deque(maxlen=RECENT_EVENTS)
        self.status: bytes | None = None

    def keep_scores(self, grid_start: int, grid_end: int, frames: int, encoded: bytes) -> None:
        """Keep a scores message; forget those older than `frames` grid frames, or all after a restart."""
        if self.scores and grid_start < self.scores[-1][0] - frames:  # the stream started again
            self.scores.clear()
        self.scores.append((grid_end, encoded))
        while self.scores and self.scores[0][0] < grid_end - frames:
            self.scores.popleft()

    def replay(self) -> list[bytes]:
        return [encoded for _, encoded in self.scores] + list(self.events) + ([self.status] if self.status else [])


def _sse(payload: dict) -> bytes:
    """One Server-Sent Event holding `payload` as JSON; NaN and inf become null (JSON has neither)."""
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(payload), separators=(",", ":"))
    return b"data: " + text.encode() + b"\n\n"


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class WebView(Output):
    """The page's server and its thread (see the module docstring)."""

    name = "web"
    topics = ("scores", "status", "event")

    def __init__(
        self,
        host: str,
        port: int,
        token: str = "",
        history: Path | None = None,
        clips_dir: Path | None = None,
        seconds: float = 30.0,
        privacy_targets: tuple[str, ...] = (),
        rolls: tuple[float, float] = (1.0, 1.0),
    ):
        self.token = token
        self.history = history
        self.clips_dir = None if clips_dir is None else Path(clips_dir).resolve()
        self.seconds = seconds
        self.privacy_targets = tuple(privacy_targets)  # clips overlapping their events are held back; () = none
        self.rolls = rolls  # (pre_roll, post_roll) of the clips, seconds
        self.sent = self.dropped = self.backlog_dropped = self.refused = self.skipped = 0
        self._clients: set[_Client] = set()
        self._memory: dict[str, _StreamMemory] = {}
        self._confirmed = ConfirmedView()
        self._pending = 0  # handed to the loop and not taken yet; written under _pending_lock
        self._pending_lock = threading.Lock()
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="web view", daemon=True)
        self._thread.start()
        try:
            self.port = asyncio.run_coroutine_threadsafe(self._start(host, port), self._loop).result(timeout=30)
        except OSError as error:
            self._stop_loop()
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise ValueError(f"web.bind: cannot listen on {host}:{port}: {reason}") from None
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/"

    @classmethod
    def from_config(cls, config: Config) -> "WebView | None":
        """The view `[web]` asks for, with the history of `[store]` and the clips of `[sinks]`; None when its
        bind is empty."""
        web_config: WebConfig = config.web
        if not web_config.bind:
            return None
        host, port = listen_address(web_config.bind, web_config.allow_remote, web_config.token)
        sinks = config.sinks
        clips = Path(sinks.clips_dir).expanduser() if sinks.clips_dir else None
        return cls(
            host,
            port,
            web_config.token,
            resolve_path(config.store.path),
            clips,
            web_config.seconds,
            sinks.privacy_targets if sinks.privacy == "drop" else (),
            (sinks.pre_roll, sinks.post_roll),
        )

    # --- the pipeline's side ----------------------------------------------------------------------

    def handle(self, message: Message | EventMessage) -> None:
        if message.topic == "mel":
            return  # the page draws no spectrogram
        if message.topic == "event":
            try:
                event = message.event if isinstance(message, EventMessage) else event_from_body(message.body)
            except (KeyError, TypeError):  # a received event unlike docs/schema.md (from another publisher)
                self.skipped += 1
                return
            for shown in self._confirmed.take(message.stream, event):
                self._hand_over(message.topic, message.stream, shown)
            return
        self._hand_over(message.topic, message.stream, message.body)

    @property
    def server_thread_id(self) -> int:
        """The native id of the server's thread (the benchmark reads its CPU time)."""
        return self._thread.native_id

    def link(self, text: str, healthy: bool) -> None:
        """How the link to a detector is doing (`htsat-live web --connect`); every browser is told."""
        self._hand_over("link", "", {"text": text, "healthy": healthy})

    def counters(self) -> dict[str, int]:
        return {
            "clients": len(self._clients),
            "sent": self.sent,
            "dropped": self.dropped,
            "backlog_dropped": self.backlog_dropped,
            "refused": self.refused,
            "skipped": self.skipped,
        }

    def close(self) -> None:
        """Tell every browser the stream ended, stop serving and join the server's thread."""
        if self._loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        finally:
            self._stop_loop()

    def _hand_over(self, topic: str, stream: str, item) -> None:
        with self._pending_lock:
            if self._pending >= PENDING_LIMIT:
                self.backlog_dropped += 1
                return
            self._pending += 1
        try:
            self._loop.call_soon_threadsafe(self._take, topic, stream, item)
        except RuntimeError:  # the loop is closed: the view was closed
            with self._pending_lock:
                self._pending -= 1

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # --- the loop's side --------------------------------------------------------------------------

    def _take(self, topic: str, stream: str, item) -> None:
        """Encode one message, remember what a new browser needs of it, and queue it for every browser."""
        with self._pending_lock:
            self._pending -= 1
        try:
            self._encode(topic, stream, item)
        except (AttributeError, KeyError, TypeError, ValueError):  # unlike docs/schema.md (from another publisher)
            self.skipped += 1

    def _encode(self, topic: str, stream: str, item) -> None:
        memory = self._memory.setdefault(stream, _StreamMemory()) if stream else None
        if topic == "scores":
            encoded = _sse(self._scores_payload(stream, item))
            frames = math.ceil(self.seconds / item["frame_seconds"])
            memory.keep_scores(item["grid_start"], item["grid_end"], frames, encoded)
        elif topic == "event":
            encoded = _sse(self._event_payload(stream, item))
            memory.events.append(encoded)
        elif topic == "status":
            encoded = _sse({**item, "topic": "status", "stream": stream, "web": self.counters()})
            memory.status = encoded
        else:
            encoded = _sse({**item, "topic": topic, "stream": stream})
        for client in self._clients:
            self._offer(client, encoded)

    def _offer(self, client: _Client, encoded: bytes | None) -> None:
        try:
            client.queue.put_nowait(encoded)
        except asyncio.QueueFull:
            self.dropped += 1

    def _scores_payload(self, stream: str, body: dict) -> dict:
        return {
            "topic": "scores",
            "stream": stream,
            "seconds": self.seconds,
            "grid_start": body["grid_start"],
            "grid_end": body["grid_end"],
            "frame_seconds": body["frame_seconds"],
            "hop": body["hop"],
            "classes": body["classes"],
            "labels": body["labels"],
            "colours": [class_colour_hex((index,)) for index in body["classes"]],
            "frames": body["frames"],
        }

    @staticmethod
    def _event_payload(stream: str, event: Event) -> dict:
        return {**event.to_dict(), "topic": "event", "stream": stream, "colour": class_colour_hex(event.classes)}

    async def _start(self, host: str, port: int) -> int:
        app = web.Application(middlewares=[self._check_token])
        app.router.add_get("/", self._page)
        app.router.add_static("/static/", PAGE)
        app.router.add_get("/live", self._live)
        app.router.add_get("/api/history", self._history)
        app.router.add_get("/api/history/options", self._history_options)
        app.router.add_get("/clips/{name}", self._clip)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        return self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        self._closing = True
        for client in list(self._clients):
            if client.queue.full():
                client.queue.get_nowait()  # room for the end: what it replaces would not be read anyway
            client.queue.put_nowait(None)
        await self._runner.cleanup()

    @web.middleware
    async def _check_token(self, request: web.Request, handler):
        if not self.token:
            return await handler(request)
        given = request.query.get("token") or request.cookies.get(TOKEN_COOKIE)
        bearer = request.headers.get("Authorization", "")
        if not given and bearer.startswith("Bearer "):
            given = bearer.removeprefix("Bearer ")
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            self.refused += 1
            if not given:
                raise web.HTTPUnauthorized(text="this view needs its access token: open it as /?token=TOKEN\n")
            raise web.HTTPForbidden(text="wrong access token\n")
        response = await handler(request)
        if request.query.get("token") and isinstance(response, web.Response | web.FileResponse):
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(PAGE / "index.html", headers={"Cache-Control": "no-cache"})

    async def _live(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        if self._closing:
            return response
        client = _Client()
        self._clients.add(client)  # from now on it is queued what comes; the replay is what came before
        replay = [encoded for memory in self._memory.values() for encoded in memory.replay()]
        try:
            await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
            for encoded in replay:
                await response.write(encoded)
            while True:
                try:
                    encoded = await asyncio.wait_for(client.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    encoded = b": keep-alive\n\n"
                if encoded is None:
                    break
                await response.write(encoded)
                self.sent += 1
        except (ConnectionError, RuntimeError):  # the browser went away (RuntimeError: writing to a closed transport)
            pass
        finally:
            self._clients.discard(client)
        return response

    async def _history(self, request: web.Request) -> web.Response:
        if self.history is None:
            return web.json_response({"rows": [], "store": False})
        params = request.query
        try:
            since = parse_since(params["since"]) if params.get("since") else None
        except ValueError as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None
        run = params.get("run") or None
        if run is not None and run != "last" and not RUN_ID.fullmatch(run):
            raise web.HTTPBadRequest(text="run: expected a run id (16 hex digits) or last\n")
        filters = (since, params.get("label") or None, params.get("stream") or None, run)
        rows = await asyncio.get_running_loop().run_in_executor(None, self._read_history, filters)
        newest = rows[::-1][:HISTORY_ROWS]
        for row in newest:
            row["clip_url"] = self._clip_url(row.pop("clip"))
            row.setdefault("clip_held", False)
        return web.json_response({"rows": newest, "total": len(rows), "store": True})

    async def _history_options(self, request: web.Request) -> web.Response:
        if self.history is None:
            return web.json_response({"labels": [], "streams": [], "runs": []})
        options = await asyncio.get_running_loop().run_in_executor(None, self._read_options)
        return web.json_response(options)

    def _connect_history(self) -> sqlite3.Connection | None:
        if not self.history.is_file():
            return None  # nothing stored yet
        # read-only: the page never creates, migrates or locks the file the detector writes
        return sqlite3.connect(f"file:{self.history}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)

    def _read_history(self, filters: tuple) -> list[dict]:
        connection = self._connect_history()
        if connection is None:
            return []
        try:
            with closing(connection):
                rows = query(connection, *filters)
                if self.privacy_targets:
                    spans = self._privacy_spans(connection)
                    for row in rows:
                        if row["clip"] is not None and self._held_back(row, spans):
                            row["clip"], row["clip_held"] = None, True
                return rows
        except sqlite3.Error as error:
            raise web.HTTPServiceUnavailable(text=f"cannot read the event history {self.history}: {error}\n") from None

    def _read_options(self) -> dict:
        connection = self._connect_history()
        if connection is None:
            return {"labels": [], "streams": [], "runs": []}
        try:
            with closing(connection):
                column = lambda sql: [row[0] for row in connection.execute(sql)]  # noqa: E731
                return {
                    "labels": column("SELECT DISTINCT label FROM events ORDER BY label COLLATE NOCASE"),
                    "streams": column("SELECT DISTINCT stream FROM events ORDER BY stream"),
                    "runs": column("SELECT run FROM events GROUP BY run ORDER BY min(onset_wall) DESC"),
                }
        except sqlite3.Error as error:
            raise web.HTTPServiceUnavailable(text=f"cannot read the event history {self.history}: {error}\n") from None

    def _privacy_spans(self, connection: sqlite3.Connection) -> dict[tuple[str, str], list[tuple[float, float]]]:
        """(run, stream) -> the (onset, offset) of each stored event of a privacy target, stream seconds."""
        marks = ", ".join("?" * len(self.privacy_targets))
        sql = f"SELECT run, stream, onset, offset FROM events WHERE label IN ({marks})"
        spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for run, stream, onset, offset in connection.execute(sql, self.privacy_targets):
            spans.setdefault((run, stream), []).append((onset, offset))
        return spans

    def _held_back(self, row: dict, spans: dict) -> bool:
        """Whether the clip of a stored event (a row of `query`) overlaps an event of a privacy target."""
        start, stop = row["onset"] - self.rolls[0], row["offset"] + self.rolls[1]
        return any(first < stop and start < last for first, last in spans.get((row["run"], row["stream"]), ()))

    def _clip_is_held(self, name: str) -> bool:
        """Whether the clip file `name` belongs to a stored event whose clip is held back."""
        connection = self._connect_history()
        if connection is None:
            return False
        try:
            with closing(connection):
                sql = f"SELECT {', '.join(COLUMNS)} FROM events WHERE clip LIKE ?"
                rows = [dict(zip(COLUMNS, values)) for values in connection.execute(sql, (f"%{name}",))]
                rows = [row for row in rows if Path(row["clip"]).name == name]
                spans = self._privacy_spans(connection) if rows else {}
                return any(self._held_back(row, spans) for row in rows)
        except sqlite3.Error as error:
            raise web.HTTPServiceUnavailable(text=f"cannot read the event history {self.history}: {error}\n") from None

    def _clip_url(self, clip: str | None) -> str | None:
        """The URL of a stored clip path when it is a clip of the clips folder, else None."""
        if clip is None or self.clips_dir is None:
            return None
        path = Path(clip)
        if not CLIP_NAME.fullmatch(path.name) or path.resolve().parent != self.clips_dir:
            return None
        return f"/clips/{path.name}"

    async def _clip(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if self.clips_dir is None:
            raise web.HTTPNotFound(text="no clips folder (sinks.clips_dir)\n")
        if not CLIP_NAME.fullmatch(name):
            raise web.HTTPForbidden(text="not a clip name\n")
        path = (self.clips_dir / name).resolve()
        if path.parent != self.clips_dir:  # a link that leads out of the folder
            raise web.HTTPForbidden(text="not in the clips folder\n")
        if not path.is_file():
            raise web.HTTPNotFound(text="no such clip (deleted by the disk cap, or never written)\n")
        if self.privacy_targets and self.history is not None:
            if await asyncio.get_running_loop().run_in_executor(None, self._clip_is_held, name):
                raise web.HTTPForbidden(text="held back by the privacy filter (sinks.privacy = drop)\n")
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})
