import os
import queue
import select
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).resolve().parent / "data"  # reference outputs of the official code (data/README.md)
POLL_SECONDS = 0.01  # between two looks at a condition a test waits for
X_SCREEN = (1600, 900)  # the x_display fixture's screen, in pixels
HOME_VARIABLES = ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME")


def _wait_until(condition, timeout: float, what: str, between=None) -> None:
    """Return once `condition()` holds; fail naming `what` when it still does not after `timeout` s.
    `between()`, if given, runs between two looks (the GUI tests run Qt's events there)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        if between is not None:
            between()
        time.sleep(POLL_SECONDS)


class LineReader:
    """The lines a process writes to a pipe, read by a thread of its own, so that a test waits for the next
    one with a deadline instead of blocking on a process that may have died or gone quiet."""

    def __init__(self, pipe):
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        for line in pipe:
            self._lines.put(line)
        self._lines.put(None)  # end of the stream: the process closed it or exited

    def next_line(self, timeout: float, what: str) -> str:
        """The next line; fails naming `what` when none comes within `timeout` s or the stream ends."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None
        if line is None:
            self._lines.put(None)
            raise AssertionError(f"the stream ended before {what}")
        return line


@pytest.fixture(scope="session", autouse=True)
def private_home(tmp_path_factory):
    """HOME and every XDG folder point into a temporary folder for the whole run, before any other fixture
    runs: no test, fixture or process started by one reads or writes the user's home."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        for name in HOME_VARIABLES:
            folder = home if name == "HOME" else home / name.removeprefix("XDG_").removesuffix("_HOME").lower()
            folder.mkdir(exist_ok=True)
            patch.setenv(name, str(folder))
        yield home


# the cache folders of converted models (model/onnx.py, model/openvino.py), keyed by the checkpoint's bytes
MODEL_CONVERSIONS = ("onnx", "openvino")


@pytest.fixture(autouse=True)
def private_data_home(private_home, tmp_path_factory, monkeypatch):
    """The event history is on by default under $XDG_DATA_HOME, and training caches its features under
    $XDG_CACHE_HOME: each test (and the processes it starts) gets its own of both. Converted models are the
    exception: the cache's onnx/ and openvino/ folders link to one pair for the whole run (in private_home's
    cache, which module-scoped fixtures see), so that a model is exported or converted once per run, not once
    per test."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))
    cache = tmp_path_factory.mktemp("cache-home")
    (cache / "htsat-live").mkdir()
    for name in MODEL_CONVERSIONS:
        shared = private_home / "cache" / "htsat-live" / name
        shared.mkdir(parents=True, exist_ok=True)
        (cache / "htsat-live" / name).symlink_to(shared, target_is_directory=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))


@pytest.fixture
def read_only_mount(tmp_path):
    """A folder on a read-only tmpfs holding one file, `old.jsonl` (root ignores file modes, not a mount's)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a read-only tmpfs needs root and mount(8)")
    path = tmp_path / "ro"
    path.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"mount not permitted: {made.stderr.decode().strip()}")
    try:
        (path / "old.jsonl").write_text("{}\n")
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True, timeout=30)
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True, timeout=30)


@pytest.fixture
def x_display(tmp_path, wait_until):
    """A private Xvfb server (X_SCREEN) on a free display number, answering clients; yields its DISPLAY (":N")."""
    for tool in ("Xvfb", "xwininfo"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/setup.sh (apt packages xvfb x11-utils)")
    read_end, write_end = os.pipe()
    log = tmp_path / "xvfb.log"
    with open(log, "wb") as stderr:
        server = subprocess.Popen(
            [
                "Xvfb",
                "-displayfd",
                str(write_end),
                "-screen",
                "0",
                f"{X_SCREEN[0]}x{X_SCREEN[1]}x24",
                "-nolisten",
                "tcp",
            ],
            pass_fds=[write_end],
            stderr=stderr,
        )
    os.close(write_end)
    try:
        number = b""
        while not number.endswith(b"\n"):  # Xvfb writes the display number it took once it is ready
            ready, _, _ = select.select([read_end], [], [], 30.0)
            chunk = os.read(read_end, 16) if ready else b""
            if not chunk:
                pytest.fail(f"Xvfb did not start: {log.read_text(errors='replace')}")
            number += chunk
        display = f":{number.decode().strip()}"
        env = dict(os.environ, DISPLAY=display)

        def answers() -> bool:  # a client connects and reads the root window
            if server.poll() is not None:
                pytest.fail(f"Xvfb on {display} exited: {log.read_text(errors='replace')}")
            return subprocess.run(["xwininfo", "-root"], env=env, capture_output=True, timeout=10).returncode == 0

        wait_until(answers, 30.0, f"Xvfb answering on {display}")
        yield display
    finally:
        os.close(read_end)
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    return GOLDEN / "htsat_tiny.ckpt"


@pytest.fixture
def second_tiny(tiny_checkpoint, tmp_path) -> Path:
    """The tiny official-format checkpoint with other (perturbed) weights: a second member of the same labels
    (the ensemble tests)."""
    loaded = torch.load(tiny_checkpoint, weights_only=True)
    generator = torch.Generator().manual_seed(7)
    for key, tensor in loaded["state_dict"].items():
        if tensor.is_floating_point() and key.endswith(".weight") and "extractor" not in key:
            loaded["state_dict"][key] = tensor + 0.05 * torch.randn(tensor.shape, generator=generator)
    path = tmp_path / "tiny_b.ckpt"
    torch.save(loaded, path)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint exported to ONNX once for the session (an export takes tens of seconds)."""
    from htsat_live.model.checkpoint import build_model, read_checkpoint
    from htsat_live.model.onnx import export_onnx

    checkpoint = read_checkpoint(tiny_checkpoint)
    return export_onnx(
        build_model(checkpoint, tiny_checkpoint), checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    )


