"""Every operation of the Trio client, against our server and Apache ZooKeeper."""

from __future__ import annotations

import anyio
import pytest

from ccore.client import (
    ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    GetChildren,
    GetData,
    Id,
    InvalidArgumentError,
    Perms,
    Stat,
    connect,
    make_digest_acl,
)
from ccore.znodes.errors import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RuntimeInconsistencyError,
)
from tests.polling import wait_for

# Every async test on Trio and on asyncio (see tests/client/conftest.py).
pytestmark = pytest.mark.anyio


async def test_create_get_set_delete(zk):
    assert await zk.create("/a", b"one") == "/a"
    data, stat = await zk.get("/a")
    assert data == b"one" and isinstance(stat, Stat) and stat.version == 0 and stat.dataLength == 3
    stat2 = await zk.set("/a", b"two")
    assert stat2.version == 1 and stat2.mzxid > stat.mzxid
    assert (await zk.get("/a"))[0] == b"two"
    with pytest.raises(BadVersionError) as e:
        await zk.set("/a", b"x", version=0)
    assert e.value.path == "/a"
    with pytest.raises(BadVersionError):
        await zk.delete("/a", version=0)
    await zk.delete("/a", version=1)
    assert await zk.exists("/a") is None
    with pytest.raises(NoNodeError, match="/a"):
        await zk.get("/a")
    with pytest.raises(NoNodeError):
        await zk.delete("/a")


async def test_create_variants(zk):
    with pytest.raises(NodeExistsError):
        await zk.create("/")
    path, stat = await zk.create("/e", b"x", ephemeral=True, include_stat=True)
    assert path == "/e" and stat.ephemeralOwner == zk.session_id
    s1 = await zk.create("/seq-", sequence=True)
    s2 = await zk.create("/seq-", sequence=True, ephemeral=True)
    assert s1 == "/seq-0000000001" and s2 == "/seq-0000000002"
    assert sorted(await zk.ephemerals("/")) == sorted(["/e", s2])
    assert await zk.create("/deep/er/node", b"v", make_parents=True) == "/deep/er/node"
    assert await zk.children("/deep") == ["er"]
    with pytest.raises(NoNodeError):
        await zk.create("/missing/child")
    null_path = await zk.create("/null", None)
    assert (await zk.get(null_path))[0] == b""
    with pytest.raises(NodeExistsError):
        await zk.create("/e")


async def test_container_and_ttl(zk, server_kind):
    await zk.create("/c", container=True)
    await zk.create("/c/child")
    assert (await zk.exists("/c")).ephemeralOwner == 0  # Apache shows no container marker
    await zk.delete("/c/child")
    path, stat = await zk.create("/ttl", b"t", ttl=0.5, include_stat=True)
    assert path == "/ttl" and stat.ephemeralOwner == 0

    async def both_gone() -> bool:
        return await zk.exists("/c") is None and await zk.exists("/ttl") is None

    await wait_for(both_gone, timeout_s=10, interval_s=0.1)  # both servers check containers and TTLs about every second


async def test_exists_children_stat(zk):
    assert await zk.exists("/p") is None
    await zk.create("/p", b"")
    for name in ("x", "y", "z"):
        await zk.create(f"/p/{name}")
    assert sorted(await zk.children("/p")) == ["x", "y", "z"]
    children, stat = await zk.children("/p", include_stat=True)
    assert sorted(children) == ["x", "y", "z"] and stat.numChildren == 3 and stat.cversion == 3
    assert (await zk.exists("/p")).numChildren == 3
    assert await zk.descendant_count("/p") == 3
    with pytest.raises(NoNodeError):
        await zk.children("/nope")


async def test_recursive_delete_and_ensure_path(zk):
    await zk.ensure_path("/r/a/b/c")
    await zk.ensure_path("/r/a/b/c")  # idempotent
    for i in range(20):
        await zk.create(f"/r/a/n{i}", b"x")
    with pytest.raises(NotEmptyError):
        await zk.delete("/r")
    await zk.delete("/r", recursive=True)
    assert await zk.exists("/r") is None
    await zk.delete("/r", recursive=True)  # a missing node is fine without a version


async def test_transactions(zk):
    await zk.create("/t", b"0")
    results = await zk.transaction().create("/t/a", b"a").set("/t", b"1", version=0).check("/t", 1).delete("/t/a").commit()
    assert results[0] == "/t/a" and isinstance(results[1], Stat) and results[1].version == 1
    assert results[2:] == [None, None]
    with pytest.raises(NodeExistsError) as e:
        await zk.transaction().create("/t/b").create("/t").set("/t", b"2").commit()
    assert e.value.op_index == 1
    assert e.value.op_errors[0] is None and isinstance(e.value.op_errors[2], RuntimeInconsistencyError)
    assert await zk.exists("/t/b") is None  # nothing applied
    assert await zk.transaction().commit() == []


