"""A command whose extra is not installed says which one to install, in one line, with exit code 2."""

import subprocess
import sys

import pytest

from htsat_live.cli import SUBCOMMANDS
from htsat_live.extras import EXTRA_MODULES

# Runs the CLI with an extra's modules hidden, as if it were not installed (a None entry in sys.modules
# makes both find_spec and import report the module missing).
HIDDEN = (
    "import sys; sys.modules.update(dict.fromkeys({modules!r})); from htsat_live.cli import main; "
    "sys.exit(main({argv!r}))"
)


@pytest.mark.parametrize("subcommand", [s for s in SUBCOMMANDS if s.extra], ids=lambda s: s.name)
def test_a_command_without_its_extra_names_the_extra(subcommand, tmp_path):
    code = HIDDEN.format(modules=EXTRA_MODULES[subcommand.extra][-1:], argv=[subcommand.name, "--help"])
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"htsat-live {subcommand.name}: needs the [{subcommand.extra}] extra" in result.stderr
    assert f"pip install 'htsat-live[{subcommand.extra}]'" in result.stderr


def test_a_command_with_its_extra_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "serve", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "--replicas" in result.stdout, result.stderr


def test_the_core_commands_need_no_extra():
    core = {s.name for s in SUBCOMMANDS if s.extra is None}
    assert {"detect", "tag", "listen", "events", "bench", "devices", "labels"} <= core


def test_bench_soak_without_matplotlib_says_so_before_it_starts(tmp_path):
    code = HIDDEN.format(modules=("matplotlib",), argv=["bench", "--soak", "1", "--soak-dir", str(tmp_path / "s")])
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "[eval] extra" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists()
