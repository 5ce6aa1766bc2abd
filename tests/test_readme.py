"""The README stays true and short: its "first five minutes" run as written, in order, and it speaks to users.

The commands of that section's code block run one by one as a user types them from the root of a checkout
(a leading `htsat-live` is this environment's script). A command that ends must exit 0 within its deadline;
`detect` on the demo in real time, `listen` and `gui` run until stopped: each must show that it works within
a deadline (a first line, an event line, a window), then exit 0 on SIGINT (Ctrl-C). `listen` runs while
`detect` does, and `events` afterwards must list that run's events. On a failure the test prints the end of
each background command's stderr, where a crash also leaves every thread's Python stack (PYTHONFAULTHANDLER).
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SCRIPT = Path(sys.executable).parent / "htsat-live"
MAX_LINES = 200
# words that make sense only to the people who wrote the project, not to its users
FORBIDDEN = ("this machine", "the speed issue", "here", "session")

START_SECONDS = 60.0  # for a long-running command to show that it works
RUN_SECONDS = 180.0  # for a command that ends
STOP_SECONDS = 30.0  # from SIGINT to its exit
STDERR_TAIL_LINES = 40  # of a background command's stderr, printed when the test fails


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def first_five_minutes() -> list[list[str]]:
    """The commands of the first fenced code block under the heading "The first five minutes", as argv lists
    (a leading `htsat-live` replaced by this environment's script)."""
    section = re.search(r"^## The first five minutes\n(.*?)(?=^## )", readme_text(), re.S | re.M)
    assert section, 'README.md has no "## The first five minutes" section'
    block = re.search(r"^```[a-z]*\n(.*?)^```", section.group(1), re.S | re.M)
    assert block, 'the "first five minutes" section has no code block'
    commands = []
    for line in block.group(1).splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            commands.append([str(SCRIPT)] + argv[1:] if argv[0] == "htsat-live" else argv)
    return commands


def subcommand(argv: list[str]) -> str:
    return argv[1] if argv[0] == str(SCRIPT) and len(argv) > 1 else ""


def exit_status(code: int | None) -> str:
    """An exit code in words: "0", "1", "signal 6 (SIGABRT)"."""
    if code is None or code >= 0:
        return str(code)
    try:
        return f"signal {-code} ({signal.Signals(-code).name})"
    except ValueError:  # a signal without a name (a real-time one)
        return f"signal {-code}"


def runs_until_stopped(argv: list[str]) -> bool:
    """detect in real time (no --fast), listen and gui run until Ctrl-C."""
    name = subcommand(argv)
    return name in ("listen", "gui") or (name == "detect" and "--fast" not in argv)


class Process:
    """A command started in the background, its stdout and stderr read line by line with deadlines."""

    def __init__(self, argv: list[str], cwd: Path, env: dict, read_lines):
        self.argv = argv
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        self.stdout, self.stderr = read_lines(self.process.stdout), read_lines(self.process.stderr)
        self.stderr_lines: list[str] = []  # those wait_for took from stderr; stderr_tail() reads the rest

    @property
    def name(self) -> str:
        return shlex.join(["htsat-live", *self.argv[1:]])

    def wait_for(self, reader, matches, what: str) -> str:
        """The first line of `reader` (self.stdout or self.stderr) for which matches(line) holds."""
        deadline = time.monotonic() + START_SECONDS
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: timed out after {START_SECONDS:g} s waiting for {what}")
            line = reader.next_line(left, f"{what} from {self.name}")
            if reader is self.stderr:
                self.stderr_lines.append(line)
            if matches(line):
                return line

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT, then its exit code (killed after STOP_SECONDS)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {STOP_SECONDS:g} s of SIGINT") from None

    def stderr_tail(self) -> str:
        """The last STDERR_TAIL_LINES lines the command wrote to stderr; once it has exited."""
        try:
            while True:
                self.stderr_lines.append(self.stderr.next_line(5.0, f"the end of the stderr of {self.name}"))
        except AssertionError:  # the stream ended (or a child of the command holds it open)
            pass
        return "".join(self.stderr_lines[-STDERR_TAIL_LINES:])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_SECONDS)


def run_to_end(argv: list[str], cwd: Path, env: dict) -> str:
    """Run a command that ends; it must exit 0 within RUN_SECONDS. Returns its stdout."""
    name = shlex.join(["htsat-live", *argv[1:]])
    try:
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_SECONDS)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{name} did not end within {RUN_SECONDS:g} s") from None
    assert result.returncode == 0, f"{name} exited {exit_status(result.returncode)}: {result.stderr[-2000:]}"
    return result.stdout


