"""One import name when installed: `htsat_live`, never top-level `model`, `stream` or `gui` modules.

Checked for the editable install the tests run from, and for a regular install of a freshly built wheel.
Both run in a subprocess started in an empty folder, so that the repository root is not on sys.path.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER_NAMES = ("model", "stream", "gui", "training", "evaluation")

FIND_SPECS = f"""
import importlib.util, json
print(json.dumps({{name: importlib.util.find_spec(name) is not None for name in {FOLDER_NAMES!r}}}))
"""


def run_python(code: str, cwd: Path, **env) -> str:
    """Run `code` with this interpreter in `cwd`; `env` adds variables (PYTHONPATH only when given)."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300, env={**environment, **env}
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_editable_install_adds_no_top_level_folder_modules(tmp_path):
    assert (
        run_python(FIND_SPECS, tmp_path) == '{"model": false, "stream": false, "gui": false, "training": false, '
        '"evaluation": false}'
    )
    module_file = run_python(
        "import htsat_live.model, htsat_live.stream.config; print(htsat_live.model.__file__)", tmp_path
    )
    assert Path(module_file).resolve() == ROOT / "model" / "__init__.py"


def test_a_regular_install_holds_only_the_namespace_and_works(tmp_path):
    # Built from a copy, so that setuptools' build/ folder does not land in the working tree.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "cache", "runs", "*.egg-info", "__pycache__", ".pytest_cache"
        ),
    )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "wheel").glob("htsat_live-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert len(tops) == 2 and "htsat_live" in tops and all(top.endswith(".dist-info") for top in tops - {"htsat_live"})
    assert "htsat_live/model/data/starter.safetensors" in names and "htsat_live/cli.py" in names
    assert {f"htsat_live/stream/outputs/web_page/{name}" for name in ("index.html", "web.css", "web.js")} <= set(names)
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    # PYTHONPATH comes before the editable install's finder, so this imports the installed copy.
    out = run_python(
        "import htsat_live, htsat_live.model as m; model = htsat_live.load_model(); "
        "print(m.__file__); print(len(model.labels))",
        tmp_path,
        PYTHONPATH=str(target),
    )
    module_file, labels = out.splitlines()
    assert module_file == str(target / "htsat_live" / "model" / "__init__.py")
    assert int(labels) == 6  # the embedded starter model, read from the installed package data
    assert run_python(FIND_SPECS, tmp_path, PYTHONPATH=str(target)).count("true") == 0
