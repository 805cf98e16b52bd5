"""ACLs and authentication: digest auth, permission checks per operation (and which check wins
when several would fail), `auth` expansion, invalid ACLs, masked digests in getACL, whoAmI."""

from __future__ import annotations

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.security import (
    ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)

from tests.compat.helpers import wait_until
from tests.compat.rawzk import ClientInfo, KPathRequest, KWhoAmI, Op, kazoo_call

WORLD = Id("world", "anyone")
ALICE_DIGEST = make_digest_acl_credential("alice", "secret")  # "alice:<base64 sha1>"
ALICE_ALL = ACL(Permissions.ALL, Id("digest", ALICE_DIGEST))


def world(perms: int) -> ACL:
    return ACL(perms, WORLD)


@pytest.fixture
def alice(kazoo_factory):
    return kazoo_factory(auth_data=[("digest", "alice:secret")])


@pytest.fixture
def anon(kazoo_factory):
    return kazoo_factory()


def test_default_acl_is_open(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/a")
    acls, stat = kazoo_client.get_acls(f"{zk_root}/a")
    assert acls == [world(Permissions.ALL)]
    assert stat.aversion == 0


def test_digest_acl_roundtrip_and_denials(alice, anon, zk_root):
    alice.create(f"{zk_root}/secret", b"s", acl=[make_digest_acl("alice", "secret", all=True)])
    assert alice.get(f"{zk_root}/secret")[0] == b"s"
    with pytest.raises(NoAuthError):
        anon.get(f"{zk_root}/secret")
    with pytest.raises(NoAuthError):
        anon.set(f"{zk_root}/secret", b"x")
    with pytest.raises(NoAuthError):
        anon.get_children(f"{zk_root}/secret")
    with pytest.raises(NoAuthError):
        anon.create(f"{zk_root}/secret/child")
    with pytest.raises(NoAuthError):
        anon.set_acls(f"{zk_root}/secret", OPEN_ACL_UNSAFE)
    with pytest.raises(NoAuthError):
        anon.get_acls(f"{zk_root}/secret")
    # exists checks no ACL in the reference server (3.8.0; ZOOKEEPER-2590 made 3.8.4+/3.9.2+
    # answer NoAuth here)
    assert anon.exists(f"{zk_root}/secret").dataLength == 1


def test_add_auth_later_grants_access(anon, alice, zk_root):
    alice.create(f"{zk_root}/secret", b"s", acl=[ALICE_ALL])
    with pytest.raises(NoAuthError):
        anon.get(f"{zk_root}/secret")
    anon.add_auth("digest", "alice:secret")
    assert anon.get(f"{zk_root}/secret")[0] == b"s"


def test_wrong_password_is_just_another_identity(anon, alice, zk_root):
    alice.create(f"{zk_root}/secret", b"s", acl=[ALICE_ALL])
    anon.add_auth("digest", "alice:wrong")  # digest auth never fails; it yields a different id
    with pytest.raises(NoAuthError):
        anon.get(f"{zk_root}/secret")


def test_delete_needs_delete_on_parent_not_on_node(alice, anon, zk_root):
    alice.create(f"{zk_root}/locked", acl=[world(Permissions.READ), ALICE_ALL])
    anon.delete(f"{zk_root}/locked")  # the parent is open: allowed
    assert anon.exists(f"{zk_root}/locked") is None

    alice.create(f"{zk_root}/nodelete", acl=[world(Permissions.ALL & ~Permissions.DELETE), ALICE_ALL])
    alice.create(f"{zk_root}/nodelete/child")
    with pytest.raises(NoAuthError):
        anon.delete(f"{zk_root}/nodelete/child")
    # NoAuth on the parent is checked before the child's existence and version
    with pytest.raises(NoAuthError):
        anon.delete(f"{zk_root}/nodelete/missing")
    with pytest.raises(NoAuthError):
        anon.delete(f"{zk_root}/nodelete/child", version=42)
    alice.delete(f"{zk_root}/nodelete/child")


def test_create_needs_create_on_parent_checked_before_node_exists(alice, anon, zk_root):
    alice.create(f"{zk_root}/nocreate", acl=[world(Permissions.ALL & ~Permissions.CREATE), ALICE_ALL])
    alice.create(f"{zk_root}/nocreate/x")
    with pytest.raises(NoAuthError):
        anon.create(f"{zk_root}/nocreate/y")
    with pytest.raises(NoAuthError):  # not NodeExists
        anon.create(f"{zk_root}/nocreate/x")
    with pytest.raises(NoAuthError):
        anon.create(f"{zk_root}/nocreate/s-", sequence=True)
    with pytest.raises(NoNodeError):  # a missing parent is reported first
        anon.create(f"{zk_root}/nocreate/missing/y")
    with pytest.raises(NodeExistsError):
        alice.create(f"{zk_root}/nocreate/x")


def test_read_permission(alice, anon, zk_root):
    alice.create(f"{zk_root}/noread", b"d", acl=[world(Permissions.ALL & ~Permissions.READ), ALICE_ALL])
    alice.create(f"{zk_root}/noread/c")
    for call in (
        lambda: anon.get(f"{zk_root}/noread"),
        lambda: anon.get_children(f"{zk_root}/noread"),
        lambda: anon.get_children(f"{zk_root}/noread", include_data=True),
        lambda: kazoo_call(anon, KPathRequest(Op.getAllChildrenNumber, f"{zk_root}/noread")),
    ):
        with pytest.raises(NoAuthError):
            call()
    assert anon.exists(f"{zk_root}/noread") is not None
    anon.sync(f"{zk_root}/noread")  # sync checks nothing
    # WRITE without READ is fine
    assert anon.set(f"{zk_root}/noread", b"w").version == 1
    # getACL needs READ or ADMIN: ADMIN is enough
    acls, _ = anon.get_acls(f"{zk_root}/noread")
    assert world(Permissions.ALL & ~Permissions.READ) in acls


def test_check_op_needs_read(alice, anon, zk_root):
    alice.create(f"{zk_root}/noread", acl=[world(Permissions.ALL & ~Permissions.READ), ALICE_ALL])
    tx = anon.transaction()
    tx.check(f"{zk_root}/noread", 0)
    assert [type(r) for r in tx.commit()] == [NoAuthError]


def test_write_permission_checked_before_version(alice, anon, zk_root):
    alice.create(f"{zk_root}/ro", acl=[world(Permissions.READ), ALICE_ALL])
    with pytest.raises(NoAuthError):
        anon.set(f"{zk_root}/ro", b"x")
    with pytest.raises(NoAuthError):  # not BadVersion
        anon.set(f"{zk_root}/ro", b"x", version=9)
    with pytest.raises(BadVersionError):
        alice.set(f"{zk_root}/ro", b"x", version=9)


def test_admin_permission_for_set_acls(alice, anon, zk_root):
    alice.create(f"{zk_root}/noadmin", acl=[world(Permissions.ALL & ~Permissions.ADMIN)])
    with pytest.raises(NoAuthError):
        anon.set_acls(f"{zk_root}/noadmin", OPEN_ACL_UNSAFE)
    with pytest.raises(NoAuthError):  # the creator has no special rights
        alice.set_acls(f"{zk_root}/noadmin", OPEN_ACL_UNSAFE)
    acls, _ = anon.get_acls(f"{zk_root}/noadmin")  # READ is enough to read the ACL
    assert acls == [world(Permissions.ALL & ~Permissions.ADMIN)]


def test_get_acls_masks_digests_without_admin(alice, anon, zk_root):
    alice.create(f"{zk_root}/n", acl=[world(Permissions.READ), ALICE_ALL])
    acls, _ = anon.get_acls(f"{zk_root}/n")
    assert acls == [world(Permissions.READ), ACL(Permissions.ALL, Id("digest", "alice:x"))]
    acls, _ = alice.get_acls(f"{zk_root}/n")
    assert acls == [world(Permissions.READ), ALICE_ALL]


def test_set_acls_versioned(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/a")
    stat = kazoo_client.set_acls(f"{zk_root}/a", READ_ACL_UNSAFE + [world(Permissions.ADMIN)], version=0)
    assert stat.aversion == 1 and stat.version == 0
    with pytest.raises(BadVersionError):
        kazoo_client.set_acls(f"{zk_root}/a", OPEN_ACL_UNSAFE, version=0)
    assert kazoo_client.set_acls(f"{zk_root}/a", OPEN_ACL_UNSAFE, version=1).aversion == 2
    assert kazoo_client.get_acls(f"{zk_root}/a")[0] == OPEN_ACL_UNSAFE
    with pytest.raises(NoNodeError):
        kazoo_client.set_acls(f"{zk_root}/missing", OPEN_ACL_UNSAFE)
    with pytest.raises(NoNodeError):
        kazoo_client.get_acls(f"{zk_root}/missing")


def test_set_acls_does_not_touch_mzxid_or_fire_data_watch(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/a")
    before = kazoo_client.exists(f"{zk_root}/a")
    fired = []
    kazoo_client.get(f"{zk_root}/a", watch=fired.append)
    after = kazoo_client.set_acls(f"{zk_root}/a", READ_ACL_UNSAFE + [world(Permissions.ADMIN)])
    assert (after.mzxid, after.version, after.mtime) == (before.mzxid, before.version, before.mtime)
    kazoo_client.sync(zk_root)
    assert fired == []


def test_auth_scheme_expands_to_every_digest_identity(kazoo_factory, zk_root):
    client = kazoo_factory(auth_data=[("digest", "alice:secret"), ("digest", "bob:pw")])
    client.create(f"{zk_root}/a", acl=[ACL(Permissions.ALL, Id("auth", "ignored"))])
    acls, _ = client.get_acls(f"{zk_root}/a")
    assert sorted(acls) == sorted(
        [
            ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("alice", "secret"))),
            ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("bob", "pw"))),
        ]
    )


