"""The browser view: `detect --web` on the demo in headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium), the history and its clips from a real SQLite history, `web --connect` on a real ZeroMQ publisher, and its
refusals over real HTTP."""

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile

from htsat_live.model import DEMO_RECORDING, SAMPLE_RATE
from htsat_live.stream.colours import class_colour_hex
from htsat_live.stream.events import Event
from htsat_live.stream.messages import Message
from htsat_live.stream.outputs.event_store import EventStore
from htsat_live.stream.outputs.publish import Publisher
from htsat_live.stream.outputs.web import CLIENT_QUEUE, WebView

pytest.importorskip("selenium", reason="the browser tests need the [test] extra (selenium)")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DESKTOP = (1200, 900)
PHONE = (360, 740)

# The pixels of the first stream's canvas in a colour (#RRGGBB, within a small distance): the events lane draws
# each event in its class colour.
PIXELS_OF_COLOUR = """
const canvas = document.querySelector('section.stream canvas');
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
const [r, g, b] = [1, 3, 5].map((i) => parseInt(arguments[0].slice(i, i + 2), 16));
let count = 0;
for (let i = 0; i < data.length; i += 4) {
  if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 12) count++;
}
return count;
"""


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, one for the module (it takes seconds to start); each test opens its own page."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail("headless Chromium is missing: scripts/setup.sh installs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers
        "--disable-gpu",
        "--autoplay-policy=no-user-gesture-required",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def page_state(browser) -> dict:
    return browser.execute_script(
        "return {link: document.getElementById('link').textContent,"
        " events: [...document.querySelectorAll('#events li')].map((li) => [li.dataset.label, li.dataset.colour,"
        "  li.className]),"
        " status: [...document.querySelectorAll('.status')].map((p) => p.textContent),"
        " streams: [...document.querySelectorAll('section.stream')].map((s) => s.dataset.stream)}"
    )


class Detector:
    """`htsat-live detect --web` on the demo recording, in real time, with its history and clips in `folder`."""

    def __init__(self, folder: Path, port: int, read_lines, name: str = ""):
        command = [
            sys.executable,
            "-m",
            "htsat_live.cli",
            "detect",
            str(DEMO_RECORDING),
            "--web",
            f"127.0.0.1:{port}",
            "--set",
            "publish.enabled=false",
            "--set",
            f'store.path="{folder / "events.db"}"',
            "--set",
            f'sinks.clips_dir="{folder / "clips"}"',
            "--set",
            "sinks.post_roll=0.2",
        ]
        if name:
            command += ["--set", f'source.name="{name}"']
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines = read_lines(self.process.stderr)
        line = ""
        while "browser view at" not in line:
            line = lines.next_line(60, "detect's line with the browser view's address")
        self.url = line.split("browser view at ", 1)[1].strip()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0


