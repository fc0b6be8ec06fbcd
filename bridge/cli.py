"""The command line: `telerapat serve [--config FILE]`, `telerapat check-config FILE` and
`telerapat reports [--config FILE] list|export` (the hotline's recorded reports)."""

from __future__ import annotations

import argparse
import gc
import logging
import resource
import signal
import sys
from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

from bridge.config import Config, ConfigError, load_config
from bridge.reports import Report, export_reports, list_reports, report_json, report_table

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
    reports = commands.add_parser("reports", help="list or export the hotline's recorded reports")
    reports.add_argument("--config", type=Path, default=DEFAULT_CONFIG, metavar="FILE",
                         help=f"YAML config naming the reports folder (default: {DEFAULT_CONFIG})")
    actions = reports.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="print one line per report, oldest first")
    listing.add_argument("--json", action="store_true", help="print one JSON object per line")
    export = actions.add_parser("export", help="write the reports and an index.csv to a zip")
    export.add_argument("--output", type=Path, required=True, metavar="FILE.zip")
    for action in (listing, export):
        action.add_argument("--since", type=_day, metavar="YYYY-MM-DD",
                            help="only reports started on or after this day (local time)")
    return parser


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-23") from None


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
            if room.mode == "hotline":
                lines.append(f"call sip:{room.extension}@{host}{port} for hotline {room.id!r} "
                             f"(no PIN); operators: sip:{room.operator_extension}@{host}{port}"
                             f", PIN {room.moderator_pin}")
                continue
            pin = f", PIN {room.pin}" if room.pin else ""
            moderator = f", moderator PIN {room.moderator_pin}" if room.moderator_pin else ""
            lines.append(f"call sip:{room.extension}@{host}{port} for room {room.id!r}"
                         f"{pin}{moderator}")
        break
    return lines


def _load_or_explain(path: Path) -> Config | None:
    """Load a config, or print every problem (file, line, field) and return None."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)
    return None


def check_config(path: Path) -> int:
    config = _load_or_explain(path)
    if config is None:
        return 1
    listen = ", ".join(str(address) for address in config.sip.listen)
    legs = sum(len(room.gateways) for room in config.rooms)
    extra = "".join(f"{count} {what}, " for count, what in (
        (len(config.trunks), "trunks"), (legs, "gateway legs")) if count)
    print(f"{path}: OK: {len(config.rooms)} rooms, {len(config.accounts)} accounts, "
          f"{extra}listening on {listen}")
    return 0


def list_reports_command(path: Path, *, since: date | None, as_json: bool) -> int:
    """Print the reports of the config's reports folder as a table or as JSON lines."""
    found = _find_reports(path, since)
    if found is None:
        return 1
    reports, where = found
    if not reports:
        # On stderr under --json, so that stdout stays JSON lines (here none).
        print(f"no reports in {where}", file=sys.stderr if as_json else sys.stdout)
    elif as_json:
        print("\n".join(report_json(report) for report in reports))
    else:
        print("\n".join(report_table(reports)))
    return 0


def export_reports_command(path: Path, *, since: date | None, output: Path) -> int:
    """Zip the reports of the config's reports folder into `output`; say how many went in."""
    found = _find_reports(path, since)
    if found is None:
        return 1
    reports, where = found
    if not reports:
        print(f"no reports in {where}; {output} not written")
        return 0
    try:
        export_reports(reports, output)
    except OSError as exc:
        print(f"{output}: cannot export: {exc.strerror or exc}", file=sys.stderr)
        return 1
    count = f"{len(reports)} report" + ("" if len(reports) == 1 else "s")
    print(f"exported {count} from {where} to {output}")
    return 0


def _find_reports(path: Path, since: date | None) -> tuple[list[Report], str] | None:
    """Return the reports (started on `since` or later) and where they were looked for.

    None after printing why the config cannot be used, as check-config does.
    """
    config = _load_or_explain(path)
    if config is None:
        return None
    directory = config.reports_dir
    reports = list_reports(directory)
    if since is None:
        return reports, str(directory)
    local_midnight = datetime.combine(since, time()).astimezone()
    recent = [report for report in reports if report.started_at >= local_midnight]
    return recent, f"{directory} since {since}"


def serve(path: Path) -> int:
    from twisted.internet import task  # the reactor is only touched here

    config = _load_or_explain(path)
    if config is None:
        return 1

    _raise_open_file_limit()

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
        # `kill -USR1 PID`: log the media clock's timing now (bench/capacity.py uses it),
        # and the state of every gateway leg and trunk registration.
        signal.signal(signal.SIGUSR1, lambda *_: reactor.callFromThread(bridge.report))
        reactor.addSystemEventTrigger("before", "shutdown", bridge.stop)
        return Deferred()  # runs until the reactor stops (SIGINT/SIGTERM)

    task.react(main)
    return 0


def _raise_open_file_limit() -> None:
    """Open files up to the hard limit: a member holds three sockets (RTP twice, RTCP),
    and the usual soft limit of 1,024 would stop a bridge at about 330 members."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 16
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("open files stay at %d (cannot raise to %d: %s)", soft, wanted, exc)
            return
        soft = wanted
    log.info("open files: up to %d (about %d members)", soft, soft // 3)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "reports":
        # A report whose files cannot all be read is still listed; say why on stderr.
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
        if args.action == "list":
            return list_reports_command(args.config, since=args.since, as_json=args.json)
        return export_reports_command(args.config, since=args.since, output=args.output)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return serve(args.config)
