"""ZooKeeper path rules: validation, parent/name split, and the reserved /zookeeper subtree."""

from __future__ import annotations

import re

ROOT = "/"
ZOOKEEPER = "/zookeeper"
QUOTA = "/zookeeper/quota"
CONFIG = "/zookeeper/config"


# The characters PathUtils.validatePath refuses: controls, C1 controls, surrogates and the
# private-use area, the specials block, and (as Java holds them as surrogate pairs) every
# character beyond the BMP. One compiled class: paths are checked on every request.
_BAD_CHARS = re.compile("[\u0001-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff\U00010000-\U0010ffff]")


def path_error(path: object, sequential: bool = False) -> str | None:
    """Why `path` is not a valid znode path, or None when it is.

    A sequential create's path is checked with a digit appended, so `/a/` is a valid prefix.
    """
    if not isinstance(path, str):
        return "path must be a string"
    if sequential:
        path = path + "1"
    if not path:
        return "path length must be > 0"
    if path[0] != "/":
        return "path must start with / character"
    if len(path) == 1:
        return None
    if path[-1] == "/":
        return "path must not end with / character"
    if "\0" in path:
        return "null character not allowed"
    for name in path[1:].split("/"):
        if not name:
            return "empty node name specified"
        if name in (".", ".."):
            return "relative paths not allowed"
    bad = _BAD_CHARS.search(path)
    if bad is not None:
        return f"invalid character \\u{ord(bad.group()):04x}"
    return None


def is_valid(path: object, sequential: bool = False) -> bool:
    return path_error(path, sequential) is None


def split(path: str) -> tuple[str, str]:
    """`/a/b` -> (`/a`, `b`); `/a` -> (`/`, `a`). The root has no parent."""
    i = path.rindex("/")
    return (path[:i] or ROOT, path[i + 1 :])


def parent(path: str) -> str:
    return split(path)[0]


def join(parent_path: str, name: str) -> str:
    return parent_path + name if parent_path == ROOT else parent_path + "/" + name


def ancestors(path: str) -> list[str]:
    """Every proper ancestor of `path`, nearest first, ending with the root."""
    out = []
    while path != ROOT:
        path = parent(path)
        out.append(path)
    return out


def is_reserved(path: str) -> bool:
    """True for /zookeeper and everything below it (ZooKeeper's special paths)."""
    return path == ZOOKEEPER or path.startswith(ZOOKEEPER + "/")