@pytest.fixture(scope="session")
def tiny_outputs() -> dict:
    return torch.load(GOLDEN / "htsat_tiny_outputs.pt", weights_only=True)


def write_official_checkpoint(path: Path, seed: int = 0) -> Path:
    """A full-size AudioSet HTS-AT in the official Lightning format (every key and shape of htsat_keys.txt),
    with seeded random weights: what an official checkpoint looks like, since weights cannot be downloaded."""
    import re

    from htsat_live.model.htsat import HTSAT, HTSATConfig

    derived = dict(HTSAT(HTSATConfig()).named_buffers())
    generator = torch.Generator().manual_seed(seed)
    state_dict = {}
    for line in (GOLDEN / "htsat_keys.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        shape = [int(n) for n in re.findall(r"\d+", shape)]
        if key in derived:
            tensor = derived[key].clone()
        elif dtype == "int64":
            tensor = torch.zeros(shape, dtype=torch.int64)
        else:
            tensor = torch.randn(shape, generator=generator) * 0.02
        state_dict["sed_model." + key] = tensor
    state_dict["sed_model.bn0.running_var"] = torch.ones(64)
    torch.save({"state_dict": state_dict, "epoch": 1}, path)
    return path


@pytest.fixture(scope="session")
def official_checkpoints(tmp_path_factory) -> list[Path]:
    """Two full-size official-format AudioSet checkpoints with different random weights, named as the
    authors name theirs (HTSAT_AudioSet_Saved_1.ckpt, HTSAT_AudioSet_Saved_2.ckpt)."""
    folder = tmp_path_factory.mktemp("official")
    return [write_official_checkpoint(folder / f"HTSAT_AudioSet_Saved_{i}.ckpt", seed=i) for i in (1, 2)]


@pytest.fixture(scope="session")
def read_lines():
    """`read_lines(pipe)`: a LineReader whose `next_line(timeout, what)` waits for a process's next line."""
    return LineReader


@pytest.fixture(scope="session")
def wait_until():
    """Wait for something a test started to happen, with a deadline instead of a fixed sleep:
    `wait_until(condition, timeout, what, between=None)`."""
    return _wait_until


class VirtualMicrophone:
    """A private PulseAudio daemon with a null sink that is the default output and whose monitor is the
    default input: sounddevice/PortAudio records whatever is played into it, by `paplay` or by
    sounddevice itself (the stream tests' microphone, the GUI tests' loudspeaker)."""

    def __init__(self, runtime_dir: str):
        self.env = dict(os.environ, XDG_RUNTIME_DIR=runtime_dir)

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=30)

    def start(self) -> None:
        started = self._run("pulseaudio", "-D", "--exit-idle-time=-1", "--disallow-exit", "--log-target=stderr")
        if started.returncode != 0:
            raise RuntimeError(f"pulseaudio did not start: {started.stderr.strip()}")
        for _ in range(100):  # the daemon answers once its socket is up
            if self._run("pactl", "info").returncode == 0:
                break
            time.sleep(0.05)
        self.load_sink()
        # Without it, removing the null sink removes the last input, as unplugging the only microphone does;
        # with it, PulseAudio would quietly move the recording to a silent stand-in.
        self._run("pactl", "unload-module", "module-always-sink")

    def kill(self) -> None:
        self._run("pulseaudio", "--kill")
        for _ in range(100):
            if self._run("pactl", "info").returncode != 0:
                return
            time.sleep(0.05)

    def unload_sink(self) -> None:
        """Remove the null sink: its monitor, the default input, disappears (a microphone unplugged)."""
        result = self._run("pactl", "unload-module", "module-null-sink")
        if result.returncode != 0:
            raise RuntimeError(f"pactl unload-module failed: {result.stderr.strip()}")

    def load_sink(self) -> None:
        """Create the null sink again and make its monitor the default input (the microphone is back)."""
        for command in (
            ("pactl", "load-module", "module-null-sink", "sink_name=vsink"),
            ("pactl", "set-default-sink", "vsink"),
            ("pactl", "set-default-source", "vsink.monitor"),
        ):
            result = self._run(*command)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")

    def play(self, path) -> subprocess.Popen:
        """Start playing a sound file into the null sink; returns the paplay process."""
        return subprocess.Popen(["paplay", str(path)], env=self.env)


@pytest.fixture
def virtual_mic(monkeypatch):
    for tool in ("pulseaudio", "pactl", "paplay"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/setup.sh (apt packages pulseaudio pulseaudio-utils)")
    runtime_dir = tempfile.mkdtemp(prefix="htsat-pulse-")
    mic = VirtualMicrophone(runtime_dir)
    mic.start()
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime_dir)
    try:
        yield mic
    finally:
        mic.kill()
        shutil.rmtree(runtime_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def esc50_clips(tmp_path_factory) -> Path:
    """An ESC-50-shaped set of real recordings from Debian's `scratch` package (training.clip_sources; the
    package is downloaded once into the repository's cache/), built once per session."""
    from htsat_live.training.clip_sources import esc50_set

    out = tmp_path_factory.mktemp("esc50")
    esc50_set(Path(__file__).resolve().parents[1] / "cache", out, takes=2)
    return out


@pytest.fixture(scope="session")
def speech_commands_clips(tmp_path_factory) -> Path:
    """A Speech Commands-shaped set of words spoken by espeak-ng in four voices, built once per session."""
    from htsat_live.training.clip_sources import speech_commands_set

    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: run scripts/setup.sh (apt package espeak-ng)")
    out = tmp_path_factory.mktemp("speech-commands")
    speech_commands_set(out, words=("yes", "no", "up"), voices=("en", "en-us", "en+f3", "en+m3"))
    return out
