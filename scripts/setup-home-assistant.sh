#!/usr/bin/env bash
# Home Assistant Core for tests/stream/outputs/test_home_assistant.py, in a virtual environment of its own:
# $HTSAT_LIVE_HOME_ASSISTANT, else cache/home-assistant (the repository's cache/ is ignored by git; .ci/run
# keeps it outside the clone, so that it is installed once, not on every run). Version $HA_VERSION, which runs on Python
# 3.11 and 3.12; its own package_constraints.txt pins every dependency, and the requirements of the integrations
# it starts (the default ones, MQTT and automation) are installed here, so that it runs with --skip-pip and
# fetches nothing at run time. Run again, it does nothing while the installed version is the one below.
set -euo pipefail
cd "$(dirname "$0")/.."

HA_VERSION=2024.3.3
VENV=${HTSAT_LIVE_HOME_ASSISTANT:-cache/home-assistant}

if [ -x "$VENV/bin/hass" ] && [ "$(cat "$VENV/version" 2>/dev/null)" = "$HA_VERSION" ]; then
    exit 0
fi
PYTHON=""
for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null &&
        "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))'; then
        PYTHON=$candidate
        break
    fi
done
if [ -z "$PYTHON" ]; then
    echo "setup-home-assistant: Home Assistant $HA_VERSION needs Python 3.11 or 3.12, and neither is installed"
    exit 1
fi
echo "setup-home-assistant: Home Assistant Core $HA_VERSION in $VENV (for the Home Assistant test)"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$work" "homeassistant==$HA_VERSION"
wheel=$(ls "$work"/homeassistant-*.whl)
"$VENV/bin/python" -c "import sys, zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read(
    'homeassistant/package_constraints.txt').decode())" "$wheel" >"$work/constraints.txt"
# josepy 2 dropped what the acme of this release imports
"${PIP[@]}" -c "$work/constraints.txt" "$wheel" "josepy<2"
"$VENV/bin/python" - >"$work/requirements.txt" <<'PY'
"""The requirements of the integrations Home Assistant starts (bootstrap's sets, MQTT, automation) and of theirs."""
import json
from pathlib import Path

import homeassistant.bootstrap as bootstrap

components = Path(bootstrap.__file__).parent / "components"
todo = {"mqtt", "automation", "recovery_mode", *bootstrap.DEFAULT_INTEGRATIONS, *bootstrap.CRITICAL_INTEGRATIONS}
todo |= {*bootstrap.CORE_INTEGRATIONS, *bootstrap.LOGGING_INTEGRATIONS, *bootstrap.FRONTEND_INTEGRATIONS}
todo.add("stream")  # camera imports it
seen, requirements = set(), set()
while todo:
    name = todo.pop()
    manifest = components / name / "manifest.json"
    if name in seen or not manifest.exists():
        continue
    seen.add(name)
    data = json.loads(manifest.read_text())
    requirements.update(data.get("requirements", []))
    todo.update(data.get("dependencies", []), data.get("after_dependencies", []))
# matter's server and sentry are only named as integrations that load after others, when configured
print("\n".join(sorted(r for r in requirements if not r.startswith(("python-matter-server", "sentry-sdk")))))
PY
"${PIP[@]}" -c "$work/constraints.txt" -r "$work/requirements.txt"
echo "$HA_VERSION" >"$VENV/version"
echo "setup-home-assistant: done"
