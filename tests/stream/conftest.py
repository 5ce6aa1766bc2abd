"""Real parts for the stream tests: a virtual microphone (a private PulseAudio daemon with a null sink
whose monitor is the default source, so sounddevice/PortAudio records whatever `paplay` plays into it),
and folders that cannot be written (a read-only tmpfs) or fill up at once (a 64-KiB tmpfs)."""

import errno
import os
import shutil
import subprocess
import tempfile
import time

import pytest


class VirtualMicrophone:
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
        for command in (("pactl", "load-module", "module-null-sink", "sink_name=vsink"),
                        ("pactl", "set-default-sink", "vsink"),
                        ("pactl", "set-default-source", "vsink.monitor")):
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


def _mount_tmpfs(path, options: str) -> bool:
    """Mount a tmpfs on `path` (root only); False where this machine does not allow it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write to: a read-only tmpfs as root (root ignores file modes), else mode 0555."""
    path = tmp_path / "read-only"
    path.mkdir()
    if _mount_tmpfs(path, "ro,size=1m"):
        yield path
        subprocess.run(["umount", str(path)], check=True)
    elif os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
    else:
        pytest.skip("root without mount: no folder can be made unwritable here")


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a 64-KiB tmpfs where writes soon fail with ENOSPC. Where no tmpfs can be mounted, the
    sinks' soundfile.write is replaced by a fake that raises ENOSPC (so only clip writes fail there)."""
    path = tmp_path / "full"
    path.mkdir()
    if _mount_tmpfs(path, "size=64k"):
        yield path
        subprocess.run(["umount", str(path)], check=True)
        return

    def fake_full_disk_write(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("htsat_live.stream.sinks.soundfile.write", fake_full_disk_write)
    yield path
