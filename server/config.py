"""Server configuration: ZooKeeper's zoo.cfg keys, overridable from the command line."""

from __future__ import annotations

from pathlib import Path

import attrs

from ccore.znodes.dynconfig import DynamicConfig, DynamicConfigError, ServerSpec, parse_server_value

from .dynamic_file import is_dynamic_key, version_from_filename, write_dynamic_config
from .tls_config import TlsSettings, parse_bool

__all__ = ["ConfigError", "PeerAddress", "ServerConfig", "load", "parse_peer", "write_dynamic_config"]

PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
# ZooKeeper's two providers without an endpoint are accepted and mean "no /metrics".
METRICS_PROVIDERS = (
    "",
    PROMETHEUS_PROVIDER,
    "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider",
    "org.apache.zookeeper.metrics.impl.NullMetricsProvider",
)


class ConfigError(ValueError):
    """A configuration that cannot work; the message says which key and what to do."""


# One `server.N=...` line; the parser is ZooKeeper's dynamic config's (znodes/dynconfig.py), so
# that zoo.cfg, dynamic config files and reconfig requests read server lines one way.
PeerAddress = ServerSpec


@attrs.define
class ServerConfig:
    data_dir: Path = Path("ccore-data")
    client_port: int | None = 2181  # None: no plain port (secureClientPort alone)
    client_port_address: str = "127.0.0.1"
    # TLS (ZooKeeper's secureClientPort, ssl.*, sslQuorum and ssl.quorum.* keys; server/tls.py).
    secure_client_port: int | None = None
    secure_client_port_address: str | None = None  # default: clientPortAddress
    client_tls: TlsSettings = attrs.Factory(lambda: TlsSettings("ssl."))
    ssl_quorum: bool = False
    quorum_tls: TlsSettings = attrs.Factory(lambda: TlsSettings("ssl.quorum."))
    tick_time_ms: int = 2000
    min_session_timeout_ms: int | None = None  # default 2 x tickTime
    max_session_timeout_ms: int | None = None  # default 20 x tickTime
    max_client_cnxns: int = 60  # per client address, as ZooKeeper; 0: unlimited
    snap_count: int = 100_000  # transactions between snapshots
    snap_retain_count: int = 3
    # ccore's own (no ZooKeeper name): the largest piece of a SNAP sync's snapshot on the peer
    # link. Tests and chaos runs make it small, so that a small tree's SNAP is a long stream.
    snap_chunk_bytes: int = 1024 * 1024
    container_check_interval_ms: int = 1000
    max_buffer: int = 0xFFFFF  # jute.maxbuffer
    server_id: int = 0
    init_limit: int = 10
    sync_limit: int = 5
    peers: dict[int, PeerAddress] = attrs.Factory(dict)
    # Where to dial a peer instead of its own address (a fault proxy in tests): `dial.N=host:port`.
    dial_overrides: dict[int, tuple[str, int]] = attrs.Factory(dict)
    # Operations endpoints (server/ops.py). The admin server is on by default, as in
    # ZooKeeper, and a port in use is a warning, not a stop (so that servers sharing a machine
    # all start; the first gets 8080). Metrics are off unless a provider is named.
    admin_enabled: bool = True  # admin.enableServer
    admin_port: int = 8080  # admin.serverPort
    admin_address: str = "127.0.0.1"  # admin.serverAddress (ZooKeeper's default: 0.0.0.0)
    # admin.snapshot.enabled: /commands/snapshot hands the whole tree, ACL-protected data too,
    # to whoever asks, without authentication (not built yet). Unset: only on a loopback address.
    admin_snapshot_enabled: bool | None = None
    metrics_provider: str = ""  # metricsProvider.className
    metrics_port: int = 7000  # metricsProvider.httpPort
    metrics_address: str = "127.0.0.1"  # metricsProvider.httpHost (ZooKeeper's default: 0.0.0.0)
    # readonlymode.enabled: a member cut off from its quorum serves reads to read-only clients
    # (server/readonly.py). ZooKeeper reads it only as the Java system property; a zoo.cfg line
    # becomes zookeeper.readonlymode.enabled there, which nothing reads. We take the zoo.cfg key.
    read_only_mode: bool = False
    # Dynamic reconfiguration (server/reconfig.py). reconfigEnabled is off by default, as in
    # ZooKeeper 3.5.3+; standaloneEnabled only sets the floor of participants a reconfig may
    # leave (2 when true, else 1): a one-line ensemble runs as one either way.
    reconfig_enabled: bool = False  # reconfigEnabled
    standalone_enabled: bool = True  # standaloneEnabled
    # DigestAuthenticationProvider.superDigest (`super:<base64 sha1 of super:password>`): a
    # client authenticating with that digest is the super user, whom no ACL refuses.
    super_digest: str | None = None
    skip_acl: bool = False  # skipACL=yes: anyone may reconfig (ZooKeeper skips every ACL check)
    config_file: Path | None = None  # the zoo.cfg this was loaded from (a new dynamic file goes beside it)
    dynamic_config_file: Path | None = None  # dynamicConfigFile: where the server lines were read
    config_version: int = 0  # of the membership: the dynamic file's name gives it, else 0

    @property
    def replicated(self) -> bool:
        return bool(self.peers)

    @property
    def dynamic_config(self) -> DynamicConfig:
        """The membership as ZooKeeper's dynamic config (what /zookeeper/config renders)."""
        return DynamicConfig(self.peers.values(), self.config_version)

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
        if self.client_port is None and self.secure_client_port is None:
            raise ConfigError("no client port: set clientPort, secureClientPort or both")
        for key, port in (("clientPort", self.client_port), ("secureClientPort", self.secure_client_port)):
            if port is not None and not 0 <= port <= 65535:
                raise ConfigError(f"{key} {port} is not a port number")
        if self.client_port and self.client_port == self.secure_client_port:
            raise ConfigError(f"clientPort and secureClientPort are both {self.client_port}; give them different ports")
        if self.snap_chunk_bytes <= 0:
            raise ConfigError(f"snapChunkBytes must be positive, got {self.snap_chunk_bytes}")
        if self.metrics_provider not in METRICS_PROVIDERS:
            raise ConfigError(
                f"metricsProvider.className {self.metrics_provider} is not supported; use {PROMETHEUS_PROVIDER} (or none)"
            )
        for key, port in (("admin.serverPort", self.admin_port), ("metricsProvider.httpPort", self.metrics_port)):
            if not 0 <= port <= 65535:
                raise ConfigError(f"{key} {port} is not a port number")
        if self.max_client_cnxns < 0:
            raise ConfigError(f"maxClientCnxns must be 0 (no limit) or more, got {self.max_client_cnxns}")