async def test_multi_read(zk):
    await zk.create("/m", b"data")
    await zk.create("/m/k")
    out = await zk.multi_read([GetData("/m"), GetChildren("/m"), GetData("/missing")])
    assert out[0][0] == b"data" and out[0][1].numChildren == 1
    assert out[1] == ["k"]
    assert isinstance(out[2], NoNodeError)


async def test_sync_and_whoami(zk):
    await zk.sync("/")
    assert await zk.whoami() == [] or all(info.auth_scheme for info in await zk.whoami())


async def test_acl_and_digest_auth(hosts, zk):
    acl = [make_digest_acl("alice", "secret", Perms.ALL), READ_ACL_UNSAFE[0]]
    await zk.create("/secure", b"s", acl=acl)
    with pytest.raises(NoAuthError):
        await zk.set("/secure", b"x")
    await zk.add_auth("digest", "alice:secret")
    got, stat = await zk.get_acl("/secure")
    assert set(got) == set(acl) and stat.aversion == 0
    await zk.set("/secure", b"x")
    assert any(i.user == "alice" for i in await zk.whoami())
    stat = await zk.set_acl("/secure", OPEN_ACL_UNSAFE, version=0)
    assert stat.aversion == 1
    with pytest.raises(InvalidACLError):
        await zk.create("/bad", acl=[ACL(int(Perms.ALL), Id("nosuch", "x"))])
    # Credentials given at connect time are sent on every (re)connection.
    async with connect(hosts, chroot=zk.chroot, auth=[("digest", "bob:pw")]) as bob:
        await bob.create("/bob", acl=[make_digest_acl("bob", "pw")])
        assert (await bob.get("/bob"))[0] == b""
    with pytest.raises(NoAuthError):
        await zk.get("/bob")


async def test_get_acl_hides_digests_without_admin(zk):
    """ZooKeeper (3.6+) shows `user:x` for digest ids to a reader without ADMIN on the node."""
    acl = [make_digest_acl("alice", "secret", Perms.ALL), READ_ACL_UNSAFE[0]]
    await zk.create("/secure", b"s", acl=acl)
    got, _ = await zk.get_acl("/secure")
    assert set(got) == {ACL(int(Perms.ALL), Id("digest", "alice:x")), READ_ACL_UNSAFE[0]}


async def test_auth_with_unknown_scheme_fails(hosts):
    with anyio.fail_after(15), pytest.raises(AuthFailedError):
        async with connect(hosts, auth=[("nosuchscheme", "x")]):
            pass


async def test_chroot(hosts, zk):
    root = zk.chroot
    assert root and root.startswith("/client-test-")
    await zk.create("/inside", b"1")
    async with connect(hosts) as plain:
        assert (await plain.get(f"{root}/inside"))[0] == b"1"
    async with connect(hosts + root) as via_string:
        assert await via_string.children("/") == ["inside"]
        assert await via_string.create("/s-", sequence=True) == "/s-0000000001"
        *_, watch = await via_string.get("/inside", watch=True)
        await zk.set("/inside", b"2")
        with anyio.fail_after(5):
            assert (await watch).path == "/inside"


async def test_invalid_arguments_raise_before_sending(zk):
    sent_before = zk._session.core._xid
    for bad in ("", "a", "/a/", "/a//b", "/a/./b", "/a/../b", "/a\x00b", None):
        with pytest.raises(InvalidArgumentError):
            await zk.get(bad)
    with pytest.raises(InvalidArgumentError):
        await zk.create("/x/", b"")  # only a sequential create may end in /
    with pytest.raises(TypeError):
        await zk.create("/x", "text")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        await zk.create("/x", container=True, ephemeral=True)
    with pytest.raises(InvalidArgumentError):
        await zk.create("/x", ttl=1, ephemeral=True)
    with pytest.raises(InvalidArgumentError):
        await zk.create("/x", acl=[])
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError too
        await zk.set("/a/", b"")
    assert zk._session.core._xid == sent_before


async def test_read_only_flag_is_accepted_by_a_read_write_server(hosts):
    async with connect(hosts, read_only=True) as zk:
        assert not zk.server_read_only and await zk.exists("/") is not None
