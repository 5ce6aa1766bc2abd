"""A real virtual microphone for the stream tests: a private PulseAudio daemon with a null sink whose
monitor is the default source, so sounddevice/PortAudio records whatever `paplay` plays into it."""

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
        for command in (("pactl", "load-module", "module-null-sink", "sink_name=vsink"),
                        ("pactl", "set-default-sink", "vsink"),
                        ("pactl", "set-default-source", "vsink.monitor")):
            result = self._run(*command)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")

    def kill(self) -> None:
        self._run("pulseaudio", "--kill")
        for _ in range(100):
            if self._run("pactl", "info").returncode != 0:
                return
            time.sleep(0.05)

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
