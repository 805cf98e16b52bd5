"""Server configuration: ZooKeeper's zoo.cfg keys, overridable from the command line."""

from __future__ import annotations

from pathlib import Path

import attrs


class ConfigError(ValueError):
    """A configuration that cannot work; the message says which key and what to do."""


@attrs.define
class PeerAddress:
    """One `server.N=host:quorumPort:electionPort[:observer][;clientHost:clientPort]` line."""

    server_id: int
    host: str
    quorum_port: int
    election_port: int
    observer: bool = False
    client_address: str | None = None


@attrs.define
class ServerConfig:
    data_dir: Path = Path("ccore-data")
    client_port: int = 2181
    client_port_address: str = "127.0.0.1"
    tick_time_ms: int = 2000
    min_session_timeout_ms: int | None = None  # default 2 x tickTime
    max_session_timeout_ms: int | None = None  # default 20 x tickTime
    max_client_cnxns: int = 0  # 0: unlimited, per client address
    snap_count: int = 100_000  # transactions between snapshots
    snap_retain_count: int = 3
    container_check_interval_ms: int = 1000
    max_buffer: int = 0xFFFFF  # jute.maxbuffer
    server_id: int = 0
    init_limit: int = 10
    sync_limit: int = 5
    peers: dict[int, PeerAddress] = attrs.Factory(dict)
    # Where to dial a peer instead of its own address (a fault proxy in tests): `dial.N=host:port`.
    dial_overrides: dict[int, tuple[str, int]] = attrs.Factory(dict)

    @property
    def replicated(self) -> bool:
        return bool(self.peers)

    @property
    def min_session_timeout(self) -> int:
        return self.min_session_timeout_ms if self.min_session_timeout_ms is not None else 2 * self.tick_time_ms

    @property
    def max_session_timeout(self) -> int:
        return self.max_session_timeout_ms if self.max_session_timeout_ms is not None else 20 * self.tick_time_ms

    def negotiate_timeout(self, requested_ms: int) -> int:
        """Clamp a client's requested session timeout into [min, max], as ZooKeeper does."""
        return max(self.min_session_timeout, min(requested_ms, self.max_session_timeout))

    def validate(self) -> None:
        if self.tick_time_ms <= 0:
            raise ConfigError(f"tickTime must be positive, got {self.tick_time_ms}")
        if self.min_session_timeout > self.max_session_timeout:
            raise ConfigError(
                f"minSessionTimeout {self.min_session_timeout} is above maxSessionTimeout {self.max_session_timeout}"
            )
        if not 0 <= self.client_port <= 65535:
            raise ConfigError(f"clientPort {self.client_port} is not a port number")


_INT_KEYS = {
    "clientPort": "client_port",
    "tickTime": "tick_time_ms",
    "minSessionTimeout": "min_session_timeout_ms",
    "maxSessionTimeout": "max_session_timeout_ms",
    "maxClientCnxns": "max_client_cnxns",
    "snapCount": "snap_count",
    "autopurge.snapRetainCount": "snap_retain_count",
    "initLimit": "init_limit",
    "syncLimit": "sync_limit",
    "jute.maxbuffer": "max_buffer",
}


def parse_peer(server_id: int, value: str) -> PeerAddress:
    main, _, client = value.partition(";")
    parts = main.strip().split(":")
    if len(parts) < 3:
        raise ConfigError(f"server.{server_id}={value}: expected host:quorumPort:electionPort[:observer]")
    observer = len(parts) > 3 and parts[3] == "observer"
    try:
        return PeerAddress(server_id, parts[0], int(parts[1]), int(parts[2]), observer, client.strip() or None)
    except ValueError:
        raise ConfigError(f"server.{server_id}={value}: ports must be numbers") from None


def load(path: Path) -> ServerConfig:
    """Read a zoo.cfg-style file: `key=value` lines, `#` comments; unknown keys are ignored."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    config = ServerConfig()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise ConfigError(f"{path}:{lineno}: expected key=value, got {line!r}")
        if key in _INT_KEYS:
            try:
                setattr(config, _INT_KEYS[key], int(value))
            except ValueError:
                raise ConfigError(f"{path}:{lineno}: {key} must be a whole number, got {value!r}") from None
        elif key == "dataDir":
            config.data_dir = Path(value)
        elif key == "clientPortAddress":
            config.client_port_address = value
        elif key.startswith("dial."):
            host, _, port = value.rpartition(":")
            config.dial_overrides[int(key.split(".", 1)[1])] = (host, int(port))
        elif key.startswith("server."):
            try:
                sid = int(key.split(".", 1)[1])
            except ValueError:
                raise ConfigError(f"{path}:{lineno}: bad server id in {key!r}") from None
            config.peers[sid] = parse_peer(sid, value)
    if config.peers:
        myid = config.data_dir / "myid"
        try:
            config.server_id = int(myid.read_text().strip())
        except (OSError, ValueError):
            raise ConfigError(f"{path} lists server.N lines but {myid} holds no server id; write the id there") from None
        if config.server_id not in config.peers:
            raise ConfigError(f"{myid} says server {config.server_id}, which no server.N line in {path} names")
        entry = config.peers[config.server_id]
        if entry.client_address:
            host, _, port = entry.client_address.rpartition(":")
            config.client_port = int(port)
            config.client_port_address = host or config.client_port_address
    return config