_INT_KEYS = {
    "clientPort": "client_port",
    "secureClientPort": "secure_client_port",
    "tickTime": "tick_time_ms",
    "minSessionTimeout": "min_session_timeout_ms",
    "maxSessionTimeout": "max_session_timeout_ms",
    "maxClientCnxns": "max_client_cnxns",
    "snapCount": "snap_count",
    "autopurge.snapRetainCount": "snap_retain_count",
    "snapChunkBytes": "snap_chunk_bytes",
    "initLimit": "init_limit",
    "syncLimit": "sync_limit",
    "jute.maxbuffer": "max_buffer",
    "admin.serverPort": "admin_port",
    "metricsProvider.httpPort": "metrics_port",
}
_STR_KEYS = {
    "admin.serverAddress": "admin_address",
    "metricsProvider.className": "metrics_provider",
    "metricsProvider.httpHost": "metrics_address",
}
_BOOL_KEYS = {
    "admin.enableServer": "admin_enabled",
    "admin.snapshot.enabled": "admin_snapshot_enabled",
    "readonlymode.enabled": "read_only_mode",
    "reconfigEnabled": "reconfig_enabled",
    "standaloneEnabled": "standalone_enabled",
}
# ZooKeeper sets a zoo.cfg key it does not know as the system property `zookeeper.<key>`, which
# is how these two reach the classes that read them; both spellings work in a zoo.cfg there.
_SUPER_DIGEST_KEYS = ("DigestAuthenticationProvider.superDigest", "zookeeper.DigestAuthenticationProvider.superDigest")
_SKIP_ACL_KEYS = ("skipACL", "zookeeper.skipACL")


_ANY_ADDRESS = ("0.0.0.0", "::", "")


def parse_peer(server_id: int, value: str) -> PeerAddress:
    """The value of a zoo.cfg `server.N=` line; ConfigError naming the line if it is wrong."""
    try:
        return parse_server_value(server_id, value)
    except DynamicConfigError as e:
        raise ConfigError(str(e)) from None


