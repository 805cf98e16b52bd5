"""ACLs as ZooKeeper keeps them: ids, digests, validation of new ACLs and permission checks."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence

import attrs

from .constants import Perms
from .errors import InvalidACLError, NoAuthError


@attrs.frozen(slots=True)
class Id:
    """An identity: a scheme (world, auth, digest, ip, super) and an id within it."""

    scheme: str
    id: str


@attrs.frozen(slots=True)
class ACL:
    """Permission bits granted to an `Id`."""

    perms: int
    id: Id


ANYONE = Id("world", "anyone")
AUTH_IDS = Id("auth", "")
OPEN_ACL_UNSAFE: tuple[ACL, ...] = (ACL(int(Perms.ALL), ANYONE),)
CREATOR_ALL_ACL: tuple[ACL, ...] = (ACL(int(Perms.ALL), AUTH_IDS),)
READ_ACL_UNSAFE: tuple[ACL, ...] = (ACL(int(Perms.READ), ANYONE),)
# The super user's identity: every ACL check passes for a session that holds it.
SUPER = Id("super", "")


def digest(user_password: str) -> str:
    """`user:password` -> `user:base64(sha1(user:password))`, ZooKeeper's digest id."""
    user = user_password.split(":", 1)[0]
    sha = hashlib.sha1(user_password.encode("utf-8")).digest()
    return user + ":" + base64.b64encode(sha).decode("ascii")


def digest_identities(user_password: str, super_digest: str | None = None) -> tuple[Id, ...]:
    """What a `digest` auth packet proves (DigestAuthenticationProvider): its digest id, with
    SUPER first when that id equals the server's superDigest (`super:<base64 sha1>`)."""
    identity = Id("digest", digest(user_password))
    if super_digest is not None and identity.id == super_digest:
        return (SUPER, identity)
    return (identity,)


def make_digest_acl(user: str, password: str, perms: int = Perms.ALL) -> ACL:
    return ACL(int(perms), Id("digest", digest(f"{user}:{password}")))


def _java_split(text: str, sep: str) -> list[str]:
    # Java's String.split drops trailing empty strings; ZooKeeper's checks rely on that.
    parts = text.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _ip_network(expr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    addr, _, bits = expr.partition("/")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if not bits:
        return ipaddress.ip_network(ip)
    if not bits.isdigit() or int(bits) > ip.max_prefixlen:
        return None
    return ipaddress.ip_network(f"{ip}/{bits}", strict=False)


def _valid_id(id_: Id) -> bool:
    if id_.scheme == "digest":
        return len(_java_split(id_.id, ":")) == 2
    if id_.scheme == "ip":
        return _ip_network(id_.id) is not None
    if id_.scheme == "world":
        return id_.id == "anyone"
    if id_.scheme == "super":
        return True
    return False


def _matches(scheme: str, auth_id: str, acl_id: str) -> bool:
    if scheme == "ip":
        net = _ip_network(acl_id)
        try:
            return net is not None and ipaddress.ip_address(auth_id) in net
        except ValueError:
            return False
    return auth_id == acl_id


def fixup_acl(path: str, auth: Sequence[Id], acl: Iterable[ACL]) -> tuple[ACL, ...]:
    """Validate a new node's ACL and expand `auth` entries into the caller's identities.

    Raises InvalidACLError as ZooKeeper's PrepRequestProcessor.fixupACL does: for an empty
    list, an unknown scheme, a malformed id, or an `auth` entry from an unauthenticated caller.
    """
    unique: list[ACL] = []
    for a in acl:
        if a not in unique:
            unique.append(a)
    if not unique:
        raise InvalidACLError(path)
    out: list[ACL] = []
    for a in unique:
        if a.id.scheme == "world" and a.id.id == "anyone":
            out.append(a)
        elif a.id.scheme == "auth":
            # Only authenticated schemes count (digest): not the ip id every connection carries.
            ids = [i for i in auth if i.scheme == "digest"]
            if not ids:
                raise InvalidACLError(path)
            out.extend(ACL(a.perms, i) for i in ids)
        elif _valid_id(a.id) and a.id.scheme != "super":
            out.append(a)
        else:
            raise InvalidACLError(path)
    return tuple(out)


def check(path: str, acl: Sequence[ACL], perm: int, auth: Sequence[Id]) -> None:
    """Raise NoAuthError unless `auth` grants `perm` on a node with `acl`."""
    if not acl:
        return
    for i in auth:
        if i.scheme == "super":
            return
    for a in acl:
        if not a.perms & perm:
            continue
        if a.id.scheme == "world" and a.id.id == "anyone":
            return
        for i in auth:
            if i.scheme == a.id.scheme and _matches(i.scheme, i.id, a.id.id):
                return
    raise NoAuthError(path)
