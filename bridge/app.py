"""Composition root: build the controller and its edges from a Config. Wiring only."""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import socket
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall

from bridge.conference.media import ROOM_RATE_HZ
from bridge.conference.prompts import PromptLibrary
from bridge.config import Config
from bridge.controller import CallController, RoomRecording
from bridge.net.driver import ControllerDriver
from bridge.net.media_clock import MediaClock
from bridge.net.rtp_udp import RtpPortPool
from bridge.net.sip_tcp import SipTcpFactory, TcpConnections
from bridge.net.sip_udp import SipUdpProtocol, listen_sip_udp
from bridge.prompt_files import load_prompts
from bridge.recording import WavRecording, recording_stem, recover_recordings
from bridge.sip.errors import SipParseError
from bridge.sip.flow import Flow
from bridge.sip.uri import SipUri

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
# How long a stopping bridge waits for its BYEs to be answered.
SHUTDOWN_GRACE_S = 1.0
# How often the trunks' and video gateways' host names are looked up again.
HOST_REFRESH_S = 300.0


class _WavRecording:
    """A room recording dated by the wall clock (the media clock's `now` is not a date),
    finished in a worker thread: its fsyncs take 2-25 ms, more than a tick can spare."""

    def __init__(self, reactor: Any, recording: WavRecording) -> None:
        self._reactor = reactor
        self._recording = recording

    def write(self, samples: NDArray[np.float32]) -> None:
        self._recording.write(samples)

    def note(self, key: str, value: str) -> None:
        self._recording.note(key, value)

    def close(self) -> Path:
        self._reactor.callInThread(self._finish, time.time())
        return self._recording.final_path

    def _finish(self, ended_at: float) -> None:
        try:
            self._recording.close(ended_at)
        except OSError as exc:  # the .part stays; the next start-up recovers it
            log.error("recording %s could not be finished: %s", self._recording.part_path, exc)


class RoomRecorders:
    """Room recordings and hotline reports as WAV files in the configured folders."""

    def __init__(self, reactor: Any, directory: Path, reports_directory: Path) -> None:
        self._reactor = reactor
        self.directory = directory
        self.reports_directory = reports_directory

    def start_report(self, rate_hz: int, metadata: Mapping[str, str]) -> RoomRecording:
        room = metadata.get("room", "hotline")
        return self._open(self.reports_directory, "report", room, rate_hz, metadata)

    def start(self, room_id: str, room_name: str | None) -> RoomRecording:
        metadata = {"room": room_id, "name": room_name or room_id}
        return self._open(self.directory, "meeting", room_id, ROOM_RATE_HZ, metadata)

    def _open(
        self, directory: Path, kind: str, name: str, rate_hz: int, metadata: Mapping[str, str]
    ) -> RoomRecording:
        started_at = time.time()
        return _WavRecording(self._reactor, WavRecording.start(
            directory, recording_stem(kind, name, started_at), rate_hz, metadata, started_at,
        ))