def gui_window_shown(env: dict) -> bool:
    """Whether a top-level window titled "htsat-live: ..." is on the X server."""
    tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True, timeout=10)
    return '"htsat-live: ' in tree.stdout


@pytest.fixture
def checkout(tmp_path) -> Path:
    """Where the commands run: a folder that looks like the root of the checkout for the paths they name
    (model/ is the repository's), so that the files they write land in the test's own folder."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    (folder / "model").symlink_to(ROOT / "model", target_is_directory=True)
    return folder


@pytest.mark.timeout(300)
def test_the_first_five_minutes_run_as_written(checkout, x_display, read_lines, wait_until):
    commands = first_five_minutes()
    names = [subcommand(argv) for argv in commands]
    assert names[:2] == ["detect", "listen"] and runs_until_stopped(commands[0]), names
    assert {"events", "gui", "tag", "evaluate"} <= set(names), names
    env = dict(os.environ, PYTHONFAULTHANDLER="1")  # a crash prints every thread's Python stack to stderr
    started: list[Process] = []
    try:
        # detect in real time (the demo when there is no microphone), listen beside it, both stopped by Ctrl-C
        detect = Process(commands[0], checkout, env, read_lines)
        started.append(detect)
        detect.wait_for(detect.stderr, lambda line: line.startswith("listening to "), 'its "listening to" line')
        listen = Process(commands[1], checkout, env, read_lines)
        started.append(listen)
        line = listen.wait_for(listen.stdout, lambda line: line.startswith("event "), "an event line")
        assert json.loads(line.split(" ", 1)[1])["label"], line
        for process in (listen, detect):
            code = process.interrupt()
            assert code == 0, f"{process.name} exited {exit_status(code)} on SIGINT"

        for argv in commands[2:]:
            name = subcommand(argv)
            if name == "gui":
                gui_env = dict(env, DISPLAY=x_display, QT_QPA_PLATFORM="xcb")
                gui = Process(argv, checkout, gui_env, read_lines)
                started.append(gui)
                wait_until(
                    lambda gui=gui, gui_env=gui_env: gui.process.poll() is not None or gui_window_shown(gui_env),
                    START_SECONDS,
                    f"the window of {gui.name}",
                )
                assert gui.process.poll() is None, f"{gui.name} exited {exit_status(gui.process.returncode)}"
                code = gui.interrupt()
                assert code == 0, f"{gui.name} exited {exit_status(code)} on SIGINT"
            elif runs_until_stopped(argv):
                pytest.fail(f"no check for the long-running {shlex.join(argv[1:])}: extend this test")
            else:
                out = run_to_end(argv, checkout, env)
                if name == "events":
                    count = re.search(r"^(\d+) events?$", out, re.M)
                    assert count and int(count.group(1)) > 0, (
                        f"htsat-live events shows none of the run's events:\n{out}"
                    )
                elif name == "tag":
                    assert "Bird" in out or "Water" in out, out
                elif name == "evaluate":
                    expected = re.search(r"macro event F1 (\d\.\d+)", readme_text())
                    assert expected, "the README does not quote the macro event F1 that evaluate prints"
                    macro = [row.split()[1] for row in out.splitlines() if row.startswith("macro")]
                    assert macro == [expected.group(1)], (
                        f"README.md quotes macro event F1 {expected.group(1)}; evaluate printed {macro}:\n{out}"
                    )
    finally:
        for process in started:
            process.kill()
            print(f"--- {process.name}: exit {exit_status(process.process.returncode)}; stderr ends with:")
            print(process.stderr_tail())


def test_the_readme_is_short_and_speaks_to_users():
    text = readme_text()
    lines = text.splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; at most {MAX_LINES}: move details to docs/"
    found = [word for word in FORBIDDEN if re.search(rf"\b{re.escape(word)}\b", text, re.I)]
    assert not found, f"README.md uses words that only its authors understand: {found}"


def test_the_readme_keeps_the_ci_command_and_links_pages_that_exist():
    text = readme_text()
    assert "\n```bash\nbash scripts/setup.sh && .venv/bin/python -m pytest -q\n```\n" in text  # what CI runs
    for page in set(re.findall(r"\b(docs/[\w.-]+\.(?:md|png))", text)):
        if page != "docs/console.md":  # written alongside; linked before it lands
            assert (ROOT / page).is_file(), f"README.md links {page}, which does not exist"