def test_detect_web_shows_the_demo_live_plays_a_clip_fits_a_phone_and_reconnects_after_a_restart(
    tmp_path, browser, read_lines, wait_until
):
    port = free_port()
    detector = Detector(tmp_path, port, read_lines)
    try:
        browser.set_window_size(*DESKTOP)
        browser.get(detector.url)
        wait_until(lambda: page_state(browser)["events"], 40, "the first confirmed event of the demo on the page")
        state = page_state(browser)
        assert state["link"] == "live" and state["streams"] == ["demo.wav"]
        assert "hop 1.25 s" in state["status"][0] and "level -" in state["status"][0]
        label, colour, _ = state["events"][0]
        assert label in ("Water", "Bird", "Animal", "Alarm", "Speech", "Music")  # the embedded model's classes
        wait_until(
            lambda: browser.execute_script(PIXELS_OF_COLOUR, colour) > 200,
            10,
            f"the event {label} drawn in its colour {colour} on the timeline",
        )

        # a clip: the history lists the ended event with its clip, which plays in the page
        wait_until(
            lambda: browser.execute_script("return document.querySelectorAll('#history button[data-clip]').length"),
            40,
            "a clip in the history",
        )
        browser.execute_script("document.querySelector('#history button[data-clip]').click()")
        wait_until(
            lambda: browser.execute_script(
                "const a = document.querySelector('#history audio');"
                "return a && a.error === null && a.readyState >= 2 && a.duration > 0.5"
            ),
            15,
            "the clip loaded in an audio element, without error",
        )
        clip = browser.execute_script("return document.querySelector('#history audio').src")
        assert clip.startswith(f"{detector.url}clips/htsat-") and clip.endswith(".wav")

        # a phone: nothing wider than the screen, the timeline as wide as it can be
        browser.set_window_size(*PHONE)
        width = browser.execute_script("return window.innerWidth")
        wait_until(
            lambda: browser.execute_script("return document.documentElement.scrollWidth") <= width,
            5,
            f"the page fitting {width} px",
        )
        canvas = browser.execute_script("return document.querySelector('section.stream canvas').clientWidth")
        assert width - 60 <= canvas <= width
        assert browser.execute_script("return document.querySelector('#history').scrollWidth") <= width

        # the detector stops: the page says the link is lost; it starts again: the page reconnects by itself
        detector.stop()
        wait_until(lambda: "reconnecting" in page_state(browser)["link"], 10, "the page saying it reconnects")
        detector = Detector(tmp_path, port, read_lines, name="porch")
        wait_until(lambda: "porch" in page_state(browser)["streams"], 30, "the restarted detector's stream")
        assert page_state(browser)["link"].startswith("live (reconnected")
        porch = page_state(browser)["streams"].index("porch")
        wait_until(lambda: "running" in page_state(browser)["status"][porch], 10, "the new run's status")
    finally:
        browser.set_window_size(*DESKTOP)
        if detector.process.poll() is None:
            detector.stop()


def event(event_id: int, label: str, classes: tuple[int, ...], onset_wall: float) -> Event:
    """A finished, confirmed event as the detector reports it."""
    return Event(
        id=event_id,
        state="end",
        label=label,
        classes=classes,
        onset_frame=100 * event_id,
        offset_frame=100 * event_id + 200,
        onset=event_id * 0.9765625,
        offset=event_id * 0.9765625 + 1.953125,
        onset_wall=onset_wall,
        offset_wall=onset_wall + 1.953125,
        peak=0.8,
        mean=0.6,
        threshold=0.5,
        final=True,
        cancelled=False,
        latency=1.0,
        confirmed=True,
        confirm_latency=2.0,
    )


@pytest.fixture
def history(tmp_path):
    """A history of two runs: run 1 with Dog and Bird on stream `yard`, run 2 with Dog on `porch`; each Dog has a
    clip of 1 s of noise in clips/, and a file outside clips/ sits beside it."""
    clips = tmp_path / "clips"
    clips.mkdir()
    now = time.time()
    noise = (0.1 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
    for run, (stream, labels) in enumerate((("yard", ["Dog", "Bird", "Dog"]), ("porch", ["Dog"]))):
        store = EventStore(tmp_path / "events.db")
        for number, label in enumerate(labels):
            store.write(stream, event(number, label, (74,) if label == "Dog" else (111,), now - 600 + 60 * run))
            if label == "Dog":
                clip = clips / f"htsat-{stream}-{number}-{label}.wav"
                soundfile.write(clip, noise, SAMPLE_RATE)
                store.clip_saved(stream, number, clip)
        store.close()
    (tmp_path / "secret.wav").write_bytes((clips / "htsat-yard-0-Dog.wav").read_bytes())
    return tmp_path


def history_rows(browser) -> list[tuple[str, str, str]]:
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#history tbody tr')].map((tr) =>"
        " [tr.dataset.label, tr.dataset.stream, tr.querySelector('button[data-clip]') ? 'clip' : '-'])"
    )
    return [tuple(row) for row in rows]