class Bridge:
    """A running telerapat: sockets, media clock and the call controller."""

    def __init__(
        self,
        reactor: Any,  # the Twisted reactor: IReactorTime, IReactorUDP, IReactorTCP
        config: Config,
        prompts: PromptLibrary | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._reactor = reactor
        self.config = config
        rng = rng or random.SystemRandom()
        self._hosts = HostAddresses(_remote_hosts(config))
        self._hosts.refresh_blocking()  # once, before any call or tick: nothing to stall yet
        self._host_refresh = LoopingCall(self._refresh_hosts)
        self._host_refresh.clock = reactor
        self._rtp = RtpPortPool(
            reactor,
            config.rtp.port_min,
            config.rtp.port_max,
            self._rtcp_received,
        )
        self.controller = CallController(
            config,
            prompts or load_prompts(PROMPTS_DIR, ROOM_RATE_HZ),
            self._rtp,
            rng=rng,
            secret=os.urandom(32),
            recorders=RoomRecorders(reactor, config.recording_dir, config.reports_dir),
            wall_clock=datetime.now,
            resolve_host=self._hosts.lookup,
            read_file=Path.read_bytes,
        )
        self._udp: dict[tuple[str, int], SipUdpProtocol] = {}
        self._tcp = TcpConnections()
        self._driver = ControllerDriver(
            reactor, self.controller, self._send_sip, self._rtp.send_many, self._rtp.sweep
        )
        self.clock = MediaClock(reactor, self._driver.tick,
                                report_interval_s=config.rtp.stats_interval_s)
        self._listening: list[IListeningPort] = []

    def start(self) -> None:
        """Finish recordings a crash left behind, listen on every `sip.listen` address and
        start the media clock."""
        for directory in (self.config.recording_dir, self.config.reports_dir):
            for path in recover_recordings(directory, time.time()):
                log.warning("recovered a recording left unfinished: %s", path)
        for listen in self.config.sip.listen:
            if listen.transport == "udp":
                protocol = SipUdpProtocol(listen.host, listen.port, self._driver.sip_received)
                self._udp[(listen.host, listen.port)] = protocol
                port = listen_sip_udp(self._reactor, protocol)
            else:
                factory = SipTcpFactory(self._tcp, self._driver.sip_received)
                port = self._reactor.listenTCP(
                    listen.port, factory, interface=listen.host
                )
            self._listening.append(port)
            log.info("listening for SIP on %s:%s:%d", listen.transport, listen.host, listen.port)
        if self._hosts.names:
            self._host_refresh.start(HOST_REFRESH_S, now=False)
        self._driver.start()
        for path, sdp in self.controller.gateway_sdp_files():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(sdp)
            except OSError as exc:  # the leg still works for a peer told the port otherwise
                log.error("cannot write the SDP file %s: %s", path, exc)
                continue
            log.info("wrote the SDP of a plain RTP leg to %s", path)
        self.clock.start()

    def stop(self) -> Deferred[None]:
        """Hang up every call, give the BYEs a moment, then close the sockets."""
        self._driver.hang_up_all()
        done: Deferred[None] = Deferred()

        if self._host_refresh.running:
            self._host_refresh.stop()

        def close() -> None:
            self.clock.stop()
            for port in self._listening:
                port.stopListening()
            self._rtp.close()
            done.callback(None)

        self._reactor.callLater(SHUTDOWN_GRACE_S, close)
        return done

    def report(self) -> None:
        """Log the media clock's timing, every gateway leg's state and every trunk's
        registration (`kill -USR1`)."""
        self.clock.report()
        for status in self.controller.gateway_statuses():
            log.info("room=%s gateway=%s: %s (%s) since %.0f s", status.room_id, status.leg_id,
                     status.state.value, status.reason, self._reactor.seconds() - status.since)
        for trunk_id, state in self.controller.trunk_states().items():
            log.info("trunk=%s: %s", trunk_id, state.name.lower().replace("_", " "))

    def _refresh_hosts(self) -> Deferred[None]:
        return threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), self._hosts.resolve_all
        ).addCallback(self._hosts.update)

    def _send_sip(self, data: bytes, flow: Flow) -> None:
        if flow.transport == "tcp":
            self._tcp.send(data, flow)
            return
        protocol = self._udp.get(flow.local)
        if protocol is not None:
            protocol.send(data, flow)

    def _rtcp_received(self, port: int, data: bytes, source: tuple[str, int]) -> None:
        self._driver.rtcp_received(port, data, source)


class HostAddresses:
    """The addresses of the trunks' and video gateways' host names, looked up away from
    the media path: once at start, then every HOST_REFRESH_S in a worker thread, so a
    slow or dead resolver never stalls a tick (a dial-out or a registration only reads
    this table). A name that never resolved is an OSError when it is needed."""

    def __init__(self, names: set[str]) -> None:
        self.names = frozenset(names)
        self._addresses: dict[str, str] = {}

    def lookup(self, host: str) -> str:
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            pass
        address = self._addresses.get(host.lower())
        if address is None:
            raise OSError(f"{host} has no address (the resolver gave none)")
        return address

    def refresh_blocking(self) -> None:
        self.update(self.resolve_all())

    def resolve_all(self) -> dict[str, str]:
        """Look every name up with the system resolver (IPv4 first); runs in a thread."""
        found = {}
        for name in self.names:
            try:
                infos = socket.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
            except OSError as exc:
                log.warning("cannot resolve %s: %s", name, exc)
                continue
            infos.sort(key=lambda info: info[0] != socket.AF_INET)
            found[name] = str(infos[0][4][0])
        return found

    def update(self, found: dict[str, str]) -> None:
        """Keep the last good address of a name that failed this time."""
        self._addresses.update(found)


def _remote_hosts(config: Config) -> set[str]:
    """The host names (not addresses) the bridge sends requests to."""
    uris = [trunk.registrar for trunk in config.trunks]
    uris += [uri for room in config.rooms for leg in room.gateways if leg.sip is not None
             for uri in (leg.sip.uri, leg.sip.proxy) if uri is not None]
    names = set()
    for uri in uris:
        try:
            host = SipUri.parse(uri).host.strip("[]").lower()
        except SipParseError:
            continue
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names.add(host)
    return names
