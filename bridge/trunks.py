"""Registrations to upstream SIP trunks, and who may call the bridge.

Each configured trunk gets one `RegistrationClient` (REGISTER with digest auth, refresh
before expiry, backoff after failures). This module pumps their requests out through the
SIP core and their answers back in, and logs every change of state. It also holds the
rule for new calls: with `sip.allow_from` set, only those networks and the trunks'
own addresses may place calls or register. Sans-I/O: addresses come in resolved, time
as `now`.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bridge.config import Config, TrunkConfig
from bridge.sip.auth import ClientCredentials
from bridge.sip.flow import Flow
from bridge.sip.message import Request, Response, response_to
from bridge.sip.registration import (
    RegistrationClient,
    RegistrationSettings,
    RegistrationState,
)
from bridge.sip.uri import SipUri

log = logging.getLogger(__name__)

DEFAULT_SIP_PORT = 5060

# (request, flow, now) -> the branch of the client transaction the core started for it
SendRequest = Callable[[Request, Flow, float], str]


@dataclass(eq=False)
class _Trunk:
    config: TrunkConfig
    client: RegistrationClient
    local: tuple[str, int]


def next_hop(uri: str, resolve_host: Callable[[str], str]) -> tuple[str, int]:
    """The address a request to `uri` goes to: its host resolved, its port or 5060.

    (RFC 3263's NAPTR and SRV lookups are not done: trunks and video gateways are given
    by address or A record in the config.)
    """
    parsed = SipUri.parse(uri)
    return resolve_host(parsed.host.strip("[]")), parsed.port or DEFAULT_SIP_PORT


class Trunks:
    """The bridge's registrations, and its rule on who may call it."""

    def __init__(
        self,
        config: Config,
        local: tuple[str, int] | None,
        resolve_host: Callable[[str], str],
        *,
        rng: random.Random,
    ) -> None:
        """`local` is the UDP listen address REGISTERs leave from (None: no UDP listener,
        which the config refuses when trunks are configured)."""
        self._trunks: list[_Trunk] = []
        self._branches: dict[str, _Trunk] = {}
        self._allow_from = config.sip.allow_from
        self._trunk_hosts: set[str] = set()
        self._resolve_host = resolve_host
        if not config.trunks:
            return
        if local is None:
            raise ValueError("trunks need a udp entry in sip.listen")
        advertised = config.sip.external_address or local[0]
        host = f"[{advertised}]" if ":" in advertised else advertised
        for trunk in config.trunks:
            try:
                self._trunk_hosts.add(next_hop(trunk.registrar, resolve_host)[0])
            except (OSError, ValueError) as exc:  # registering retries it, with backoff
                log.warning("trunk=%s: cannot resolve %s yet: %s", trunk.id, trunk.registrar,
                            exc)
            settings = RegistrationSettings(
                registrar_uri=trunk.registrar,
                aor=trunk.aor,
                contact=f"sip:{trunk.contact_user}@{host}:{local[1]}",
                credentials=ClientCredentials(trunk.username, trunk.password),
                expires_s=trunk.expires_s,
                retry_base_s=trunk.retry_min_s,
                retry_max_s=trunk.retry_max_s,
            )
            client = RegistrationClient(
                settings, rng=rng, call_id=f"{rng.getrandbits(64):016x}@{advertised}",
                from_tag=f"{rng.getrandbits(32):08x}",
            )
            self._trunks.append(_Trunk(trunk, client, local))

    # -- who may call -----------------------------------------------------------------

    def allows(self, host: str) -> bool:
        """Whether a call or registration from `host` is taken (see `sip.allow_from`)."""
        if self._allow_from is None or host in self._trunk_hosts:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._allow_from)

    def is_trunk(self, host: str) -> bool:
        """Whether `host` is one of the trunks' registrars (its calls are not challenged)."""
        return host in self._trunk_hosts

    # -- registrations ------------------------------------------------------------------

    def start(self, now: float, send: SendRequest) -> None:
        for trunk in self._trunks:
            trunk.client.start(now)
        self._pump(now, send)

    def stop(self, now: float, send: SendRequest) -> None:
        """Unregister everywhere (a graceful shutdown)."""
        for trunk in self._trunks:
            trunk.client.stop(now)
        self._pump(now, send)

    def receive_response(
        self, branch: str, response: Response, now: float, send: SendRequest
    ) -> bool:
        """Hand a final response to the registration that sent the request; False when the
        branch is not one of ours."""
        trunk = self._branches.pop(branch, None)
        if trunk is None:
            return False
        trunk.client.receive_response(response, now)
        self._pump(now, send)
        return True

    def handle_timer(self, now: float, send: SendRequest) -> None:
        for trunk in self._trunks:
            deadline = trunk.client.next_deadline()
            if deadline is not None and deadline <= now:
                trunk.client.handle_timer(now)
        self._pump(now, send)

    def next_deadline(self) -> float | None:
        deadlines = [d for t in self._trunks if (d := t.client.next_deadline()) is not None]
        return min(deadlines, default=None)

    def states(self) -> Mapping[str, RegistrationState]:
        """Each trunk's registration state, by trunk id."""
        return {trunk.config.id: trunk.client.state for trunk in self._trunks}

    def _pump(self, now: float, send: SendRequest) -> None:
        for trunk in self._trunks:
            while requests := trunk.client.requests_to_send():
                for request in requests:
                    try:  # looked up each time: the trunk may have moved, or come back
                        remote = next_hop(trunk.config.registrar, self._resolve_host)
                    except (OSError, ValueError) as exc:
                        # A failed registration, retried with the client's backoff.
                        trunk.client.receive_response(
                            response_to(request, 503, f"cannot resolve: {exc}"), now)
                        continue
                    self._trunk_hosts.add(remote[0])
                    flow = Flow("udp", *trunk.local, *remote)
                    self._branches[send(request, flow, now)] = trunk
            while (event := trunk.client.next_event()) is not None:
                level = logging.WARNING if event.state is RegistrationState.RETRY_WAIT else (
                    logging.INFO)
                log.log(level, "trunk=%s: registration %s: %s", trunk.config.id,
                        event.state.name.lower().replace("_", " "), event.reason)
