#!/usr/bin/env bash
# Set up everything htsat-live needs on a fresh Debian machine: system packages
# (PortAudio, PulseAudio for the virtual microphone, ffmpeg, Qt's runtime libraries, the mosquitto
# broker for the MQTT tests, espeak-ng for the clip tests' spoken words),
# a virtual environment in .venv with the CPU build of torch, and the package itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins ffmpeg mosquitto \
        libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 \
        libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
        libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 libxcb-xkb1 \
        libxkbcommon-x11-0 xvfb x11-utils espeak-ng >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[test,cluster]'
