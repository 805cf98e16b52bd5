"""ZooKeeper connection strings: `h1:2181,h2:2181,[::1]:2181/optional/chroot`."""

from __future__ import annotations

import attrs

from ccore.znodes.dynconfig import DynamicConfig, DynamicConfigError
from ccore.znodes.paths import path_error

from .errors import InvalidArgumentError

DEFAULT_PORT = 2181


@attrs.frozen
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@attrs.frozen
class ConnectString:
    hosts: tuple[HostPort, ...]
    chroot: str | None

    def __str__(self) -> str:
        return ",".join(map(str, self.hosts)) + (self.chroot or "")


def _parse_host(item: str, text: str) -> HostPort:
    item = item.strip()
    if not item:
        raise InvalidArgumentError(None, f"empty host in connection string {text!r}")
    if item.startswith("["):  # [ipv6]:port
        end = item.find("]")
        if end < 0:
            raise InvalidArgumentError(None, f"unclosed '[' in host {item!r}")
        host, rest = item[1:end], item[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
        if port_text is None:
            raise InvalidArgumentError(None, f"bad host {item!r}")
    elif item.count(":") == 1:
        host, port_text = item.split(":")
    elif ":" in item:  # a bare IPv6 address
        host, port_text = item, ""
    else:
        host, port_text = item, ""
    if not host:
        raise InvalidArgumentError(None, f"empty host name in {item!r}")
    if not port_text:
        return HostPort(host, DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidArgumentError(None, f"bad port in host {item!r}")
    return HostPort(host, int(port_text))


def normalize_chroot(chroot: str | None) -> str | None:
    """A validated chroot; None for no chroot (or "/"). Like ZooKeeper's ConnectStringParser,
    a trailing slash is an error except for the lone "/"."""
    if chroot is None or chroot in ("", "/"):
        return None
    why = path_error(chroot)
    if why:
        raise InvalidArgumentError(chroot, f"invalid chroot ({why})")
    return chroot


def parse(text: str) -> ConnectString:
    """Parse a connection string; raise InvalidArgumentError (a ValueError) on nonsense."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError(None, f"empty connection string {text!r}")
    text = text.strip()
    slash = text.find("/")
    chroot = normalize_chroot(text[slash:]) if slash >= 0 else None
    host_part = text[:slash] if slash >= 0 else text
    hosts = tuple(_parse_host(item, text) for item in host_part.split(","))
    return ConnectString(hosts, chroot)


def hosts_from_config(data: bytes) -> tuple[int, list[HostPort]] | None:
    """The version and client addresses of /zookeeper/config's text, for a host list; None
    when it names none a client could use (no client ports, a member known only by a wildcard,
    not a config at all: a standalone server's is empty)."""
    try:
        config = DynamicConfig.parse(data.decode("utf-8"))
    except (UnicodeDecodeError, DynamicConfigError):
        return None
    addresses = config.client_addresses()
    if not addresses:
        return None
    return config.version or 0, [HostPort(host, port) for host, port in addresses]
