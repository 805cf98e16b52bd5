"""The dynamic config file beside zoo.cfg, as ZooKeeper keeps it: `<zoo.cfg>.dynamic.<hex
version>` holds the server lines, and zoo.cfg names it in `dynamicConfigFile=` and holds none.

A server writes a new file whenever a config becomes active (QuorumPeer.setQuorumVerifier), so
that a restart comes back with the membership it had; older files are kept, as ZooKeeper keeps
them. Both files are replaced atomically and durably (temp file, fsync, rename, fsync the dir).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ccore.znodes.dynconfig import DynamicConfig

from .storage._fsutil import atomic_write

# ZooKeeper's dynamic keywords: only these may be in a dynamic file, and none of them in a
# static file that names one.
DYNAMIC_KEY_PREFIXES = ("server.", "group", "weight")
# Static keys the dynamic config makes redundant, dropped when zoo.cfg is rewritten
# (QuorumPeerConfig.editStaticConfig); clientPort(Address) only once our own line has a client
# address, as it then says the same and a later reconfig could make the two disagree.
_REWRITE_DROPS = ("dynamicConfigFile", "peerType")
_CLIENT_KEYS = ("clientPort", "clientPortAddress")
_HEX = re.compile(r"[0-9a-fA-F]{1,16}")


def version_from_filename(path: Path | str) -> int | None:
    """The version a dynamic file's name carries after its last dot (`zoo.cfg.dynamic.100000000`
    is 0x100000000), None if that is not hexadecimal (QuorumPeerConfig.getVersionFromFilename)."""
    suffix = str(path).rpartition(".")[2]
    return int(suffix, 16) if _HEX.fullmatch(suffix) else None


def dynamic_file_name(static_path: Path, version: int) -> Path:
    return static_path.with_name(f"{static_path.name}.dynamic.{version:x}")


def _key(line: str) -> str:
    stripped = line.strip()
    if not stripped or stripped.startswith(("#", "!")):
        return ""
    return stripped.partition("=")[0].strip()


def is_dynamic_key(key: str) -> bool:
    return key.startswith(DYNAMIC_KEY_PREFIXES)


def write_dynamic_config(static_path: Path, config: DynamicConfig, *, server_id: int | None = None) -> Path:
    """Write `config` as `<static_path>.dynamic.<version hex>` and make `static_path` name it.

    The static file is rewritten without its server lines (and without clientPort and
    clientPortAddress when `server_id`'s own line in `config` has a client address, which then
    says the same), keeping every other line and comment as it was, its permissions too, and
    ending in `dynamicConfigFile=<absolute path>`. The first time (the static file still holds
    server lines) the original is kept as `<static_path>.bak`, as ZooKeeper keeps it. Loading
    `static_path` afterwards gives `config`'s membership and version. Returns the new file's path.
    """
    if config.version is None:
        raise ValueError("the config has no version yet: stamp it with with_version(zxid) first")
    original = static_path.read_bytes()
    mode = stat.S_IMODE(os.stat(static_path).st_mode)
    dynamic = dynamic_file_name(static_path, config.version)
    atomic_write(dynamic, [config.render_file().encode("utf-8")], mode)
    lines = original.decode("utf-8").splitlines()
    if any(is_dynamic_key(_key(line)) for line in lines):
        atomic_write(static_path.with_name(static_path.name + ".bak"), [original], mode)
    own = config.by_id.get(server_id) if server_id is not None else None
    drops = _REWRITE_DROPS + (_CLIENT_KEYS if own is not None and own.client_port is not None else ())
    kept = [line for line in lines if not is_dynamic_key(_key(line)) and _key(line) not in drops]
    kept.append(f"dynamicConfigFile={dynamic.resolve()}")
    atomic_write(static_path, [("\n".join(kept) + "\n").encode("utf-8")], mode)
    return dynamic
