"""kazoo against a server (Apache and ours): every data operation, its results, Stat fields
and the exact exception for each failure."""

from __future__ import annotations

import time

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import OPEN_ACL_UNSAFE

from tests.compat.helpers import wait_until
from tests.compat.rawzk import (
    CreateFlag,
    KCreate,
    KMulti,
    KPathRequest,
    Op,
    kazoo_call,
    multi_create,
)


def test_create_get_roundtrip(kazoo_client, zk_root):
    path = kazoo_client.create(f"{zk_root}/a", b"hello")
    assert path == f"{zk_root}/a"
    data, stat = kazoo_client.get(path)
    assert data == b"hello"
    assert stat.version == 0 and stat.cversion == 0 and stat.aversion == 0
    assert stat.dataLength == 5 and stat.numChildren == 0
    assert stat.ephemeralOwner == 0
    assert stat.czxid == stat.mzxid == stat.pzxid > 0
    assert stat.ctime == stat.mtime > 0


def test_create_empty_and_none_data(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/empty", b"")
    data, stat = kazoo_client.get(f"{zk_root}/empty")
    assert data == b"" and stat.dataLength == 0


def test_create_binary_data_preserved(kazoo_client, zk_root):
    blob = bytes(range(256)) * 40
    kazoo_client.create(f"{zk_root}/bin", blob)
    data, stat = kazoo_client.get(f"{zk_root}/bin")
    assert data == blob and stat.dataLength == len(blob)


def test_create_existing_raises_node_exists(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/a")
    with pytest.raises(NodeExistsError):
        kazoo_client.create(f"{zk_root}/a")


def test_create_without_parent_raises_no_node(kazoo_client, zk_root):
    with pytest.raises(NoNodeError):
        kazoo_client.create(f"{zk_root}/missing/child")


def test_create_makepath(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/x/y/z", b"deep", makepath=True)
    assert kazoo_client.get(f"{zk_root}/x/y/z")[0] == b"deep"
    assert kazoo_client.get(f"{zk_root}/x")[0] == b""


def test_create_root_raises_node_exists(kazoo_client):
    with pytest.raises(NodeExistsError):
        kazoo_client.create("/")


def test_parent_stat_after_create(kazoo_client, zk_root):
    before = kazoo_client.exists(zk_root)
    kazoo_client.create(f"{zk_root}/a")
    after = kazoo_client.exists(zk_root)
    child = kazoo_client.exists(f"{zk_root}/a")
    assert after.cversion == before.cversion + 1
    assert after.numChildren == before.numChildren + 1
    assert after.pzxid == child.czxid
    # a child's creation changes neither the parent's data version nor its mzxid
    assert after.version == before.version and after.mzxid == before.mzxid


def test_sequential_names(kazoo_client, zk_root):
    first = kazoo_client.create(f"{zk_root}/s-", sequence=True)
    second = kazoo_client.create(f"{zk_root}/s-", sequence=True)
    assert first == f"{zk_root}/s-0000000000"
    assert second == f"{zk_root}/s-0000000001"


def test_sequence_number_counts_creations_only(kazoo_client, zk_root):
    """ZooKeeper stores cversion as a count of child creations and names sequential nodes
    from it; the cversion a client sees is creations + deletions (2 * stored - numChildren,
    DataNode.copyStat). So deletions move the visible cversion but not the next suffix."""
    kazoo_client.create(f"{zk_root}/a")
    kazoo_client.delete(f"{zk_root}/a")
    assert kazoo_client.exists(zk_root).cversion == 2
    assert kazoo_client.create(f"{zk_root}/s", sequence=True) == f"{zk_root}/s0000000001"
    kazoo_client.create(f"{zk_root}/b")
    kazoo_client.create(f"{zk_root}/c")
    kazoo_client.delete(f"{zk_root}/b")
    kazoo_client.delete(f"{zk_root}/c")
    stat = kazoo_client.exists(zk_root)
    assert (stat.cversion, stat.numChildren) == (7, 1)
    assert kazoo_client.create(f"{zk_root}/s", sequence=True) == f"{zk_root}/s0000000004"
    tx = kazoo_client.transaction()
    tx.create(f"{zk_root}/m")
    tx.delete(f"{zk_root}/m")
    tx.commit()
    assert kazoo_client.exists(zk_root).cversion == 10
    assert kazoo_client.create(f"{zk_root}/s", sequence=True) == f"{zk_root}/s0000000006"


def test_sequential_with_empty_prefix(kazoo_client, zk_root):
    path = kazoo_client.create(f"{zk_root}/", sequence=True)
    assert path == f"{zk_root}/0000000000"
    assert kazoo_client.get_children(zk_root) == ["0000000000"]


def test_sequential_children_list_in_any_order(kazoo_client, zk_root):
    created = [kazoo_client.create(f"{zk_root}/n-", sequence=True) for _ in range(12)]
    children = kazoo_client.get_children(zk_root)
    assert sorted(children) == sorted(p.rsplit("/", 1)[1] for p in created)


def test_ephemeral_owner_is_session(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/e", ephemeral=True)
    stat = kazoo_client.exists(f"{zk_root}/e")
    assert stat.ephemeralOwner == kazoo_client.client_id[0]


def test_ephemeral_sequential(kazoo_client, zk_root):
    path = kazoo_client.create(f"{zk_root}/es-", ephemeral=True, sequence=True)
    assert path == f"{zk_root}/es-0000000000"
    assert kazoo_client.exists(path).ephemeralOwner == kazoo_client.client_id[0]


def test_ephemeral_cannot_have_children(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/e", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        kazoo_client.create(f"{zk_root}/e/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        kazoo_client.create(f"{zk_root}/e/child", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        kazoo_client.create(f"{zk_root}/e/child", sequence=True)


def test_ephemerals_of_other_sessions_are_visible(kazoo_factory, zk_root):
    owner, other = kazoo_factory(), kazoo_factory()
    owner.create(f"{zk_root}/e", b"mine", ephemeral=True)
    data, stat = other.get(f"{zk_root}/e")
    assert data == b"mine" and stat.ephemeralOwner == owner.client_id[0]
    # another session may delete someone else's ephemeral
    other.delete(f"{zk_root}/e")
    assert owner.exists(f"{zk_root}/e") is None


def test_include_data_create2(kazoo_client, zk_root):
    path, stat = kazoo_client.create(f"{zk_root}/c2", b"abc", include_data=True)
    assert path == f"{zk_root}/c2"
    assert isinstance(stat, ZnodeStat)
    assert stat.dataLength == 3 and stat.version == 0 and stat.numChildren == 0
    assert stat == kazoo_client.exists(path)


def test_include_data_create2_sequential_ephemeral(kazoo_client, zk_root):
    path, stat = kazoo_client.create(f"{zk_root}/q-", b"", ephemeral=True, sequence=True, include_data=True)
    assert path == f"{zk_root}/q-0000000000"
    assert stat.ephemeralOwner == kazoo_client.client_id[0]


def test_exists(kazoo_client, zk_root):
    assert kazoo_client.exists(f"{zk_root}/nope") is None
    kazoo_client.create(f"{zk_root}/yes", b"12")
    stat = kazoo_client.exists(f"{zk_root}/yes")
    assert stat is not None and stat.dataLength == 2


def test_get_missing_raises_no_node(kazoo_client, zk_root):
    with pytest.raises(NoNodeError):
        kazoo_client.get(f"{zk_root}/nope")


def test_set_bumps_version_and_mzxid(kazoo_client, zk_root):
    path = kazoo_client.create(f"{zk_root}/a", b"1")
    created = kazoo_client.exists(path)
    stat = kazoo_client.set(path, b"22")
    assert stat.version == 1 and stat.dataLength == 2
    assert stat.mzxid > created.mzxid and stat.czxid == created.czxid
    assert stat.pzxid == created.pzxid  # pzxid only moves with children
    assert stat.mtime >= created.mtime and stat.ctime == created.ctime
    assert kazoo_client.get(path) == (b"22", stat)


def test_set_same_data_still_bumps_version(kazoo_client, zk_root):
    path = kazoo_client.create(f"{zk_root}/a", b"same")
    assert kazoo_client.set(path, b"same").version == 1
    assert kazoo_client.set(path, b"same").version == 2


def test_set_versioned(kazoo_client, zk_root):
    path = kazoo_client.create(f"{zk_root}/a", b"0")
    assert kazoo_client.set(path, b"1", version=0).version == 1
    with pytest.raises(BadVersionError):
        kazoo_client.set(path, b"x", version=0)
    with pytest.raises(BadVersionError):
        kazoo_client.set(path, b"x", version=7)
    assert kazoo_client.set(path, b"2", version=1).version == 2
    assert kazoo_client.set(path, b"3", version=-1).version == 3


def test_set_missing_raises_no_node(kazoo_client, zk_root):
    with pytest.raises(NoNodeError):
        kazoo_client.set(f"{zk_root}/nope", b"x")
    with pytest.raises(NoNodeError):  # NoNode wins over BadVersion
        kazoo_client.set(f"{zk_root}/nope", b"x", version=3)


def test_delete(kazoo_client, zk_root):
    path = kazoo_client.create(f"{zk_root}/a")
    before = kazoo_client.exists(zk_root)
    kazoo_client.delete(path)
    assert kazoo_client.exists(path) is None
    after = kazoo_client.exists(zk_root)
    assert after.cversion == before.cversion + 1
    assert after.numChildren == before.numChildren - 1
    assert after.pzxid > before.pzxid


def test_delete_versioned(kazoo_client, zk_root):
    path = kazoo_client.create(f"{zk_root}/a")
    kazoo_client.set(path, b"x")
    with pytest.raises(BadVersionError):
        kazoo_client.delete(path, version=0)
    kazoo_client.delete(path, version=1)
    assert kazoo_client.exists(path) is None


def test_delete_missing_raises_no_node(kazoo_client, zk_root):
    with pytest.raises(NoNodeError):
        kazoo_client.delete(f"{zk_root}/nope")
    with pytest.raises(NoNodeError):
        kazoo_client.delete(f"{zk_root}/nope/deeper")


def test_delete_non_empty_raises_not_empty(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/p/c", makepath=True)
    with pytest.raises(NotEmptyError):
        kazoo_client.delete(f"{zk_root}/p")


def test_delete_non_empty_with_wrong_version_raises_bad_version(kazoo_client, zk_root):
    """ZooKeeper checks the version before the children (PrepRequestProcessor)."""
    kazoo_client.create(f"{zk_root}/p/c", makepath=True)
    with pytest.raises(BadVersionError):
        kazoo_client.delete(f"{zk_root}/p", version=5)
    with pytest.raises(NotEmptyError):
        kazoo_client.delete(f"{zk_root}/p", version=0)


def test_delete_recursive(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/t/a/b", makepath=True)
    kazoo_client.create(f"{zk_root}/t/c", makepath=True)
    kazoo_client.delete(f"{zk_root}/t", recursive=True)
    assert kazoo_client.exists(f"{zk_root}/t") is None


def test_delete_root_is_bad_arguments(kazoo_client):
    with pytest.raises(BadArgumentsError):
        kazoo_client.delete("/")


def test_get_children(kazoo_client, zk_root):
    assert kazoo_client.get_children(zk_root) == []
    for name in ("b", "a", "c"):
        kazoo_client.create(f"{zk_root}/{name}")
    assert sorted(kazoo_client.get_children(zk_root)) == ["a", "b", "c"]


def test_get_children_include_data(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/a")
    kazoo_client.create(f"{zk_root}/b")
    children, stat = kazoo_client.get_children(zk_root, include_data=True)
    assert sorted(children) == ["a", "b"]
    assert stat == kazoo_client.exists(zk_root)
    assert stat.numChildren == 2 and stat.cversion == 2


def test_get_children_missing_raises_no_node(kazoo_client, zk_root):
    with pytest.raises(NoNodeError):
        kazoo_client.get_children(f"{zk_root}/nope")
    with pytest.raises(NoNodeError):
        kazoo_client.get_children(f"{zk_root}/nope", include_data=True)


def test_root_and_zookeeper_node(kazoo_client):
    assert "zookeeper" in kazoo_client.get_children("/")
    stat = kazoo_client.exists("/")
    assert stat.czxid == 0 and stat.ctime == 0 and stat.ephemeralOwner == 0
    assert "quota" in kazoo_client.get_children("/zookeeper")
    with pytest.raises(BadArgumentsError):
        kazoo_client.delete("/zookeeper")


def test_unicode_names_and_data(kazoo_client, zk_root):
    path = kazoo_client.create(f"{zk_root}/ünïcødé ✓", "value ✓".encode())
    assert path == f"{zk_root}/ünïcødé ✓"
    assert kazoo_client.get_children(zk_root) == ["ünïcødé ✓"]
    assert kazoo_client.get(path)[0] == "value ✓".encode()


def test_large_data_just_under_default_limit(kazoo_client, zk_root):
    """jute.maxbuffer defaults to 0xfffff (1 MiB - 1); a ~1000 KB node must round-trip."""
    blob = b"z" * (1000 * 1024)
    kazoo_client.create(f"{zk_root}/big", blob)
    assert kazoo_client.get(f"{zk_root}/big")[0] == blob


def test_sync(kazoo_client, zk_root):
    assert kazoo_client.sync(zk_root) == zk_root
    # sync does not check that the node exists
    assert kazoo_client.sync(f"{zk_root}/nope") == f"{zk_root}/nope"


def test_server_version_answers(kazoo_client):
    version = kazoo_client.server_version()
    assert isinstance(version, tuple) and len(version) >= 2 and all(isinstance(x, int) for x in version)


# --- multi -------------------------------------------------------------------------------


def test_transaction_commit_success(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/old", b"o")
    kazoo_client.create(f"{zk_root}/gone")
    tx = kazoo_client.transaction()
    tx.create(f"{zk_root}/new", b"n")
    tx.create(f"{zk_root}/seq-", sequence=True)
    tx.set_data(f"{zk_root}/old", b"o2", version=0)
    tx.check(f"{zk_root}/old", 1)  # sees the set above
    tx.delete(f"{zk_root}/gone")
    results = tx.commit()
    assert results[0] == f"{zk_root}/new"
    assert results[1] == f"{zk_root}/seq-0000000003"  # old, gone, new were created before it
    assert isinstance(results[2], ZnodeStat) and results[2].version == 1
    assert results[3] is True and results[4] is True
    assert kazoo_client.get(f"{zk_root}/old")[0] == b"o2"
    assert kazoo_client.exists(f"{zk_root}/gone") is None


def test_transaction_all_ops_share_one_zxid(kazoo_client, zk_root):
    tx = kazoo_client.transaction()
    tx.create(f"{zk_root}/a")
    tx.create(f"{zk_root}/b")
    tx.set_data(f"{zk_root}/a", b"x")
    results = tx.commit()
    a, b = kazoo_client.exists(f"{zk_root}/a"), kazoo_client.exists(f"{zk_root}/b")
    assert a.czxid == b.czxid == a.mzxid == results[2].mzxid
    assert kazoo_client.exists(zk_root).pzxid == a.czxid


def test_transaction_failure_rolls_back_and_reports_each_op(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/exists")
    tx = kazoo_client.transaction()
    tx.create(f"{zk_root}/a")
    tx.set_data(f"{zk_root}/exists", b"x", version=3)  # fails: BadVersion
    tx.delete(f"{zk_root}/exists")
    tx.create(f"{zk_root}/b")
    results = tx.commit()
    assert [type(r) for r in results] == [RolledBackError, BadVersionError, RuntimeInconsistency, RuntimeInconsistency]
    assert kazoo_client.exists(f"{zk_root}/a") is None
    assert kazoo_client.exists(f"{zk_root}/exists").version == 0
    assert sorted(kazoo_client.get_children(zk_root)) == ["exists"]


@pytest.mark.parametrize(
    "build, expected_error",
    [
        (lambda tx, r: tx.check(f"{r}/missing", 0), NoNodeError),
        (lambda tx, r: tx.check(f"{r}/exists", 4), BadVersionError),
        (lambda tx, r: tx.create(f"{r}/exists"), NodeExistsError),
        (lambda tx, r: tx.delete(f"{r}/missing"), NoNodeError),
        (lambda tx, r: tx.create(f"{r}/missing/child"), NoNodeError),
    ],
    ids=["check-nonode", "check-badversion", "create-exists", "delete-nonode", "create-noparent"],
)
def test_transaction_first_op_fails(kazoo_client, zk_root, build, expected_error):
    kazoo_client.create(f"{zk_root}/exists")
    tx = kazoo_client.transaction()
    build(tx, zk_root)
    tx.create(f"{zk_root}/after")
    results = tx.commit()
    assert [type(r) for r in results] == [expected_error, RuntimeInconsistency]
    assert kazoo_client.exists(f"{zk_root}/after") is None


def test_transaction_sees_its_own_earlier_ops(kazoo_client, zk_root):
    tx = kazoo_client.transaction()
    tx.create(f"{zk_root}/p")
    tx.create(f"{zk_root}/p/c")
    tx.delete(f"{zk_root}/p/c")
    tx.delete(f"{zk_root}/p")
    tx.create(f"{zk_root}/p", b"again")
    results = tx.commit()
    assert results == [f"{zk_root}/p", f"{zk_root}/p/c", True, True, f"{zk_root}/p"]
    assert kazoo_client.get(f"{zk_root}/p")[0] == b"again"


def test_transaction_not_empty_inside_multi(kazoo_client, zk_root):
    tx = kazoo_client.transaction()
    tx.create(f"{zk_root}/p")
    tx.create(f"{zk_root}/p/c")
    tx.delete(f"{zk_root}/p")
    results = tx.commit()
    assert [type(r) for r in results] == [RolledBackError, RolledBackError, NotEmptyError]
    assert kazoo_client.exists(f"{zk_root}/p") is None


def test_transaction_ephemeral_parent_inside_multi(kazoo_client, zk_root):
    tx = kazoo_client.transaction()
    tx.create(f"{zk_root}/e", ephemeral=True)
    tx.create(f"{zk_root}/e/c")
    results = tx.commit()
    assert [type(r) for r in results] == [RolledBackError, NoChildrenForEphemeralsError]


def test_transaction_sequential_names_advance_within_multi(kazoo_client, zk_root):
    tx = kazoo_client.transaction()
    tx.create(f"{zk_root}/s-", sequence=True)
    tx.create(f"{zk_root}/s-", sequence=True)
    tx.create(f"{zk_root}/s-", sequence=True, ephemeral=True)
    assert tx.commit() == [f"{zk_root}/s-0000000000", f"{zk_root}/s-0000000001", f"{zk_root}/s-0000000002"]


def test_empty_transaction(kazoo_client):
    assert kazoo_client.transaction().commit() == []


def test_multi_create2_container_ttl_results(kazoo_client, zk_root):
    """Inside a multi, create2 answers like create (path only) but createContainer and
    createTTL answer with (path, stat) — what ZooKeeper 3.8 does (see QUIRKS.md)."""
    ops = (
        multi_create(f"{zk_root}/plain"),
        multi_create(f"{zk_root}/two", op=Op.create2),
        multi_create(f"{zk_root}/box", flags=CreateFlag.CONTAINER),
        multi_create(f"{zk_root}/ttl", flags=CreateFlag.PERSISTENT_WITH_TTL, ttl=3_600_000),
    )
    results = kazoo_call(kazoo_client, KMulti(ops))
    assert results[0] == f"{zk_root}/plain"
    assert results[1] == f"{zk_root}/two"
    assert results[2][0] == f"{zk_root}/box" and isinstance(results[2][1], ZnodeStat)
    assert results[3][0] == f"{zk_root}/ttl" and isinstance(results[3][1], ZnodeStat)
    assert results[2][1].czxid == results[3][1].czxid == kazoo_client.exists(f"{zk_root}/plain").czxid


# --- containers and TTL nodes (kazoo has no API for them: raw requests through kazoo) ----------


def create_container(client, path: str, data: bytes = b"") -> tuple[str, ZnodeStat]:
    return kazoo_call(client, KCreate(path, data, OPEN_ACL_UNSAFE, CreateFlag.CONTAINER, None, Op.createContainer))


def create_ttl(client, path: str, ttl_ms: int, data: bytes = b"", sequential: bool = False) -> tuple[str, ZnodeStat]:
    flags = CreateFlag.PERSISTENT_SEQUENTIAL_WITH_TTL if sequential else CreateFlag.PERSISTENT_WITH_TTL
    return kazoo_call(client, KCreate(path, data, OPEN_ACL_UNSAFE, flags, ttl_ms, Op.createTTL))


def reap_bound_s(zk_handle) -> float:
    # The shared Apache server checks every second (conftest). ZooKeeper's default is a minute;
    # allow that much for ours until it has a knob, so a slow reaper is not mistaken for none.
    return 10.0 if zk_handle.kind == "apache" else 70.0


def test_container_create_returns_stat_with_zero_owner(kazoo_client, zk_root):
    path, stat = create_container(kazoo_client, f"{zk_root}/box", b"d")
    assert path == f"{zk_root}/box"
    # ZooKeeper reports ephemeralOwner 0 to clients for containers (and TTL nodes)
    assert stat.ephemeralOwner == 0 and stat.dataLength == 1
    assert kazoo_client.exists(path) == stat


def test_container_existing_raises_node_exists(kazoo_client, zk_root):
    create_container(kazoo_client, f"{zk_root}/box")
    with pytest.raises(NodeExistsError):
        create_container(kazoo_client, f"{zk_root}/box")


def test_container_never_used_is_kept(kazoo_client, zk_root):
    """Only a container whose cversion moved (it had a child) is reaped when empty."""
    create_container(kazoo_client, f"{zk_root}/box")
    time.sleep(2.5)  # two check periods of the shared Apache server
    assert kazoo_client.exists(f"{zk_root}/box") is not None


@pytest.mark.slow
def test_container_deleted_after_last_child_goes(kazoo_client, zk_root, zk_handle):
    create_container(kazoo_client, f"{zk_root}/box")
    kazoo_client.create(f"{zk_root}/box/child")
    kazoo_client.delete(f"{zk_root}/box/child")
    wait_until(lambda: kazoo_client.exists(f"{zk_root}/box") is None, reap_bound_s(zk_handle), what="container reaped")


def test_container_can_hold_children_and_ephemerals(kazoo_client, zk_root):
    create_container(kazoo_client, f"{zk_root}/box")
    kazoo_client.create(f"{zk_root}/box/e", ephemeral=True)
    kazoo_client.create(f"{zk_root}/box/p")
    assert sorted(kazoo_client.get_children(f"{zk_root}/box")) == ["e", "p"]


def test_ttl_create_and_stat(kazoo_client, zk_root):
    path, stat = create_ttl(kazoo_client, f"{zk_root}/t", 3_600_000, b"abc")
    assert path == f"{zk_root}/t"
    assert stat.ephemeralOwner == 0 and stat.dataLength == 3
    path, _ = create_ttl(kazoo_client, f"{zk_root}/s-", 3_600_000, sequential=True)
    assert path == f"{zk_root}/s-0000000001"


@pytest.mark.parametrize("ttl_ms", [0, -1, 1 << 40])
def test_ttl_out_of_range_is_bad_arguments(kazoo_client, zk_root, ttl_ms):
    with pytest.raises(BadArgumentsError):
        create_ttl(kazoo_client, f"{zk_root}/t", ttl_ms)


@pytest.mark.parametrize("flags", [CreateFlag.PERSISTENT, CreateFlag.EPHEMERAL, CreateFlag.CONTAINER])
def test_create_ttl_with_non_ttl_mode_is_bad_arguments(kazoo_client, zk_root, flags):
    with pytest.raises(BadArgumentsError):
        kazoo_call(kazoo_client, KCreate(f"{zk_root}/t", b"", OPEN_ACL_UNSAFE, flags, 1000, Op.createTTL))


@pytest.mark.parametrize("op", [Op.create, Op.create2])
def test_ttl_flags_on_plain_create_is_bad_arguments(kazoo_client, zk_root, op):
    """A TTL mode needs the createTTL opcode (ttl defaults to -1 otherwise: invalid)."""
    with pytest.raises(BadArgumentsError):
        kazoo_call(kazoo_client, KCreate(f"{zk_root}/t", b"", OPEN_ACL_UNSAFE, CreateFlag.PERSISTENT_WITH_TTL, None, op))


@pytest.mark.parametrize("flags", [7, 99, -1])
def test_unknown_create_flags_are_bad_arguments(kazoo_client, zk_root, flags):
    with pytest.raises(BadArgumentsError):
        kazoo_call(kazoo_client, KCreate(f"{zk_root}/f", b"", OPEN_ACL_UNSAFE, flags, None, Op.create2))


def test_ttl_child_of_ephemeral_refused(kazoo_client, zk_root):
    kazoo_client.create(f"{zk_root}/e", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        create_ttl(kazoo_client, f"{zk_root}/e/t", 1000)


@pytest.mark.slow
def test_ttl_node_expires_when_childless(kazoo_client, zk_root, zk_handle):
    create_ttl(kazoo_client, f"{zk_root}/t", 200)
    create_ttl(kazoo_client, f"{zk_root}/keep", 200)
    kazoo_client.create(f"{zk_root}/keep/child")  # a TTL node with children is kept
    wait_until(lambda: kazoo_client.exists(f"{zk_root}/t") is None, reap_bound_s(zk_handle), what="TTL node reaped")
    assert kazoo_client.exists(f"{zk_root}/keep") is not None


# --- getEphemerals / getAllChildrenNumber (3.6+, no kazoo method) --------------------------


def test_get_ephemerals(kazoo_factory, zk_root):
    mine, other = kazoo_factory(), kazoo_factory()
    mine.create(f"{zk_root}/a/e1", ephemeral=True, makepath=True)
    mine.create(f"{zk_root}/b-e2", ephemeral=True)
    mine.create(f"{zk_root}/persistent")
    other.create(f"{zk_root}/theirs", ephemeral=True)
    everything = kazoo_call(mine, KPathRequest(Op.getEphemerals, "/"))
    assert sorted(everything) == [f"{zk_root}/a/e1", f"{zk_root}/b-e2"]
    assert sorted(kazoo_call(mine, KPathRequest(Op.getEphemerals, ""))) == sorted(everything)
    assert kazoo_call(mine, KPathRequest(Op.getEphemerals, f"{zk_root}/a")) == [f"{zk_root}/a/e1"]
    # the prefix is a plain string prefix, not a path prefix
    assert sorted(kazoo_call(mine, KPathRequest(Op.getEphemerals, f"{zk_root}/b"))) == [f"{zk_root}/b-e2"]
    assert kazoo_call(mine, KPathRequest(Op.getEphemerals, f"{zk_root}/zzz")) == []


def test_get_all_children_number(kazoo_client, zk_root):
    assert kazoo_call(kazoo_client, KPathRequest(Op.getAllChildrenNumber, zk_root)) == 0
    kazoo_client.create(f"{zk_root}/a/b/c", makepath=True)
    kazoo_client.create(f"{zk_root}/d")
    assert kazoo_call(kazoo_client, KPathRequest(Op.getAllChildrenNumber, zk_root)) == 4
    assert kazoo_call(kazoo_client, KPathRequest(Op.getAllChildrenNumber, f"{zk_root}/a")) == 2
    with pytest.raises(NoNodeError):
        kazoo_call(kazoo_client, KPathRequest(Op.getAllChildrenNumber, f"{zk_root}/nope"))
