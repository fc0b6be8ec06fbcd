"""The command line: `telerapat serve [--config FILE]` and `telerapat check-config FILE`."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

from bridge.config import Config, ConfigError, load_config

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "dialplans" / "default.yaml"

log = logging.getLogger("telerapat")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telerapat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the bridge")
    serve.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                       help=f"YAML config (default: {DEFAULT_CONFIG})")
    serve.add_argument("--log-level", default="INFO",
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    check = commands.add_parser("check-config", help="validate a config and print every error")
    check.add_argument("file", type=Path)
    return parser


def how_to_call(config: Config) -> list[str]:
    """One line per room saying which SIP URI reaches it."""
    lines = []
    for listen in config.sip.listen:
        if listen.transport != "udp":
            continue
        host = config.sip.external_address or listen.host
        if ":" in host:
            host = f"[{host}]"  # an IPv6 reference in a SIP URI (RFC 3261 §25.1)
        port = "" if listen.port == 5060 else f":{listen.port}"
        for room in config.rooms:
            pin = f", PIN {room.pin}" if room.pin else ""
            moderator = f", moderator PIN {room.moderator_pin}" if room.moderator_pin else ""
            lines.append(f"call sip:{room.extension}@{host}{port} for room {room.id!r}"
                         f"{pin}{moderator}")
        break
    return lines


def check_config(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    listen = ", ".join(str(address) for address in config.sip.listen)
    print(f"{path}: OK: {len(config.rooms)} rooms, {len(config.accounts)} accounts, "
          f"listening on {listen}")
    return 0


def serve(path: Path) -> int:
    from twisted.internet import task  # the reactor is only touched here

    try:
        config = load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    def main(reactor: Any) -> Deferred[None]:
        from bridge.app import Bridge

        bridge = Bridge(reactor, config)
        try:
            bridge.start()
        except Exception as exc:  # noqa: BLE001 - e.g. the SIP port is taken
            log.error("cannot start: %s", exc)
            raise SystemExit(1) from exc
        for line in how_to_call(config):
            log.info("%s", line)
        # What start-up built (config, prompts, codecs, the modules) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it
        # in the middle of a 20 ms tick.
        gc.freeze()
        # `kill -USR1 PID`: log the media clock's timing now (bench/capacity.py uses it).
        signal.signal(signal.SIGUSR1,
                      lambda *_: reactor.callFromThread(bridge.clock.report))
        reactor.addSystemEventTrigger("before", "shutdown", bridge.stop)
        return Deferred()  # runs until the reactor stops (SIGINT/SIGTERM)

    task.react(main)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return serve(args.config)
