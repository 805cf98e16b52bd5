"""The data tree: ZooKeeper's semantics op by op, and invariants under random transactions."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ccore.znodes import paths
from ccore.znodes.acl import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id, digest
from ccore.znodes.codec import decode_snapshot, decode_txn, encode_snapshot, encode_txn
from ccore.znodes.constants import CONTAINER_EPHEMERAL_OWNER, CreateMode, EventType, Perms
from ccore.znodes.errors import Code
from ccore.znodes.tree import DataTree, Node, ttl_owner
from ccore.znodes.txn import (
    Check,
    CloseSession,
    Create,
    CreateSession,
    Delete,
    DeleteContainer,
    Multi,
    SetACL,
    SetData,
    Txn,
)

SESSION = 0x100


class Applier:
    """Applies ops with increasing zxids and a controllable clock."""

    def __init__(self) -> None:
        self.tree = DataTree()
        self.zxid = 0
        self.now = 1_000_000

    def __call__(self, op, session: int = SESSION, auth=()):
        self.zxid += 1
        return self.tree.apply(Txn(self.zxid, self.now, session, op, auth))


def make(session: bool = True) -> Applier:
    a = Applier()
    if session:
        a(CreateSession(4000, b"p" * 16))
    return a


def create(path: str, data: bytes = b"", mode: CreateMode = CreateMode.PERSISTENT, acl=OPEN_ACL_UNSAFE, **kw) -> Create:
    return Create(path, data, acl, int(mode), **kw)


def test_initial_tree_is_zookeepers() -> None:
    tree = DataTree()
    assert sorted(tree.nodes) == ["/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"]
    root = tree.nodes["/"].stat()
    assert (root.numChildren, root.cversion, root.pzxid) == (1, -1, 0)  # ZooKeeper shows -1 too
    assert tree.nodes["/zookeeper/config"].acl == READ_ACL_UNSAFE


def test_create_sets_stat_and_parent() -> None:
    a = make()
    result, triggers = a(create("/a", b"xyz"))
    assert result.err == 0 and result.path == "/a"
    s = result.stat
    assert (s.czxid, s.mzxid, s.pzxid) == (a.zxid, a.zxid, a.zxid)
    assert (s.ctime, s.mtime, s.version, s.cversion, s.aversion) == (a.now, a.now, 0, 0, 0)
    assert (s.dataLength, s.numChildren, s.ephemeralOwner) == (3, 0, 0)
    root = a.tree.nodes["/"]
    assert root.cversion == 1 and root.pzxid == a.zxid
    assert [t[:2] for t in triggers] == [(EventType.NODE_CREATED, "/a"), (EventType.NODE_CHILDREN_CHANGED, "/")]


def test_sequential_names_come_from_parent_cversion_and_never_repeat() -> None:
    a = make()
    a(create("/q"))
    names = []
    for _ in range(3):
        result, _ = a(create("/q/n-", mode=CreateMode.PERSISTENT_SEQUENTIAL))
        names.append(result.path)
        a(Delete(result.path))
    # Deletes move pzxid but not cversion, so numbers keep counting up.
    assert names == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]
    assert a.tree.nodes["/q"].cversion == 3
    assert a.tree.nodes["/q"].stat().cversion == 6  # clients count the deletions too
    assert a.tree.nodes["/q"].pzxid == a.zxid


def test_acls_are_fixed_up_unless_the_shared_open_acl() -> None:
    a = make()
    # An equal copy of the open ACL goes through validation too, to the same outcome.
    assert a(create("/o", acl=(ACL(int(Perms.ALL), Id("world", "anyone")),)))[0].err == 0
    assert a.tree.nodes["/o"].acl == OPEN_ACL_UNSAFE
    assert a(create("/x", acl=(ACL(31, Id("auth", "")),)))[0].err == Code.INVALID_ACL  # no digest id
    me = Id("digest", digest("u:p"))
    assert a(create("/y", acl=(ACL(31, Id("auth", "")),)), auth=(me,))[0].err == 0
    assert a.tree.nodes["/y"].acl == (ACL(31, me),)


def test_errors_in_zookeepers_order() -> None:
    a = make()
    assert a(create("/a/b"))[0].err == Code.NO_NODE
    a(create("/a"))
    assert a(create("/a"))[0].err == Code.NODE_EXISTS
    assert a(create("/a/"))[0].err == Code.BAD_ARGUMENTS
    assert a(create("/a", acl=()))[0].err == Code.INVALID_ACL
    assert a(Create("/m", b"", OPEN_ACL_UNSAFE, 7))[0].err == Code.BAD_ARGUMENTS  # no such mode
    assert a(Create("/m", b"", OPEN_ACL_UNSAFE, -1))[0].err == Code.BAD_ARGUMENTS
    assert a(Delete("/a", version=5))[0].err == Code.BAD_VERSION
    a(create("/a/c"))
    assert a(Delete("/a"))[0].err == Code.NOT_EMPTY
    assert a(Delete("/zookeeper"))[0].err == Code.BAD_ARGUMENTS
    assert a(Delete("/"))[0].err == Code.BAD_ARGUMENTS
    assert a(SetData("/nope", b""))[0].err == Code.NO_NODE
    assert a(SetData("/zookeeper/config", b"x"))[0].err == Code.NO_AUTH


def test_failed_write_changes_nothing_and_fires_nothing() -> None:
    a = make()
    a(create("/a"))
    before = encode_snapshot(a.tree)
    result, triggers = a(create("/a"))
    assert result.err == Code.NODE_EXISTS and triggers == []
    assert decode_snapshot(encode_snapshot(a.tree)).nodes.keys() == decode_snapshot(before).nodes.keys()


def test_ephemerals_belong_to_their_session_and_go_with_it() -> None:
    a = make()
    a(create("/e", mode=CreateMode.EPHEMERAL))
    a(create("/p"))
    a(create("/p/e2", mode=CreateMode.EPHEMERAL_SEQUENTIAL))
    assert a.tree.nodes["/e"].ephemeral_owner == SESSION
    assert a(create("/e/child"))[0].err == Code.NO_CHILDREN_FOR_EPHEMERALS
    assert a.tree.get_ephemerals(SESSION, "/") == ["/e", "/p/e20000000000"]
    assert a.tree.get_ephemerals(SESSION, "/p") == ["/p/e20000000000"]
    result, triggers = a(CloseSession())
    assert result.err == 0
    assert "/e" not in a.tree.nodes and "/p/e20000000000" not in a.tree.nodes
    assert (EventType.NODE_DELETED, "/e", OPEN_ACL_UNSAFE) in triggers
    assert (EventType.NODE_CHILDREN_CHANGED, "/p", OPEN_ACL_UNSAFE) in triggers
    assert SESSION not in a.tree.sessions and SESSION not in a.tree.ephemerals


def test_ephemeral_for_unknown_session_is_session_expired() -> None:
    a = make(session=False)
    assert a(create("/e", mode=CreateMode.EPHEMERAL))[0].err == Code.SESSION_EXPIRED


def test_set_data_versions_and_wrap() -> None:
    a = make()
    a(create("/v"))
    result, triggers = a(SetData("/v", b"1", 0))
    assert result.stat.version == 1 and result.stat.mzxid == a.zxid
    assert triggers == [(EventType.NODE_DATA_CHANGED, "/v", OPEN_ACL_UNSAFE)]
    assert a(SetData("/v", b"2", 0))[0].err == Code.BAD_VERSION
    a.tree.nodes["/v"].version = 2**31 - 1
    assert a(SetData("/v", b"3", -1))[0].stat.version == -(2**31)


def test_acl_checks_and_auth_expansion() -> None:
    a = make()
    alice = Id("digest", digest("alice:secret"))
    assert a(create("/x", acl=(ACL(Perms.ALL, Id("auth", "")),)))[0].err == Code.INVALID_ACL
    result, _ = a(create("/x", acl=(ACL(Perms.ALL, Id("auth", "")),)), auth=(Id("ip", "127.0.0.1"), alice))
    assert result.err == 0
    assert a.tree.nodes["/x"].acl == (ACL(Perms.ALL, alice),)
    assert a(SetData("/x", b"no"))[0].err == Code.NO_AUTH
    assert a(SetData("/x", b"yes"), auth=(alice,))[0].err == 0
    # Readers without ADMIN see digest hashes blanked (but here READ is not granted at all).
    a(create("/r", acl=(ACL(Perms.READ, Id("world", "anyone")), ACL(Perms.ALL, alice))), auth=(alice,))
    acl, _ = a.tree.get_acl("/r", ())
    assert acl[1].id.id == "alice:x"
    assert a.tree.get_acl("/r", (alice,))[0][1].id == alice
    # ip ACLs match by network.
    a(create("/ip", acl=(ACL(Perms.ALL, Id("ip", "127.0.0.0/8")),)))
    assert a(SetData("/ip", b""), auth=(Id("ip", "127.1.2.3"),))[0].err == 0
    assert a(SetData("/ip", b""), auth=(Id("ip", "10.0.0.1"),))[0].err == Code.NO_AUTH
    assert a(create("/bad", acl=(ACL(Perms.ALL, Id("ip", "300.1.1.1")),)))[0].err == Code.INVALID_ACL


def test_multi_is_all_or_nothing_with_zookeeper_results() -> None:
    a = make()
    a(create("/m"))
    before = encode_snapshot(a.tree)
    result, triggers = a(Multi((create("/m/a"), SetData("/m", b"x"), Delete("/m/none"), create("/m/b"))))
    assert [r.err for r in result.results] == [0, 0, Code.NO_NODE, Code.RUNTIME_INCONSISTENCY]
    assert triggers == []
    after = encode_snapshot(a.tree)
    assert decode_snapshot(after).last_zxid == a.zxid
    # Apart from last_zxid, nothing changed: compare the node tables.
    assert _nodes(decode_snapshot(before)) == _nodes(decode_snapshot(after))
    result, triggers = a(Multi((create("/m/a"), create("/m/a/b"), Check("/m", 0), SetData("/m/a", b"v", 0))))
    assert [r.err for r in result.results] == [0, 0, 0, 0]
    assert result.results[0].path == "/m/a"
    assert (EventType.NODE_CREATED, "/m/a/b", OPEN_ACL_UNSAFE) in triggers


def _nodes(tree: DataTree) -> dict:
    return {p: n.fields() for p, n in tree.nodes.items()}


def test_containers_and_ttl_nodes() -> None:
    a = make()
    result, _ = a(create("/c", mode=CreateMode.CONTAINER, container_request=True))
    assert a.tree.nodes["/c"].ephemeral_owner == CONTAINER_EPHEMERAL_OWNER
    assert result.stat.ephemeralOwner == 0  # clients see 0 for containers and TTL nodes
    assert a.tree.due_for_deletion(a.now) == []  # never had a child: kept
    a(create("/c/x"))
    a(Delete("/c/x"))
    assert a.tree.due_for_deletion(a.now) == ["/c"]
    assert a(DeleteContainer("/c"))[0].err == 0
    result, _ = a(create("/t", mode=CreateMode.PERSISTENT_WITH_TTL, ttl=500, ttl_request=True))
    assert a.tree.nodes["/t"].ephemeral_owner == ttl_owner(500)
    assert result.stat.ephemeralOwner == 0
    assert a(DeleteContainer("/t"))[0].err == Code.BAD_VERSION  # not expired yet
    a.now += 501
    assert a.tree.due_for_deletion(a.now) == ["/t"]
    assert a(DeleteContainer("/t"))[0].err == 0
    # TTL rules: a TTL mode needs createTTL with 0 < ttl; createTTL needs a TTL mode.
    assert a(create("/t2", mode=CreateMode.PERSISTENT_WITH_TTL))[0].err == Code.BAD_ARGUMENTS
    assert a(create("/t2", ttl=5, ttl_request=True))[0].err == Code.BAD_ARGUMENTS
    assert a(create("/t2", mode=CreateMode.PERSISTENT_WITH_TTL, ttl=0, ttl_request=True))[0].err == Code.BAD_ARGUMENTS


def test_all_children_number() -> None:
    a = make()
    a(create("/n"))
    a(create("/n/a"))
    a(create("/n/a/b"))
    assert a.tree.all_children_number("/n", ()) == 2
    assert a.tree.all_children_number("/", ()) == len(a.tree.nodes) - 1


@given(st.sampled_from([0, 7, CONTAINER_EPHEMERAL_OWNER, ttl_owner(1), ttl_owner(2**40 - 1)]) | st.integers(-(2**63), 2**63 - 1))
def test_stat_shows_only_a_session_as_owner(owner: int) -> None:
    # Node.stat inlines is_ephemeral: containers and TTL nodes show 0, sessions themselves.
    node = Node(b"", OPEN_ACL_UNSAFE, 1, 1, owner)
    assert node.stat().ephemeralOwner == (owner if node.is_ephemeral else 0)


def test_txn_codec_round_trip() -> None:
    txn = Txn(7, 123, SESSION, Multi((create("/a", b"\x00\xff"), SetACL("/a", OPEN_ACL_UNSAFE, 2))), (Id("ip", "1.2.3.4"),))
    assert decode_txn(encode_txn(txn)) == txn


# -- random transactions: invariants and determinism --------------------------------------------

NAMES = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
MODES = st.sampled_from([m for m in CreateMode if not m.is_ttl])
SESSIONS = st.sampled_from([1, 2])

SIMPLE_OPS = st.one_of(
    st.builds(lambda p, m, d: create(p, d, m, container_request=m is CreateMode.CONTAINER), PATHS, MODES, st.binary(max_size=4)),
    st.builds(Delete, PATHS, st.sampled_from([-1, 0, 1])),
    st.builds(SetData, PATHS, st.binary(max_size=4), st.sampled_from([-1, 0, 1])),
    st.builds(Check, PATHS, st.sampled_from([-1, 0])),
)
OPS = st.one_of(
    SIMPLE_OPS,
    st.builds(lambda ops: Multi(tuple(ops)), st.lists(SIMPLE_OPS, max_size=4)),
    st.just(CloseSession()),
    st.just(CreateSession(3000, b"x")),
)


class TreeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tree = DataTree()
        self.log: list[Txn] = []
        self.zxid = 0

    @rule(op=OPS, session=SESSIONS)
    def apply(self, op, session) -> None:
        self.zxid += 1
        txn = Txn(self.zxid, self.zxid * 10, session, op)
        before = encode_snapshot(self.tree)
        result, triggers = self.tree.apply(txn)
        self.log.append(txn)
        if isinstance(op, Multi) and any(r.err for r in result.results):
            assert triggers == []
            assert _nodes(decode_snapshot(before)) == _nodes(self.tree)

    @invariant()
    def structure_is_consistent(self) -> None:
        tree = self.tree
        for path, node in tree.nodes.items():
            if path != "/":
                parent_path, name = paths.split(path)
                assert name in tree.nodes[parent_path].children
                assert not tree.nodes[parent_path].is_ephemeral
            for child in node.children:
                assert paths.join(path, child) in tree.nodes
            assert node.pzxid >= node.czxid
        for session, owned in tree.ephemerals.items():
            assert owned, "empty ephemeral sets are dropped"
            assert session in tree.sessions
            for p in owned:
                assert tree.nodes[p].ephemeral_owner == session
        for path, node in tree.nodes.items():
            if node.is_ephemeral:
                assert path in tree.ephemerals[node.ephemeral_owner]
        assert tree.data_size == sum(len(p) + len(n.data or b"") for p, n in tree.nodes.items())
        assert decode_snapshot(encode_snapshot(tree)).data_size == tree.data_size

    @invariant()
    def replay_and_snapshot_agree(self) -> None:
        # Determinism: replaying the log (through the codec) gives the same tree.
        replica = DataTree()
        for txn in self.log:
            replica.apply(decode_txn(encode_txn(txn)))
        assert encode_snapshot(replica) == encode_snapshot(self.tree)
        assert encode_snapshot(decode_snapshot(encode_snapshot(self.tree))) == encode_snapshot(self.tree)


TestTreeMachine = TreeMachine.TestCase
TestTreeMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


@given(st.lists(st.tuples(OPS, SESSIONS), max_size=30))
@settings(max_examples=50, deadline=None)
def test_results_are_deterministic(ops) -> None:
    first, second = DataTree(), DataTree()
    for i, (op, session) in enumerate(ops, 1):
        txn = Txn(i, i, session, op)
        assert first.apply(txn) == second.apply(txn)
