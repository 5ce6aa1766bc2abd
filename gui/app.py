"""`htsat-live gui [SOURCE]` runs the pipeline in this process and shows it; `htsat-live gui --connect
tcp://HOST:5556` shows a pipeline running elsewhere through its published topics. Both feed the same
messages to the same window, which remembers the user's choices of view between runs (QSettings).

In local mode the window needs no port, so a publish port that is taken (another detector runs) does
not stop it: it publishes on a free port of the same host instead and says so."""

import argparse
import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import time
from collections.abc import Callable

from htsat_live.gui.live_data import SPANS_SECONDS, LiveData
from htsat_live.stream.building import add_detect_arguments

X_CONNECT_SECONDS = 5.0  # how long a refused X connection is retried (the server may be resetting)
X_CONNECT_RETRY_SECONDS = 0.05
SETTINGS_ORGANISATION, SETTINGS_APPLICATION = "htsat-live", "gui"  # QSettings: ~/.config/htsat-live/gui.conf


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_detect_arguments(parser)
    parser.add_argument(
        "--connect",
        metavar="ADDRESS",
        help="show a remote pipeline: subscribe to its publisher, e.g. tcp://HOST:5556 "
        "(then SOURCE and the pipeline options are not used)",
    )
    parser.add_argument(
        "--server-key",
        default="",
        metavar="FILE",
        help="the publisher's CURVE public key (PREFIX.key from `htsat-live keys`), with --connect",
    )
    parser.add_argument(
        "--span",
        type=int,
        choices=SPANS_SECONDS,
        default=None,
        help="seconds shown at first (default: as last time, else 30)",
    )
    parser.add_argument(
        "--classes",
        type=int,
        default=None,
        help="classes in the heatmap at first, 1 to 64 (default: as last time, else 8)",
    )