def choose(browser, name: str, value: str) -> None:
    browser.execute_script(
        "const select = document.querySelector(`#filters select[name=${arguments[0]}]`);"
        "select.value = arguments[1]; select.dispatchEvent(new Event('change', { bubbles: true }));",
        name,
        value,
    )


def test_history_filters_by_label_stream_run_and_time(history, browser, wait_until):
    view = WebView("127.0.0.1", 0, history=history / "events.db", clips_dir=history / "clips")
    try:
        browser.get(view.url)
        wait_until(lambda: len(history_rows(browser)) == 4, 10, "the 4 events of the last 24 hours")
        assert sorted(history_rows(browser)) == sorted(
            [("Dog", "yard", "clip"), ("Bird", "yard", "-"), ("Dog", "yard", "clip"), ("Dog", "porch", "clip")]
        )
        options = browser.execute_script(
            "return [...document.querySelectorAll('#filters select[name=label] option')].map((o) => o.value)"
        )
        assert options == ["", "Bird", "Dog"]
        choose(browser, "label", "Bird")
        wait_until(lambda: history_rows(browser) == [("Bird", "yard", "-")], 10, "the Bird event alone")
        choose(browser, "label", "")
        choose(browser, "stream", "porch")
        wait_until(lambda: history_rows(browser) == [("Dog", "porch", "clip")], 10, "the porch stream alone")
        choose(browser, "stream", "")
        choose(browser, "run", "last")
        wait_until(lambda: history_rows(browser) == [("Dog", "porch", "clip")], 10, "the newest run alone")
        choose(browser, "run", "")
        choose(browser, "since", "1h")
        wait_until(lambda: len(history_rows(browser)) == 4, 10, "the events of the last hour")
        assert browser.execute_script("return document.getElementById('history-count').textContent") == "4 events"
    finally:
        view.close()


def status(url: str, headers: dict | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_clip_url_serves_only_clips_of_the_clips_folder(history):
    (history / "clips" / "htsat-link.wav").symlink_to(history / "secret.wav")
    view = WebView("127.0.0.1", 0, history=history / "events.db", clips_dir=history / "clips")
    try:
        base = view.url.rstrip("/")
        assert status(f"{base}/clips/htsat-yard-0-Dog.wav") == 200
        assert status(f"{base}/clips/htsat-link.wav") == 403  # a link out of the folder
        assert status(f"{base}/clips/htsat-none.wav") == 404
        for outside in ("..%2Fsecret.wav", "%2E%2E%2Fsecret.wav", "..%2F..%2Fetc%2Fpasswd", "secret.wav"):
            assert status(f"{base}/clips/{outside}") in (403, 404), outside
        connection = http.client.HTTPConnection("127.0.0.1", view.port, timeout=10)  # a path urllib would not send
        connection.request("GET", "/clips/../secret.wav")
        assert connection.getresponse().status in (403, 404)
        connection.close()
        rows = json.load(urllib.request.urlopen(f"{base}/api/history?since=", timeout=10))["rows"]
        assert sorted(row["clip_url"] or "-" for row in rows) == [
            "-",
            "/clips/htsat-porch-0-Dog.wav",
            "/clips/htsat-yard-0-Dog.wav",
            "/clips/htsat-yard-2-Dog.wav",
        ]
    finally:
        view.close()


def test_a_missing_or_wrong_token_is_refused_and_the_right_one_opens_every_url(history):
    view = WebView("127.0.0.1", 0, token="s3cret-token", history=history / "events.db", clips_dir=history / "clips")
    try:
        base = view.url.rstrip("/")
        assert status(f"{base}/") == 401
        assert status(f"{base}/live") == 401
        assert status(f"{base}/?token=wrong") == 403
        assert status(f"{base}/clips/htsat-yard-0-Dog.wav", {"Authorization": "Bearer wrong"}) == 403
        assert status(f"{base}/api/history", {"Cookie": "htsat_live_token=wrong"}) == 403
        with urllib.request.urlopen(f"{base}/?token=s3cret-token", timeout=10) as response:
            cookie = response.headers["Set-Cookie"]
        assert "htsat_live_token=s3cret-token" in cookie and "HttpOnly" in cookie
        assert status(f"{base}/clips/htsat-yard-0-Dog.wav", {"Cookie": "htsat_live_token=s3cret-token"}) == 200
        assert status(f"{base}/api/history", {"Authorization": "Bearer s3cret-token"}) == 200
        assert view.counters()["refused"] == 5
    finally:
        view.close()


@pytest.mark.parametrize(
    "settings, line",
    [
        (["--web", "0.0.0.0:8080"], "web.bind: refusing to listen on 0.0.0.0:8080: not a loopback address"),
        (
            ["--web", "0.0.0.0:8080", "--set", "web.allow_remote=true"],
            "web.token: listening on 0.0.0.0:8080, a non-loopback address, needs an access token",
        ),
        (["--web", "8080"], "web.bind: expected HOST:PORT, got '8080'"),
    ],
)
def test_detect_refuses_an_unsafe_or_bad_web_bind_in_one_line(settings, line):
    done = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "detect", str(DEMO_RECORDING), *settings],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"htsat-live detect: {line}"), done.stderr