def load(path: Path) -> ServerConfig:
    """Read a zoo.cfg-style file: `key=value` lines, `#` comments; unknown keys are ignored."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    config = ServerConfig()
    explicit: set[str] = set()  # keys the file sets
    dynamic_lines: list[tuple[str, str, str]] = []  # (where, key, value) of server.N lines
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise ConfigError(f"{path}:{lineno}: expected key=value, got {line!r}")
        explicit.add(key)
        if key in _INT_KEYS:
            try:
                setattr(config, _INT_KEYS[key], int(value))
            except ValueError:
                raise ConfigError(f"{path}:{lineno}: {key} must be a whole number, got {value!r}") from None
        elif key == "dataDir":
            config.data_dir = Path(value)
        elif key == "clientPortAddress":
            config.client_port_address = value
        elif key in _STR_KEYS:
            setattr(config, _STR_KEYS[key], value)
        elif key in _BOOL_KEYS:
            if value.lower() not in ("true", "false"):
                raise ConfigError(f"{path}:{lineno}: {key} must be true or false, got {value!r}")
            setattr(config, _BOOL_KEYS[key], value.lower() == "true")
        elif key == "secureClientPortAddress":
            config.secure_client_port_address = value
        elif key == "sslQuorum" or key.startswith("ssl."):
            _tls_key(config, key, value, f"{path}:{lineno}")
        elif key.startswith("dial."):
            dial_host, _, dial_port = value.rpartition(":")
            config.dial_overrides[int(key.split(".", 1)[1])] = (dial_host, int(dial_port))
        elif key in _SUPER_DIGEST_KEYS:
            if ":" not in value:
                raise ConfigError(f"{path}:{lineno}: {key} must be super:<base64 sha1 digest of super:password>, got {value!r}")
            config.super_digest = value
        elif key in _SKIP_ACL_KEYS:
            if value not in ("yes", "no"):
                raise ConfigError(f"{path}:{lineno}: {key} must be yes or no, got {value!r}")
            config.skip_acl = value == "yes"
        elif key == "dynamicConfigFile":
            config.dynamic_config_file = Path(value)
        elif is_dynamic_key(key):
            dynamic_lines.append((f"{path}:{lineno}", key, value))
    config.config_file = path
    if config.dynamic_config_file is not None:
        if dynamic_lines:
            where, key, _ = dynamic_lines[0]
            raise ConfigError(f"{where}: {key} must be in the dynamic config file {config.dynamic_config_file}, not here")
        dynamic_lines, config.config_version = _read_dynamic_file(config.dynamic_config_file)
    for where, key, value in dynamic_lines:
        if not key.startswith("server."):
            raise ConfigError(f"{where}: {key}: hierarchical quorums (group/weight) are not supported")
        try:
            sid = int(key.split(".", 1)[1])
        except ValueError:
            raise ConfigError(f"{where}: bad server id in {key!r}") from None
        if sid in config.peers:
            raise ConfigError(f"{where}: server.{sid} is listed twice")
        config.peers[sid] = parse_peer(sid, value)
    own_client_address = False
    if config.peers:
        myid = config.data_dir / "myid"
        try:
            config.server_id = int(myid.read_text().strip())
        except (OSError, ValueError):
            raise ConfigError(f"{path} lists server.N lines but {myid} holds no server id; write the id there") from None
        if config.server_id not in config.peers:
            listing = config.dynamic_config_file or path
            raise ConfigError(f"{myid} says server {config.server_id}, which no server.N line in {listing} names")
        entry = config.peers[config.server_id]
        if entry.client_address is not None:
            # The client address after `;` on our own line wins; clientPort and
            # clientPortAddress may repeat it but not contradict it (as in ZooKeeper).
            host, port = entry.client_address
            contradicts = []
            if "clientPort" in explicit and config.client_port != port:
                contradicts.append(f"clientPort={config.client_port}")
            if "clientPortAddress" in explicit and config.client_port_address not in (host, *_ANY_ADDRESS):
                contradicts.append(f"clientPortAddress={config.client_port_address}")
            if contradicts:
                raise ConfigError(
                    f"{path}: {' and '.join(contradicts)} contradict the client address {host}:{port} of "
                    f"server.{config.server_id} (after ';'); remove one or make them agree"
                )
            config.client_port_address, config.client_port = host, port
            own_client_address = True
    if "secureClientPort" in explicit and "clientPort" not in explicit and not own_client_address:
        config.client_port = None  # TLS alone, as ZooKeeper does when clientPort is not given
    return config


def _read_dynamic_file(path: Path) -> tuple[list[tuple[str, str, str]], int]:
    """The server lines of a dynamic config file and the version its name carries (0 if none),
    as QuorumPeerConfig reads them: only dynamic keys, and no version inside."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read the dynamic config file {path} (dynamicConfigFile): {e.strerror}") from None
    found: list[tuple[str, str, str]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise ConfigError(f"{path}:{lineno}: expected key=value, got {line!r}")
        if key == "version":
            raise ConfigError(f"{path}:{lineno}: a dynamic config file holds no version (its name carries it); remove the line")
        if not is_dynamic_key(key):
            raise ConfigError(
                f"{path}:{lineno}: {key} does not belong in a dynamic config file (only server.N lines); move it to zoo.cfg"
            )
        found.append((f"{path}:{lineno}", key, value))
    version = version_from_filename(path)
    return found, version if version is not None else 0


def _tls_key(config: ServerConfig, key: str, value: str, where: str) -> None:
    """`sslQuorum`, `ssl.quorum.*` and `ssl.*` keys; their files are read later (server/tls.py)."""
    try:
        if key == "sslQuorum":
            config.ssl_quorum = parse_bool(key, value)
        elif key.startswith("ssl.quorum."):
            config.quorum_tls.set(key.removeprefix("ssl.quorum."), value)
        else:
            config.client_tls.set(key.removeprefix("ssl."), value)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
