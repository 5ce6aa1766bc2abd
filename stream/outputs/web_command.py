"""The `web` subcommand: the browser view (stream.outputs.web) of a detector that already runs.

`htsat-live web --connect tcp://HOST:5556` subscribes to the detector's publisher (stream.outputs.publish) and
hands every message to a `WebView`, as `detect --web` does in the detector's own process. The history and the
clips are read from the files `[store] path` and `[sinks] clips_dir` of `--config` name (the defaults: the XDG
history, no clips), and its `[sinks] privacy` holds clips back as in detect's view, so run it on the detector's
machine with the detector's config, or where those files are shared. A detector that stops
and starts again is picked up by itself: the subscriber connects again and the page says the detector was silent.
"""

import argparse
import sys
import time

from htsat_live.stream.config import ConfigError, load_config, parse_assignment, with_overrides
from htsat_live.stream.outputs.publish import DEFAULT_ADDRESS, Subscriber
from htsat_live.stream.outputs.web import WebView, listen_address

DEFAULT_BIND = "127.0.0.1:8080"
LINK_PERIOD = 1.0  # seconds between two reports of the link to the detector


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect",
        default=DEFAULT_ADDRESS,
        metavar="ADDRESS",
        help=f"the detector's publisher (default {DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--bind", metavar="HOST:PORT", help=f"where to serve the page (web.bind; default {DEFAULT_BIND})"
    )
    parser.add_argument("--config", help="TOML config: its [web], [store] path, [sinks] clips_dir and privacy")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config setting (repeatable)"
    )
    parser.add_argument("--server-key", default="", help="the publisher's CURVE public key file (PREFIX.key)")
    parser.add_argument("--client-key", default="", help="this client's CURVE secret key file")


def run_web(args: argparse.Namespace) -> int:
    """Serve the page until Ctrl-C, fed by the detector at --connect."""
    from htsat_live.stream.commands import StopSignals

    try:
        config = with_overrides(load_config(args.config), dict(parse_assignment(text) for text in args.set))
        config = with_overrides(config, {"web.bind": args.bind or config.web.bind or DEFAULT_BIND})
        listen_address(config.web.bind, config.web.allow_remote, config.web.token)
    except (ConfigError, ValueError) as error:
        print(f"htsat-live web: {error}", file=sys.stderr)
        return 2
    try:
        subscriber = Subscriber(args.connect, ("event", "scores", "status"), args.server_key, args.client_key)
    except ValueError as error:
        print(f"htsat-live web: {error}", file=sys.stderr)
        return 2
    with StopSignals() as stop, subscriber:
        try:
            view = WebView.from_config(config)
        except ValueError as error:
            print(f"htsat-live web: {error}", file=sys.stderr)
            return 2
        print(f"browser view at {view.url} of the detector at {args.connect}; Ctrl-C ends", file=sys.stderr, flush=True)
        try:
            next_link = 0.0
            while not stop.requested.is_set():
                message = subscriber.receive(0.2)
                if message is not None:
                    view.handle(message)
                if time.monotonic() >= next_link:
                    text, healthy = subscriber.connection()
                    view.link(f"{text}: {'receiving' if healthy else 'no data from the detector'}", healthy)
                    next_link = time.monotonic() + LINK_PERIOD
        finally:
            view.close()
    counters = view.counters()
    missed = sum(subscriber.missed.values())
    print(
        "web: "
        + " ".join(f"{key}={value}" for key, value in counters.items() if key != "clients")
        + f" missed={missed} unreadable={subscriber.skipped}",
        flush=True,
    )
    return 0
