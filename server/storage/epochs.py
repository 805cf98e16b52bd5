"""Small durable integer files: Zab's `accepted_epoch` and `current_epoch`.

Each file holds one decimal number and a newline (as in ZooKeeper, readable with `cat`),
replaced atomically: temp file, write, fsync, rename, directory fsync. So a reader sees the
old value or the new one, never a torn write; anything else in the file is damage.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ._fsutil import TMP_SUFFIX, atomic_write
from .errors import CorruptEpochError

log = logging.getLogger(__name__)

MAX_EPOCH = (1 << 32) - 1  # the high half of a zxid
_VALUE = re.compile(rb"(0|[1-9][0-9]{0,9})\n")


class EpochFile:
    """One epoch number stored in `path`; `read()` returns `default` while the file is absent."""

    def __init__(self, path: Path, default: int = 0) -> None:
        self.path = Path(path)
        self.default = default
        tmp = self.path.with_name(self.path.name + TMP_SUFFIX)
        if tmp.exists():
            log.info("epoch file %s: removing %s left by an interrupted write", self.path, tmp.name)
            tmp.unlink()

    def read(self) -> int:
        """The stored epoch, or the default if the file does not exist."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return self.default
        match = _VALUE.fullmatch(data)
        if not match or int(match.group(1)) > MAX_EPOCH:
            shown = data[:40]
            raise CorruptEpochError(
                f"epoch file {self.path} holds {shown!r}, not an epoch number; "
                f"restore it from a backup or resync this server (move the data dir aside)"
            )
        return int(match.group(1))

    def write(self, epoch: int) -> None:
        """Store `epoch` durably; when this returns the new value survives a crash."""
        if not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
            raise ValueError(f"epoch {epoch!r} must be an integer in [0, {MAX_EPOCH}]")
        atomic_write(self.path, [f"{epoch}\n".encode()])

    def __repr__(self) -> str:
        return f"EpochFile({str(self.path)!r})"