def read_sse(response, wanted, timeout: float) -> dict:
    """The next message of an SSE answer that `wanted(message)` accepts; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = response.readline()
        if line.startswith(b"data: "):
            message = json.loads(line[6:])
            if wanted(message):
                return message
    raise AssertionError(f"no wanted message within {timeout:g} s")


def status_body(stream: str, seconds: float) -> dict:
    counters = dict.fromkeys(("confirmed_events", "skipped_windows", "failed_windows", "overruns"), 0)
    return {
        "source_state": "running",
        "stream_seconds": seconds,
        "level_dbfs": -30.0,
        "backend": "torch",
        "device": "cpu",
        "hop": 1.25,
        "latency": {"hop_p95": 0.1},
        "counters": counters,
        "dropped": {},
        "error": None,
    }


def test_web_connect_relays_a_detector_and_picks_it_up_again_after_a_restart(tmp_path, read_lines):
    publish_port, web_port = free_port(), free_port()
    address = f"tcp://127.0.0.1:{publish_port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "htsat_live.cli",
            "web",
            "--connect",
            address,
            "--bind",
            f"127.0.0.1:{web_port}",
            "--set",
            f'store.path="{tmp_path / "events.db"}"',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "browser view at" in read_lines(process.stderr).next_line(60, "web's address line")
        live = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/live", timeout=30)
        for run in (1, 2):  # the detector's publisher, then the same address again after a restart
            with Publisher(address) as publisher:
                relayed, deadline = None, time.monotonic() + 20
                while relayed is None:  # a subscriber hears only what is sent after it joined: send until heard
                    assert time.monotonic() < deadline, f"run {run}'s status relayed to the page"
                    publisher.send("status", "mic", status_body("mic", float(run)))
                    try:
                        relayed = read_sse(
                            live, lambda m, run=run: m["topic"] == "status" and m["stream_seconds"] == run, 1
                        )
                    except AssertionError:
                        pass
                assert relayed["stream"] == "mic" and relayed["web"]["clients"] == 1
                assert read_sse(live, lambda m: m["topic"] == "link", 5)["healthy"]
            if run == 1:  # the publisher is gone: the page is told the detector went silent
                link = read_sse(live, lambda m: m["topic"] == "link" and not m["healthy"], 10)
                assert "no data from the detector" in link["text"]
        live.close()
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out.startswith("web: sent=") and "dropped=0" in out


def test_a_browser_that_stops_reading_loses_messages_counted_and_never_holds_up_the_detector():
    view = WebView("127.0.0.1", 0)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    stalled.connect(("127.0.0.1", view.port))
    stalled.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads again
    try:
        deadline = time.monotonic() + 10
        while view.counters()["clients"] < 1:
            assert time.monotonic() < deadline, "the stalled browser connected"
            time.sleep(0.01)
        frames = [[0.5] * 10 for _ in range(128)]  # one hop's scores of 10 classes: about 7 kB
        body = {"grid_start": 0, "grid_end": 128, "frame_seconds": 10 / 1024, "hop": 1.25}
        body |= {"classes": list(range(10)), "labels": [f"c{i}" for i in range(10)], "frames": frames}
        sent = 0
        deadline = time.monotonic() + 30
        while view.counters()["dropped"] == 0:
            assert time.monotonic() < deadline, "drops counted for the stalled browser"
            for _ in range(100):
                view.handle(Message("scores", "mic", {**body, "grid_start": 128 * sent, "grid_end": 128 * sent + 128}))
                sent += 1
            time.sleep(0.05)
        counters = view.counters()
        assert counters["dropped"] >= 1 and counters["backlog_dropped"] == 0
        assert sent > CLIENT_QUEUE
        with urllib.request.urlopen(view.url + "live", timeout=10) as fresh:  # another browser is served at once
            view.handle(Message("status", "mic", status_body("mic", 5.0)))
            message = read_sse(fresh, lambda m: m["topic"] == "status", 10)
        assert message["web"]["dropped"] >= 1
    finally:
        stalled.close()
        view.close()


def test_every_event_is_drawn_in_the_qt_views_colour():
    view = WebView("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(view.url + "live", timeout=10) as live:
            view.handle(Message("event", "mic", {**event(3, "Dog", (74,), time.time()).to_dict(), "schema": 1}))
            shown = read_sse(live, lambda m: m["topic"] == "event", 10)
        assert shown["colour"] == class_colour_hex((74,)) and shown["state"] == "start" and shown["id"] == 3
    finally:
        view.close()


def test_bench_measures_the_cost_of_connected_browsers():
    done = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "bench", "--stream", "--web-clients", "2", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == [
        "no view",
        "view, no browser",
        "view, 2 browsers",
        "per browser",
    ]
    browsers = lines[3]
    assert int(browsers.split("sent ")[1].split(",")[0]) > 0  # the two readers got the live stream
    assert "ms per minute of audio" in lines[4] and "of one core at real time" in lines[4]


def test_detect_says_in_one_line_when_the_web_port_is_taken():
    taken = WebView("127.0.0.1", 0)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "htsat_live.cli",
                "detect",
                str(DEMO_RECORDING),
                "--web",
                f"127.0.0.1:{taken.port}",
                "--set",
                "publish.enabled=false",
                "--set",
                'store.path=""',
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        taken.close()
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"htsat-live detect: web.bind: cannot listen on 127.0.0.1:{taken.port}"
    )


def test_with_privacy_drop_a_clip_overlapping_speech_is_neither_listed_nor_served(tmp_path):
    """A clip written before the privacy filter was on: its audio overlaps a stored Speech event."""
    clips = tmp_path / "clips"
    clips.mkdir()
    noise = (0.1 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
    store = EventStore(tmp_path / "events.db")
    now = time.time()
    # event(i, ...) lies at stream seconds i * 0.977 to i * 0.977 + 1.95: Dog 0 at 0-1.95 s, Speech 10 at 9.77-11.72 s,
    # Dog 13 at 12.70-14.65 s: its clip, with 1 s of post-roll before and after, starts at 11.70 s, in the speech
    for number, label in ((0, "Dog"), (10, "Speech"), (13, "Dog")):
        store.write("yard", event(number, label, (74,) if label == "Dog" else (0,), now - 60 + number))
        if label == "Dog":
            clip = clips / f"htsat-yard-{number}-Dog.wav"
            soundfile.write(clip, noise, SAMPLE_RATE)
            store.clip_saved("yard", number, clip)
    store.close()
    settings = {"history": tmp_path / "events.db", "clips_dir": clips}
    guarded = WebView("127.0.0.1", 0, privacy_targets=("Speech",), rolls=(1.0, 1.0), **settings)
    open_view = WebView("127.0.0.1", 0, **settings)
    try:
        rows = json.load(urllib.request.urlopen(f"{guarded.url}api/history", timeout=10))["rows"]
        clips_listed = {row["onset"]: (row["clip_url"], row["clip_held"]) for row in rows if row["label"] == "Dog"}
        assert clips_listed == {0.0: ("/clips/htsat-yard-0-Dog.wav", False), 13 * 0.9765625: (None, True)}
        assert status(f"{guarded.url}clips/htsat-yard-0-Dog.wav") == 200
        assert status(f"{guarded.url}clips/htsat-yard-13-Dog.wav") == 403
        assert status(f"{open_view.url}clips/htsat-yard-13-Dog.wav") == 200  # privacy off: every clip plays
    finally:
        guarded.close()
        open_view.close()


def test_messages_unlike_the_schema_are_skipped_and_counted_and_the_next_ones_still_flow():
    view = WebView("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(view.url + "live", timeout=10) as live:
            view.handle(Message("event", "mic", {"schema": 1, "id": 1}))  # no state, label, ...
            view.handle(Message("scores", "mic", {"grid_start": 0}))
            view.handle(Message("status", "mic", status_body("mic", 3.0)))
            relayed = read_sse(live, lambda m: m["topic"] == "status", 10)
        assert relayed["stream_seconds"] == 3.0 and relayed["web"]["skipped"] == 2
    finally:
        view.close()


def test_detect_web_without_the_web_extra_names_it_before_the_model_loads(tmp_path):
    # a None entry in sys.modules makes find_spec and import report aiohttp missing, as if it were not installed
    code = (
        "import sys; sys.modules['aiohttp'] = None; from htsat_live.cli import main; "
        f"sys.exit(main(['detect', {str(DEMO_RECORDING)!r}, '--web', '127.0.0.1:8080']))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "htsat-live detect: web.bind: the browser view needs the [web] extra (aiohttp not installed): "
        "pip install 'htsat-live[web]'"
    ]


def test_the_page_opened_with_its_token_reads_the_live_stream_and_the_history_with_the_cookie(
    history, browser, wait_until
):
    view = WebView("127.0.0.1", 0, token="s3cret-token", history=history / "events.db", clips_dir=history / "clips")
    try:
        browser.get(view.url + "?token=s3cret-token")
        wait_until(lambda: len(history_rows(browser)) == 4, 10, "the history read with the cookie")
        wait_until(lambda: page_state(browser)["link"] == "live", 10, "the live stream opened with the cookie")
        assert view.counters()["refused"] == 0 and view.counters()["clients"] == 1
        browser.delete_all_cookies()
        browser.get(view.url)
        assert "needs its access token" in browser.find_element("tag name", "body").text
        assert view.counters()["refused"] >= 1  # the page (and the icon the browser asks for on an error page)
    finally:
        view.close()


def test_the_page_says_when_the_detector_behind_web_connect_goes_silent_and_comes_back(browser, wait_until):
    view = WebView("127.0.0.1", 0)
    try:
        browser.get(view.url)
        wait_until(lambda: page_state(browser)["link"] == "live", 10, "the page's live stream")
        view.link("tcp://127.0.0.1:5556: receiving", True)
        view.handle(Message("status", "mic", status_body("mic", 1.0)))
        wait_until(
            lambda: page_state(browser)["status"] and "running" in page_state(browser)["status"][0], 10, "a status"
        )
        view.link("tcp://127.0.0.1:5556: no data from the detector", False)
        wait_until(
            lambda: page_state(browser)["link"] == "tcp://127.0.0.1:5556: no data from the detector",
            5,
            "the page saying the detector is silent",
        )
        view.link("tcp://127.0.0.1:5556: receiving", True)
        view.handle(Message("status", "mic", status_body("mic", 2.0)))
        wait_until(lambda: page_state(browser)["link"] == "live", 5, "the page live again")
    finally:
        view.close()
