"""Real parts for the stream tests: folders that cannot be written (a read-only tmpfs) or fill up at
once (a 64-KiB tmpfs). The virtual microphone is in tests/conftest.py: the GUI's tests play into it."""

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from htsat_live.model import DEMO_RECORDING

REPO = Path(__file__).resolve().parents[2]


def _mount_tmpfs(path, options: str) -> bool:
    """Mount a tmpfs on `path` (root only); False where this machine does not allow it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return (
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0
    )


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

    monkeypatch.setattr("htsat_live.stream.outputs.sinks.soundfile.write", fake_full_disk_write)
    yield path


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a 256-KiB tmpfs: room for an SQLite file in WAL mode (its index takes 32 KiB) and a few
    hundred rows, then writes fail with ENOSPC."""
    path = tmp_path / "small"
    path.mkdir()
    if not _mount_tmpfs(path, "size=256k"):
        pytest.skip("needs a tmpfs mount (root)")
    yield path
    subprocess.run(["umount", str(path)], check=True)


class Mosquitto:
    """A real mosquitto broker on a free loopback port, with a generated config; it can be stopped and
    started again on the same port (a broker restart), and may require a user name and password."""

    def __init__(self, directory, users: dict[str, str] | None = None):
        import socket

        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        # Persistence keeps a subscriber's session (and what the broker queued for it) across a restart.
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {directory}/",
            "log_dest stderr",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to its own user, who cannot write its state here
        if users:
            passwords = directory / "passwords"
            for number, (user, password) in enumerate(users.items()):
                create = ["-c"] if number == 0 else []
                subprocess.run(
                    ["mosquitto_passwd", "-b", *create, str(passwords), user, password], check=True, capture_output=True
                )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        import socket

        self.log = open(self.directory / "mosquitto.log", "ab")
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while True:  # it is up once it accepts connections
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "mosquitto.log").read_text()
                    raise RuntimeError(f"mosquitto did not start: {log}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
        self.log.close()


@pytest.fixture
def mosquitto(tmp_path):
    """Start a broker with `mosquitto(users=None)`; every one started is stopped at the end."""
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is missing: run scripts/setup.sh (apt package mosquitto)")
    brokers = []

    def start(users: dict[str, str] | None = None) -> Mosquitto:
        directory = tmp_path / f"broker{len(brokers)}"
        directory.mkdir()
        broker = Mosquitto(directory, users)
        brokers.append(broker)
        broker.start()
        return broker

    yield start
    for broker in brokers:
        if broker.process is not None:
            broker.stop()


@pytest.fixture
def run_demo_detect():
    """`run_demo_detect(*settings, flags=())`: `htsat-live detect <the demo recording> --fast --set
    publish.enabled=false --set SETTING ... *flags` run to its end in the repository root (at most 300 s),
    its output captured as text."""

    def run(*settings: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "htsat_live.cli", "detect", str(DEMO_RECORDING), "--fast"]
        for setting in ("publish.enabled=false", *settings):
            command += ["--set", setting]
        return subprocess.run([*command, *flags], cwd=REPO, capture_output=True, text=True, timeout=300)

    return run


@pytest.fixture
def start_tiny_detect(tiny_checkpoint):
    """Start `htsat-live detect SOURCE --model <the tiny checkpoint> *options` in the repository root, its
    output piped as text: `start_tiny_detect(source, *options, env=None)`; the test stops it."""

    def start(source: str, *options: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "htsat_live.cli", "detect", source, "--model", str(tiny_checkpoint), *options],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    return start