def run(args: argparse.Namespace) -> int:
    if not _has_display():
        print(
            "htsat-live gui: no display (DISPLAY and WAYLAND_DISPLAY are unset): run it on a desktop, under "
            "`xvfb-run htsat-live gui ...`, or on a machine with a screen as `htsat-live gui --connect "
            "tcp://HOST:5556` to a detector running elsewhere",
            file=sys.stderr,
        )
        return 2
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from htsat_live.gui.receiver import Receiver
    from htsat_live.gui.window import LiveWindow

    if args.connect and args.source:
        print("htsat-live gui: give either a SOURCE (local pipeline) or --connect ADDRESS, not both", file=sys.stderr)
        return 2
    if args.server_key and not args.connect:
        print("htsat-live gui: --server-key goes with --connect", file=sys.stderr)
        return 2
    release_x_display, unreachable = open_x_display()
    if unreachable:
        print(f"htsat-live gui: {unreachable}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    release_x_display()  # Qt holds its own connection now
    source, title = _remote_source(args) if args.connect else _local_source(args)
    if source is None:
        return 2
    live = LiveData()
    receiver = Receiver(source, live)
    set_threshold = event_audio = None  # what only a pipeline in this process offers
    if not args.connect:
        set_threshold, event_audio = source.set_threshold, source.event_audio
    window = LiveWindow(
        live,
        f"htsat-live: {title}",
        set_threshold=set_threshold,
        event_audio=event_audio,
        span_seconds=args.span,
        top_n=args.classes,
        settings=QSettings(SETTINGS_ORGANISATION, SETTINGS_APPLICATION),
    )
    receiver.connection_changed.connect(window.status_bar.show_connection)
    # Ctrl-C in the terminal quits cleanly too. The quit is posted to the event loop: a Ctrl-C that comes before
    # app.exec() starts would otherwise be lost (quit() does nothing while no loop runs).
    previous = signal.signal(signal.SIGINT, lambda *_: QTimer.singleShot(0, app.quit))
    receiver.start()
    window.show()
    try:
        app.exec()
    finally:
        signal.signal(signal.SIGINT, previous)
        window.close()  # remembers the view (Ctrl-C quits without closing it)
        receiver.stop()  # stops the pipeline and flushes its sinks (local mode)
    return 0


def _has_display() -> bool:
    """Whether Qt can show a window: a display server to talk to, or a QT_QPA_PLATFORM that needs none
    (offscreen, vnc, eglfs, ...). Without either, Qt aborts on a misleading hint about xcb libraries."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_x_display() -> tuple[Callable[[], None], str]:
    """A connection to the X display that Qt will use, as the function that closes it, or a line saying why
    none opens ("" when Qt would use another platform, or libxcb is missing: Qt then explains).

    Hold it until QApplication has connected. An X server resets when its last client leaves and refuses
    connections while it does (Xvfb, as `xvfb-run` starts it, has no other client), and Qt's xcb platform
    aborts the process (SIGABRT) when its connection is refused, with a hint about reinstalling. A refused
    connection is retried for X_CONNECT_SECONDS, as a reset takes a moment; a display that stays unreachable
    (its X server stopped, an SSH session's forwarding closed) is named."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    display = os.environ.get("DISPLAY", "")
    if not display or not (platform.startswith("xcb") or (not platform and not os.environ.get("WAYLAND_DISPLAY"))):
        return lambda: None, ""
    try:
        xcb = ctypes.CDLL(ctypes.util.find_library("xcb") or "libxcb.so.1")
    except OSError:
        return lambda: None, ""
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    deadline = time.monotonic() + X_CONNECT_SECONDS
    while True:
        connection = xcb.xcb_connect(display.encode(), None)  # never NULL: an error connection on failure
        if not xcb.xcb_connection_has_error(connection):
            return functools.partial(xcb.xcb_disconnect, connection), ""
        xcb.xcb_disconnect(connection)
        if time.monotonic() > deadline:
            return lambda: None, (
                f"cannot connect to the X display {display} (DISPLAY): is its X server running, and may this "
                "user use it? Run it under `xvfb-run htsat-live gui ...`, or with `--connect tcp://HOST:5556` "
                "on a machine with a screen"
            )
        time.sleep(X_CONNECT_RETRY_SECONDS)


def _remote_source(args):
    from htsat_live.stream.outputs.publish import Subscriber

    try:
        return Subscriber(args.connect, server_key=args.server_key), args.connect
    except ValueError as error:
        print(f"htsat-live gui: {error}", file=sys.stderr)
        return None, ""


def _local_source(args):
    from htsat_live.gui.local_source import LocalSource
    from htsat_live.model.backend_choice import backend_line
    from htsat_live.stream.building import demo_config, detect_config, load_model_or_explain
    from htsat_live.stream.capture import CaptureError, NoMicrophone
    from htsat_live.stream.config import ConfigError
    from htsat_live.stream.output import Listener, close_outputs
    from htsat_live.stream.outputs.sinks import Sinks
    from htsat_live.stream.pipeline import Pipeline

    try:
        config = detect_config(args)
    except ConfigError as error:
        print(f"htsat-live gui: {error}", file=sys.stderr)
        return None, ""
    model = load_model_or_explain(
        config.model.path or None,
        config.model.device,
        config.model.backend,
        config.model.precision,
        config.model.calibration or None,
    )
    if model is None:
        return None, ""
    print(f"htsat-live gui: {backend_line(model, config.model.device)}", file=sys.stderr, flush=True)
    publisher = sinks = None
    try:
        publisher, link = _open_publisher(config.publish)
        sinks = Sinks.from_config(config.sinks)
        source = LocalSource(link, sinks)
        outputs = [sinks] + ([publisher] if publisher is not None else []) + [Listener(source.listen)]
        try:
            pipeline = Pipeline(config, model, outputs=outputs)
        except NoMicrophone as error:
            config = demo_config("gui", config, error)
            if config is None:
                close_outputs([output for output in (publisher, sinks) if output is not None])
                return None, ""
            pipeline = Pipeline(config, model, outputs=outputs)
    except (CaptureError, ConfigError, OSError, ValueError) as error:
        close_outputs([output for output in (publisher, sinks) if output is not None])
        hint = " (give a SOURCE: an audio file, ffmpeg:URL or mic:NAME)" if isinstance(error, NoMicrophone) else ""
        print(f"htsat-live gui: {error}{hint}", file=sys.stderr)
        return None, ""
    source.attach(pipeline)
    return source, ", ".join(runner.spec for runner in pipeline.runners)


def _open_publisher(config):
    """The publisher `config` (a PublishConfig) asks for, or None, and how the status bar names the
    local link. When the configured address cannot be bound but the same host with any free port
    can (the port is taken), it publishes there and says so; any other failure raises ValueError."""
    from htsat_live.stream.outputs.publish import Publisher

    if not config.enabled:
        return None, "local pipeline (not publishing)"
    try:
        publisher = Publisher.from_config(config)
        return publisher, f"local pipeline, publishing on {publisher.address}"
    except ValueError as error:
        transport, _, rest = config.bind.partition("://")
        if transport != "tcp":
            raise
        try:
            publisher = Publisher(
                f"tcp://{rest.rpartition(':')[0]}:*", config.allow_remote, config.server_secret_key, config.hwm
            )
        except ValueError:
            raise error from None
        print(f"htsat-live gui: {error}; publishing on {publisher.address} instead", file=sys.stderr)
        return publisher, f"local pipeline, publishing on {publisher.address} ({config.bind} is taken)"
