"""The `listen` and `keys` subcommands of htsat-live: the command-line side of the ZeroMQ publisher.

`htsat-live listen [ADDR]` subscribes to a running detector and prints its messages;
`htsat-live keys PREFIX` writes the CURVE key pair that encrypts a publisher.
"""

import argparse
import json
import os
from pathlib import Path

import zmq.auth

from htsat_live.stream.messages import TOPICS
from htsat_live.stream.publish import DEFAULT_ADDRESS, Subscriber


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", nargs="?", default=DEFAULT_ADDRESS, help=f"publisher address (default {DEFAULT_ADDRESS})")
    parser.add_argument("--topic", action="append", choices=TOPICS, help="only this topic (repeatable; default all)")
    parser.add_argument("--server-key", default="", help="the publisher's CURVE public key file (PREFIX.key) or Z85 key")
    parser.add_argument("--client-key", default="", help="this client's CURVE secret key file (default: a throw-away key)")
    parser.add_argument("--count", type=int, default=0, help="exit after this many messages (default: run until Ctrl-C)")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="exit with status 1 when no message arrives for this many seconds (default: wait forever)")


def run_listen(args: argparse.Namespace) -> int:
    """Print each message as one line: the topic, then the JSON body."""
    try:
        subscriber = Subscriber(args.address, tuple(args.topic or ()), args.server_key, args.client_key)
    except ValueError as error:
        print(f"htsat-live listen: {error}")
        return 2
    count = 0
    try:
        with subscriber:
            while not args.count or count < args.count:
                message = subscriber.receive(args.timeout if args.timeout > 0 else 3600.0)
                if message is None:
                    if args.timeout > 0:
                        print(f"htsat-live listen: nothing received for {args.timeout:g} s")
                        return 1
                    continue
                print(message.topic, json.dumps(message.body, separators=(",", ":")), flush=True)
                count += 1
    except KeyboardInterrupt:
        pass
    missed = sum(subscriber.missed.values())
    if missed or subscriber.skipped:
        print(f"htsat-live listen: {missed} messages missed, {subscriber.skipped} skipped")
    return 0


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prefix", help="writes PREFIX.key (public, give it to subscribers) and PREFIX.key_secret")
    parser.add_argument("--force", action="store_true", help="overwrite existing key files")


def run_keys(args: argparse.Namespace) -> int:
    """Write a CURVE key pair for `publish.server_secret_key` / `--server-key`."""
    prefix = Path(args.prefix)
    public, secret = Path(f"{prefix}.key"), Path(f"{prefix}.key_secret")
    if not args.force and (public.exists() or secret.exists()):
        print(f"htsat-live keys: {public} or {secret} exists (use --force to overwrite)")
        return 1
    prefix.parent.mkdir(parents=True, exist_ok=True)
    written_public, written_secret = zmq.auth.create_certificates(prefix.parent, prefix.name)
    os.chmod(written_secret, 0o600)
    print(f"public key (for subscribers, --server-key): {written_public}")
    print(f"secret key (publish.server_secret_key; keep private): {written_secret}")
    return 0
