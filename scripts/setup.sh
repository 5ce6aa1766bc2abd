#!/usr/bin/env bash
# Set up htsat-live for development and its tests on a fresh Debian 12 or Ubuntu 24.04 machine:
# - as root, the system packages: Python's venv, PortAudio and libsndfile, PulseAudio (the tests' virtual
#   microphone), ffmpeg, Qt's runtime libraries and Xvfb, the mosquitto broker (MQTT tests) and espeak-ng
#   (spoken words for the clip tests), headless Chromium and its driver (the browser view's tests);
# - a virtual environment in .venv;
# - the CPU build of torch from the PyTorch CPU wheel index, or from the configured package index when that
#   one cannot be reached (a CUDA machine installs torch its own way: see the README);
# - the package in editable mode with every extra and the test tools: .[all,test].
# (The Home Assistant test installs Home Assistant Core into cache/ itself: scripts/setup-home-assistant.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
APT_PACKAGES=(
    python3-venv
    libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins ffmpeg mosquitto espeak-ng
    libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3
    libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
    libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 libxcb-xkb1
    libxkbcommon-x11-0 xvfb x11-utils
    chromium chromium-driver
)

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: system packages (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
elif command -v apt-get >/dev/null; then
    echo "setup: not root, so no system packages are installed; the tests need: sudo apt-get install ${APT_PACKAGES[*]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
PIP=(.venv/bin/pip install --progress-bar on --disable-pip-version-check)
"${PIP[@]}" -q --upgrade pip

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "setup: torch $TORCH_VERSION, CPU build"
    # --retries 0: an index that cannot be reached fails at once instead of after minutes of retries.
    if ! "${PIP[@]}" -q --retries 0 --timeout 20 --index-url "$TORCH_CPU_INDEX" "torch==$TORCH_VERSION"; then
        echo "setup: the PyTorch CPU index could not be used; torch comes from the configured package index"
        "${PIP[@]}" -q "torch==$TORCH_VERSION"
    fi
fi

echo "setup: htsat-live with every extra and the test tools"
"${PIP[@]}" -q -e '.[all,test]'
echo "setup: done; activate with: source .venv/bin/activate"
