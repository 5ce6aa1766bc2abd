"""The `listen` and `keys` subcommands of htsat-live: the command-line side of the ZeroMQ publisher.

`htsat-live listen [ADDR]` subscribes to a running detector and prints its messages: by default its
events (`event {json}`, one per line) and each `status` as one short line; `--topic` chooses others (the
tens-of-kilobytes `scores` and `mel` lines) and `--json` prints every message as its topic and raw body.
`htsat-live keys PREFIX` writes the CURVE key pair that encrypts a publisher.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import zmq.auth

from htsat_live.stream.messages import TOPICS
from htsat_live.stream.outputs.publish import DEFAULT_ADDRESS, Subscriber

DEFAULT_TOPICS = ("event", "status")
PROBLEM_COUNTERS = ("skipped_windows", "failed_windows", "overruns", "input_overflows", "reconnects")  # in `status`


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "address", nargs="?", default=DEFAULT_ADDRESS, help=f"publisher address (default {DEFAULT_ADDRESS})"
    )
    parser.add_argument(
        "--topic",
        action="append",
        choices=(*TOPICS, "all"),
        help="only this topic (repeatable; default event and status; all: every topic, the large "
        "scores and mel messages too)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print every message as its topic and raw JSON body (default: status as one short line)",
    )
    parser.add_argument(
        "--server-key", default="", help="the publisher's CURVE public key file (PREFIX.key) or Z85 key"
    )
    parser.add_argument(
        "--client-key", default="", help="this client's CURVE secret key file (default: a throw-away key)"
    )
    parser.add_argument(
        "--count", type=int, default=0, help="exit after this many messages (default: run until Ctrl-C)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        help="exit with status 1 when no message arrives for this many seconds (default: wait forever)",
    )


def run_listen(args: argparse.Namespace) -> int:
    """Print each message as one line: the topic, then the JSON body; a status, unless --json, as format_status."""
    topics = TOPICS if "all" in (args.topic or ()) else tuple(args.topic or DEFAULT_TOPICS)
    try:
        subscriber = Subscriber(args.address, topics, args.server_key, args.client_key)
    except ValueError as error:
        print(f"htsat-live listen: {error}", file=sys.stderr)
        return 2
    count = 0
    try:
        with subscriber:
            while not args.count or count < args.count:
                message = subscriber.receive(args.timeout if args.timeout > 0 else 3600.0)
                if message is None:
                    if args.timeout > 0:
                        print(f"htsat-live listen: nothing received for {args.timeout:g} s", file=sys.stderr)
                        return 1
                    continue
                if message.topic == "status" and not args.json:
                    print(format_status(message.body), flush=True)
                else:
                    print(message.topic, json.dumps(message.body, separators=(",", ":")), flush=True)
                count += 1
    except KeyboardInterrupt:
        pass
    missed = sum(subscriber.missed.values())
    if missed or subscriber.skipped:
        print(f"htsat-live listen: {missed} messages missed, {subscriber.skipped} skipped", file=sys.stderr)
    return 0


def format_status(body: dict) -> str:
    """A `status` message (docs/schema.md) as one line: the stream's state, input level, inference, latency and
    events, then whatever went wrong (only when something did)."""
    counters, p95 = body["counters"], body["latency"]["hop_p95"]
    parts = [
        f"{body['source_state']} at {body['stream_seconds']:.1f} s",
        f"level {body['level_dbfs']:.1f} dBFS (peak {body['peak_dbfs']:.1f})",
        f"{body['backend']} on {body['device']}, hop {body['hop']:g} s",
        f"latency p95 {'-' if p95 is None else f'{p95:.2f} s'}",
        f"events {counters['confirmed_events']}",
    ]
    parts += [f"{name.replace('_', ' ')} {counters[name]}" for name in PROBLEM_COUNTERS if counters[name]]
    dropped = sum(body["dropped"].values())
    if dropped:
        parts.append(f"dropped {dropped} messages")
    if body["error"]:
        parts.append(f"error: {body['error']}")
    return f"status {body['stream']}: " + ", ".join(parts)


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prefix", help="writes PREFIX.key (public, give it to subscribers) and PREFIX.key_secret")
    parser.add_argument("--force", action="store_true", help="overwrite existing key files")


def run_keys(args: argparse.Namespace) -> int:
    """Write a CURVE key pair for `publish.server_secret_key` / `--server-key`."""
    prefix = Path(args.prefix)
    public, secret = Path(f"{prefix}.key"), Path(f"{prefix}.key_secret")
    if not args.force and (public.exists() or secret.exists()):
        print(f"htsat-live keys: {public} or {secret} exists (use --force to overwrite)", file=sys.stderr)
        return 1
    prefix.parent.mkdir(parents=True, exist_ok=True)
    written_public, written_secret = zmq.auth.create_certificates(prefix.parent, prefix.name)
    os.chmod(written_secret, 0o600)
    print(f"public key (for subscribers, --server-key): {written_public}")
    print(f"secret key (publish.server_secret_key; keep private): {written_secret}")
    return 0
