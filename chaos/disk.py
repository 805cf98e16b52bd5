"""Full-disk faults for one server, without a loop device. Two ways, both tried on this machine:

- `FsizeLimit` (works for any process we may signal, no mount, nothing to clean up): lowers
  the *soft* RLIMIT_FSIZE of the running server with prlimit(2). Every write that would make a
  file longer than the limit then fails with EFBIG ("File too large"), a write across it is cut
  short, and overwrites inside a file's current size still succeed: for an append-only log
  that is a full disk, save for the errno (EFBIG, not ENOSPC). Python ignores SIGXFSZ, so the
  server sees the error instead of dying. Only the soft limit is lowered: raising it back
  needs no privilege, while raising a lowered *hard* limit needs CAP_SYS_RESOURCE, which this
  sandbox's root lacks. Caveats: the limit binds every file the process extends, its own log
  file too (send server logs to a pipe), and a restarted process starts unlimited.
- `TmpfsDisk` (root with mount permission, as here; `unshare -rm` gives it unprivileged where
  user namespaces are allowed): the server's data dir is its own tmpfs from the start; fill =
  remount it live with its size shrunk to what is in use (plus `slack_bytes`), heal = remount
  at full size. A real ENOSPC, over the whole directory. The data survives server restarts
  (not machine reboots) and the mount must be removed at the end (`unmount`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

MOUNT_TIMEOUT_S = 10.0
PAGE = os.sysconf("SC_PAGE_SIZE")


class DiskFaultError(RuntimeError):
    """A disk fault could not be put in place or removed."""


class FsizeLimit:
    """Full disk for one running process through its soft RLIMIT_FSIZE."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def fill(self, limit_bytes: int = 0) -> None:
        """From now on the process cannot make any file longer than `limit_bytes`."""
        try:
            _soft, hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (min(limit_bytes, _below(hard)), hard))
        except (OSError, ValueError) as exc:
            raise DiskFaultError(f"cannot limit the file size of pid {self.pid}: {exc}") from exc

    def heal(self) -> None:
        """Back to the hard limit (normally unlimited)."""
        try:
            _soft, hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (hard, hard))
        except ProcessLookupError:
            pass  # the process is gone: nothing to heal (a restart starts unlimited anyway)
        except (OSError, ValueError) as exc:
            raise DiskFaultError(f"cannot lift the file size limit of pid {self.pid}: {exc}") from exc

    def limited(self) -> bool:
        soft, hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
        return soft != hard


def _below(hard: int) -> int:
    return hard if hard != resource.RLIM_INFINITY else 1 << 62


class TmpfsDisk:
    """A size-limited tmpfs mounted at `path` (an empty directory)."""

    def __init__(self, path: Path, size_bytes: int = 256 << 20) -> None:
        self.path = Path(path)
        self.size_bytes = size_bytes
        self.mounted = False

    def mount(self) -> TmpfsDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        if any(self.path.iterdir()):
            raise DiskFaultError(f"{self.path} is not empty: a tmpfs mounted over it would hide its files")
        _mount("-t", "tmpfs", "-o", f"size={self.size_bytes},mode=0700", "tmpfs", str(self.path))
        self.mounted = True
        return self

    def used_bytes(self) -> int:
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def fill(self, slack_bytes: int = 0) -> None:
        """Shrink the tmpfs to what is in use: the next growing write gets ENOSPC."""
        size = max(PAGE, self.used_bytes() + slack_bytes)
        _mount("-o", f"remount,size={size}", str(self.path))

    def heal(self) -> None:
        _mount("-o", f"remount,size={self.size_bytes}", str(self.path))

    def unmount(self) -> None:
        if self.mounted:
            _mount_cmd(["umount", "-l", str(self.path)])
            self.mounted = False

    def __enter__(self) -> TmpfsDisk:
        return self.mount()

    def __exit__(self, *exc_info: object) -> None:
        self.unmount()


def _mount(*args: str) -> None:
    _mount_cmd(["mount", *args])


def _mount_cmd(argv: list[str]) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=MOUNT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiskFaultError(f"{' '.join(argv)}: {exc}") from exc
    if result.returncode != 0:
        raise DiskFaultError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")


def tmpfs_available() -> bool:
    """Can this process mount a tmpfs (root with CAP_SYS_ADMIN, no seccomp block)?"""
    with tempfile.TemporaryDirectory(prefix="ccore-tmpfs-probe-") as d:
        disk = TmpfsDisk(Path(d), size_bytes=PAGE * 4)
        try:
            disk.mount()
        except DiskFaultError:
            return False
        with contextlib.suppress(DiskFaultError):
            disk.unmount()
        return True