def test_auth_scheme_without_authentication_is_invalid_acl(kazoo_client, zk_root):
    with pytest.raises(InvalidACLError):
        kazoo_client.create(f"{zk_root}/a", acl=[ACL(Permissions.ALL, Id("auth", ""))])


def test_duplicate_acl_entries_are_removed(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/a", acl=[world(Permissions.ALL), world(Permissions.ALL)])
    assert kazoo_client.get_acls(f"{zk_root}/a")[0] == [world(Permissions.ALL)]


@pytest.mark.parametrize(
    "acl",
    [
        [ACL(Permissions.ALL, Id("nosuchscheme", "x"))],
        [ACL(Permissions.ALL, Id("world", "bob"))],
        [ACL(Permissions.ALL, Id("digest", "no-colon"))],
        [ACL(Permissions.ALL, Id("ip", "not-an-ip"))],
    ],
    ids=["unknown-scheme", "world-not-anyone", "digest-without-colon", "bad-ip"],
)
def test_invalid_acl(kazoo_client, zk_root, acl):
    with pytest.raises(InvalidACLError):
        kazoo_client.create(f"{zk_root}/a", acl=acl)
    kazoo_client.create(f"{zk_root}/b")
    with pytest.raises(InvalidACLError):
        kazoo_client.set_acls(f"{zk_root}/b", acl)


def test_empty_acl_is_invalid(raw_factory, zk_root):
    """kazoo replaces an empty ACL list with its default, so send it raw."""
    raw = raw_factory()
    with pytest.raises(InvalidACLError):
        raw.create(f"{zk_root}/a", acl=[])
    raw.create(f"{zk_root}/b")
    with pytest.raises(InvalidACLError):
        raw.set_acl(f"{zk_root}/b", [])


def test_invalid_acl_is_checked_before_parent_and_permissions(alice, anon, zk_root):
    bad = [ACL(Permissions.ALL, Id("nosuchscheme", "x"))]
    with pytest.raises(InvalidACLError):  # parent missing, but the ACL is judged first
        anon.create(f"{zk_root}/missing/a", acl=bad)
    alice.create(f"{zk_root}/ro", acl=[world(Permissions.READ), ALICE_ALL])
    with pytest.raises(InvalidACLError):  # no CREATE permission, but the ACL is judged first
        anon.create(f"{zk_root}/ro/a", acl=bad)
    with pytest.raises(InvalidACLError):  # no ADMIN permission, but the ACL is judged first
        anon.set_acls(f"{zk_root}/ro", bad)


def test_valid_unusual_acls(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/ip", acl=[make_acl("ip", "127.0.0.1", all=True)])
    kazoo_client.create(f"{zk_root}/cidr", acl=[make_acl("ip", "10.0.0.0/8", all=True)])
    kazoo_client.get(f"{zk_root}/ip")  # we connect from 127.0.0.1
    with pytest.raises(NoAuthError):
        kazoo_client.get(f"{zk_root}/cidr")
    kazoo_client.create(f"{zk_root}/none", acl=[world(0)])
    with pytest.raises(NoAuthError):
        kazoo_client.get(f"{zk_root}/none")
    kazoo_client.delete(f"{zk_root}/none")  # the parent's DELETE is what counts


def test_unknown_auth_scheme_fails_authentication(kazoo_factory):
    client = kazoo_factory()
    with pytest.raises(AuthFailedError):
        client.add_auth("nosuchscheme", "whatever")


def test_who_am_i(kazoo_factory):
    anon = kazoo_factory()
    assert kazoo_call(anon, KWhoAmI()) == [ClientInfo("ip", "127.0.0.1")]
    client = kazoo_factory(auth_data=[("digest", "alice:secret")])
    client.add_auth("digest", "bob:pw")
    client.add_auth("digest", "bob:pw")  # the same identity twice is kept once
    assert sorted(kazoo_call(client, KWhoAmI())) == [
        ClientInfo("digest", "alice"),
        ClientInfo("digest", "bob"),
        ClientInfo("ip", "127.0.0.1"),
    ]


def test_children_of_protected_node_can_be_open(alice, anon, zk_root):
    """ACLs are not inherited."""
    alice.create(f"{zk_root}/p", acl=[ALICE_ALL])
    alice.create(f"{zk_root}/p/open", b"o")
    assert anon.get(f"{zk_root}/p/open")[0] == b"o"
    with pytest.raises(NoAuthError):
        anon.get_children(f"{zk_root}/p")
    alice.delete(f"{zk_root}/p/open")
    alice.delete(f"{zk_root}/p")


def test_not_empty_vs_noauth_on_delete(alice, anon, zk_root):
    alice.create(f"{zk_root}/p", acl=[world(Permissions.READ | Permissions.CREATE), ALICE_ALL])
    alice.create(f"{zk_root}/p/c")
    with pytest.raises(NotEmptyError):  # the parent of /p is open; /p's own ACL is irrelevant
        anon.delete(f"{zk_root}/p")
    alice.delete(f"{zk_root}/p/c")
    anon.delete(f"{zk_root}/p")
    wait_until(lambda: anon.exists(f"{zk_root}/p") is None, 5)
