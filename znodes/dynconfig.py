"""ZooKeeper's dynamic configuration as data: `server.N` lines, the text of /zookeeper/config,
and the changes a reconfig makes to it (incremental and bulk), with ZooKeeper's validation.

Parsing and rendering follow QuorumPeer.QuorumServer and QuorumMaj (ZooKeeper 3.5+):

    server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]

is rendered back as `host:quorumPort:electionPort:role[;clientHost:clientPort]` (the role is
always written, a client port alone gets the host 0.0.0.0, IPv6 hosts go in brackets), one
line per server by id, then `version=<hex>` (no 0x, no newline after it). Pure: no files, no
name resolution; hosts are compared as written.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import attrs

from .errors import BadArgumentsError

Role = Literal["participant", "observer"]
ROLES: tuple[Role, ...] = ("participant", "observer")
ANY_HOST = "0.0.0.0"  # a client port given without a host listens on every interface
SERVER_LINE = "server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]"
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_HEX = re.compile(r"[0-9a-fA-F]{1,16}")  # Long.parseLong(v, 16): no 0x, no underscores


class DynamicConfigError(ValueError):
    """A server line or config text ZooKeeper would refuse; the message names it and says why."""


def _valid_port(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and not 0 <= value <= 65535:
        raise DynamicConfigError(f"{attribute.name} {value} is not a port number")


@attrs.frozen
class ServerSpec:
    """One member of the ensemble, as its `server.N` line says. `client_host`/`client_port`
    are None when the line has no `;client` part (the server then takes clientPort from its
    static config, and the line is rendered without one, as ZooKeeper does)."""

    id: int
    host: str
    quorum_port: int = attrs.field(validator=_valid_port)
    election_port: int = attrs.field(validator=_valid_port)
    role: Role = attrs.field(default="participant", validator=attrs.validators.in_(ROLES))
    client_host: str | None = None
    client_port: int | None = attrs.field(default=None, validator=_valid_port)

    def __attrs_post_init__(self) -> None:
        if (self.client_host is None) != (self.client_port is None):
            raise DynamicConfigError(f"server.{self.id}: a client address needs both a host and a port")

    # The names server/config.py's PeerAddress had, kept for the modules that use them.
    @property
    def server_id(self) -> int:
        return self.id

    @property
    def observer(self) -> bool:
        return self.role == "observer"

    @property
    def client_address(self) -> tuple[str, int] | None:
        if self.client_host is None or self.client_port is None:
            return None
        return (self.client_host, self.client_port)

    def value(self) -> str:
        """The part after `server.N=`, exactly as QuorumServer.toString writes it."""
        text = f"{_bracket(self.host)}:{self.quorum_port}:{self.election_port}:{self.role}"
        if self.client_host is not None:
            text += f";{_bracket(self.client_host)}:{self.client_port}"
        return text

    def render(self) -> str:
        return f"server.{self.id}={self.value()}"

    def addresses(self) -> list[tuple[str, int]]:
        """Every address this server listens on (quorum, election, client)."""
        found = [(self.host, self.quorum_port), (self.host, self.election_port)]
        if self.client_host is not None and self.client_port is not None:
            found.append((self.client_host, self.client_port))
        return found

    @classmethod
    def parse(cls, server_id: int, value: str) -> ServerSpec:
        """The value of a `server.N=` line (what follows the `=`)."""
        return parse_server_value(server_id, value)


def _bracket(host: str) -> str:
    # QuorumServer.delimitedHostString: an IPv6 literal is written [host] so its colons read.
    return f"[{host}]" if ":" in host else host


def _java_split(text: str, sep: str) -> list[str]:
    # Java's String.split drops trailing empty strings: `h:1:2;` has no client part.
    parts = text.split(sep)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


def _host_and_rest(text: str) -> list[str]:
    """`host:a:b` or `[v6 address]:a:b` split into [host, a, b] (ZooKeeper's getHostAndPort)."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("an IPv6 address must be written [address]")
        return [host, *rest[1:].split(":")] if rest else [host]
    return text.split(":")


def _port(text: str) -> int:
    port = int(text.strip())
    if not 0 <= port <= 65535:
        raise ValueError(f"{port} is not a port number")
    return port


def parse_server_value(server_id: int, value: str) -> ServerSpec:
    """Parse what follows `server.N=`; raise DynamicConfigError naming the line and the fault."""
    line = f"server.{server_id}={value}"
    expected = f"{line}: expected {SERVER_LINE.removeprefix('server.N=')}"
    main, *client = _java_split(value, ";")
    if len(client) > 1:
        raise DynamicConfigError(f"{expected} (a secure client port after a second ';' is not supported)")
    if "|" in main:
        raise DynamicConfigError(f"{line}: several addresses for one server (a|b) are not supported; give one")
    try:
        parts = _host_and_rest(main)
    except ValueError as e:
        raise DynamicConfigError(f"{line}: {e}") from None
    if not 3 <= len(parts) <= 4 or not parts[0].strip():
        raise DynamicConfigError(expected)
    role: Role = "participant"
    if len(parts) == 4:
        given = parts[3].strip().lower()
        if given == "observer":
            role = "observer"
        elif given != "participant":
            raise DynamicConfigError(f"{line}: unknown role {parts[3]!r}; use participant or observer")
    client_parts: list[str] = []
    if client and client[0].strip():
        try:
            client_parts = _host_and_rest(client[0])
        except ValueError as e:
            raise DynamicConfigError(f"{line}: {e}") from None
        if len(client_parts) > 2 or not client_parts[0].strip():
            raise DynamicConfigError(expected)
    try:
        quorum_port, election_port = _port(parts[1]), _port(parts[2])
        client_port = _port(client_parts[-1]) if client_parts else None
    except ValueError as e:
        raise DynamicConfigError(f"{line}: ports must be numbers ({e})") from None
    if quorum_port == election_port:
        # QuorumServer refuses this too: one port cannot serve both listeners.
        raise DynamicConfigError(f"{line}: the quorum and election ports must differ")
    client_host = (client_parts[0].strip() if len(client_parts) == 2 else ANY_HOST) if client_parts else None
    return ServerSpec(server_id, parts[0].strip(), quorum_port, election_port, role, client_host, client_port)


def parse_server_id(key: str, line: str) -> int:
    """The N of a `server.N` key (or of the bare `N` the reconfig API also accepts)."""
    text = key.strip()
    number = text.removeprefix("server.") if text.startswith("server.") else text
    try:
        server_id = int(number)
    except ValueError:
        raise DynamicConfigError(f"{line}: bad server id in {text!r}; write server.N=... with a number N") from None
    if server_id < 0:
        raise DynamicConfigError(f"{line}: server id {server_id} is negative")
    return server_id


def parse_server_line(line: str, *, shorthand: bool = False) -> ServerSpec:
    """`server.N=...` (and `N=...` with `shorthand`, as incremental reconfig accepts)."""
    key, sep, value = line.partition("=")
    if not sep or "=" in value or not value.strip():
        raise DynamicConfigError(f"{line}: expected {SERVER_LINE}")
    if not shorthand and not key.strip().startswith("server."):
        raise DynamicConfigError(f"{line}: expected {SERVER_LINE}")
    return parse_server_value(parse_server_id(key, line), value.strip())


def _sorted_unique(servers: Iterable[ServerSpec]) -> tuple[ServerSpec, ...]:
    ordered = tuple(sorted(servers, key=lambda s: s.id))
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.id == b.id:
            raise DynamicConfigError(f"server.{a.id} is listed twice")
    return ordered


@attrs.frozen
class DynamicConfig:
    """A membership and its version (the zxid of the reconfig that made it; 0 for a config
    no leader has stamped yet, None for a planned one its reconfig has not stamped)."""

    servers: tuple[ServerSpec, ...] = attrs.field(converter=_sorted_unique)
    version: int | None = 0

    @property
    def by_id(self) -> dict[int, ServerSpec]:
        return {s.id: s for s in self.servers}

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(s.id for s in self.servers)

    @property
    def voters(self) -> frozenset[int]:
        return frozenset(s.id for s in self.servers if s.role == "participant")

    @property
    def observers(self) -> frozenset[int]:
        return frozenset(s.id for s in self.servers if s.role == "observer")

    def with_version(self, version: int) -> DynamicConfig:
        return attrs.evolve(self, version=version)

    def render(self) -> str:
        """The text of /zookeeper/config (QuorumMaj.toString): server lines, then the version."""
        if self.version is None:
            raise ValueError("a planned config has no version yet: stamp it with with_version(zxid) first")
        lines = [s.render() for s in self.servers]
        lines.append(f"version={self.version:x}")
        return "\n".join(lines)

    def render_file(self) -> str:
        """The dynamic config file's text (QuorumPeerConfig.writeDynamicConfig): the server lines
        sorted as strings, no version (the file name carries it), no newline after the last."""
        return "\n".join(sorted(s.render() for s in self.servers))

    def client_addresses(self) -> list[tuple[str, int]] | None:
        """Where clients reach the members, in id order, for a connection string. A client host
        0.0.0.0 (or ::) means "every interface of that server", so the server's own host stands
        for it. None when a member's address cannot be told (a wildcard on both sides: that
        server's own view of itself); members without a client port are left out."""
        found: list[tuple[str, int]] = []
        for s in self.servers:
            if s.client_host is None or s.client_port is None:
                continue
            host = s.client_host if s.client_host not in _WILDCARDS else s.host
            if host in _WILDCARDS:
                return None
            found.append((host, s.client_port))
        return found

    @classmethod
    def parse(cls, text: str) -> DynamicConfig:
        """The text of /zookeeper/config (or of a dynamic config file, whose version is 0 here:
        the caller takes it from the file name). `#` and `!` comment lines and blank lines are
        skipped, as java.util.Properties does."""
        servers: list[ServerSpec] = []
        version = 0
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", "!")):
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep:
                raise DynamicConfigError(f"{line}: expected key=value")
            if key == "version":
                if not _HEX.fullmatch(value.strip()):
                    raise DynamicConfigError(f"{line}: the version must be hexadecimal (no 0x)")
                version = int(value.strip(), 16)
            elif key.startswith("server."):
                servers.append(parse_server_value(parse_server_id(key, line), value.strip()))
            elif key.startswith(("group", "weight")):
                raise DynamicConfigError(f"{line}: hierarchical quorums (group/weight) are not supported")
            else:
                raise DynamicConfigError(f"{line}: unrecognised parameter {key!r} (only server.N and version)")
        return cls(servers, version)


# --- changes a reconfig makes ------------------------------------------------------------------


def _bad(message: str) -> BadArgumentsError:
    return BadArgumentsError(None, message)


def split_list(text: str | Sequence[str] | None) -> list[str] | None:
    """A reconfig argument as ZooKeeper's StringUtils.split reads it: comma-separated, each
    item trimmed, empty items dropped; a list is joined first. None stays None (not given)."""
    if text is None:
        return None
    joined = text if isinstance(text, str) else ",".join(text)
    return [item.strip() for item in joined.split(",") if item.strip()]


def _comparable(host: str) -> bool:
    """Whether ZooKeeper compares an address for duplicates: not a wildcard, not loopback
    (checkAddressDuplicate leaves those out; several servers on one machine share them)."""
    if host in _WILDCARDS or host == "localhost":
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return True  # a host name, compared as written (this module resolves nothing)
    return not (ip.is_loopback or ip.is_unspecified)


def _check_duplicates(joiner: ServerSpec, others: Iterable[ServerSpec]) -> None:
    mine = [a for a in joiner.addresses() if _comparable(a[0])]
    for other in others:
        if other.id == joiner.id:
            continue
        for theirs in other.addresses():
            if theirs in mine:
                host, port = theirs
                raise _bad(f"{_bracket(host)}:{port} of server.{joiner.id} conflicts with the same address of server.{other.id}")


def incremental(
    current: DynamicConfig, joining: str | Sequence[str] | None, leaving: str | Sequence[str] | None
) -> DynamicConfig:
    """The servers after an incremental reconfig (PrepRequestProcessor): `leaving` ids are
    removed first (an unknown id is no error), then each `joining` server is added or, if its
    id is present, replaced (how a role or a port changes). A joiner must give a client port
    and may not reuse another member's address. The result has no version yet."""
    servers = current.by_id
    for item in split_list(leaving) or []:
        try:
            sid = parse_server_id(item, f"leaving {item}")
        except DynamicConfigError as e:
            raise _bad(str(e)) from None
        servers.pop(sid, None)
    for item in split_list(joining) or []:
        try:
            spec = parse_server_line(item, shorthand=True)
        except DynamicConfigError as e:
            raise _bad(str(e)) from None
        if spec.client_port is None:
            raise _bad(f"{item}: a joining server needs its client port (after ';'), as in server.N=host:2888:3888;2181")
        _check_duplicates(spec, servers.values())
        servers[spec.id] = spec
    return DynamicConfig(servers.values(), None)


def bulk(new_members: str | Sequence[str]) -> DynamicConfig:
    """The servers of a non-incremental reconfig: `server.N=...` lines separated by commas or
    newlines (a `version=` line is allowed and ignored, the reconfig's zxid replaces it). The
    result has no version yet."""
    text = new_members if isinstance(new_members, str) else ",".join(new_members)
    try:
        parsed = DynamicConfig.parse(text.replace(",", "\n"))
    except DynamicConfigError as e:
        raise _bad(str(e)) from None
    return DynamicConfig(parsed.servers, None)


def check_participants(config: DynamicConfig, *, standalone_enabled: bool) -> None:
    """ZooKeeper's floor on voters: 2 when standaloneEnabled (one voter alone would have to run
    the standalone server, which cannot grow), else 1."""
    needed = 2 if standalone_enabled else 1
    if len(config.voters) < needed:
        why = " (standaloneEnabled=true; set it to false to allow one)" if standalone_enabled else ""
        raise _bad(
            f"a configuration needs at least {needed} participant{'s' if needed > 1 else ''}{why}, this one has {len(config.voters)}"
        )
