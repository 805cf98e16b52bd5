"""ZooKeeper's dynamic config as data (znodes/dynconfig.py): server lines rendered exactly as
QuorumServer.toString writes them, /zookeeper/config text, and the changes of incremental and
bulk reconfigs with ZooKeeper's validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccore.znodes.dynconfig import (
    DynamicConfig,
    DynamicConfigError,
    ServerSpec,
    bulk,
    check_participants,
    incremental,
    parse_server_line,
    split_list,
)
from ccore.znodes.errors import BadArgumentsError


def three() -> DynamicConfig:
    return DynamicConfig.parse(
        "server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\n"
        "server.2=10.0.0.2:2888:3888:participant;0.0.0.0:2181\n"
        "server.3=10.0.0.3:2888:3888:participant;0.0.0.0:2181\n"
        "version=100000000"
    )


@pytest.mark.parametrize(
    ("line", "rendered"),
    [
        # kazoo's TestReconfig looks for its joining string verbatim in the reply.
        ("server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456", "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456"),
        ("server.100=0.0.0.0:1234:2345:observer;3456", "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456"),
        ("server.1=zk1:2888:3888", "server.1=zk1:2888:3888:participant"),
        ("server.1=zk1:2888:3888;", "server.1=zk1:2888:3888:participant"),
        ("server.1=zk1:2888:3888:PARTICIPANT;zk1:2181", "server.1=zk1:2888:3888:participant;zk1:2181"),
        ("server.2 = zk2:2888:3888:Observer ; 2181 ", "server.2=zk2:2888:3888:observer;0.0.0.0:2181"),
        ("server.3=[::1]:2888:3888;[::]:2181", "server.3=[::1]:2888:3888:participant;[::]:2181"),
        ("7=zk7:2888:3888;2181", None),  # the shorthand only where reconfig accepts it
    ],
)
def test_server_lines_render_as_zookeeper_writes_them(line: str, rendered: str | None) -> None:
    if rendered is None:
        with pytest.raises(DynamicConfigError):
            parse_server_line(line)
        assert parse_server_line(line, shorthand=True).render() == "server.7=zk7:2888:3888:participant;0.0.0.0:2181"
        return
    spec = parse_server_line(line)
    assert spec.render() == rendered
    assert parse_server_line(rendered) == spec


def test_spec_fields_and_the_names_peer_address_had() -> None:
    spec = parse_server_line("server.4=zk4:2890:3890:observer;10.1.1.4:2184")
    assert spec == ServerSpec(4, "zk4", 2890, 3890, "observer", "10.1.1.4", 2184)
    assert (spec.server_id, spec.observer, spec.client_address) == (4, True, ("10.1.1.4", 2184))
    bare = parse_server_line("server.5=zk5:2888:3888")
    assert (bare.observer, bare.client_host, bare.client_port, bare.client_address) == (False, None, None, None)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("server.1=h:2888:2888", "ports must differ"),
        ("server.1=h:2888:3888:voter", "unknown role"),
        ("server.1=h:2888", "expected host:quorumPort"),
        ("server.1=h:2888:3888;2181;2281", "secure client port"),
        ("server.1=a:1:2|b:1:2", "not supported"),
        ("server.x=h:2888:3888", "bad server id"),
        ("server.-1=h:2888:3888", "negative"),
        ("server.1=h:2888:99999", "ports must be numbers"),
        ("server.1=h:2888:3888;h:p", "ports must be numbers"),
        ("server.1", "expected server.N="),
        ("server.1=a=b", "expected server.N="),
    ],
)
def test_bad_lines_say_why(line: str, says: str) -> None:
    with pytest.raises(DynamicConfigError, match=says):
        parse_server_line(line)


def test_config_text_is_lines_by_id_then_the_hex_version_without_a_newline() -> None:
    config = DynamicConfig(
        [ServerSpec(10, "h10", 1, 2), ServerSpec(2, "h2", 1, 2, "observer", "0.0.0.0", 2181)],
        0x100000003,
    )
    assert config.render() == ("server.2=h2:1:2:observer;0.0.0.0:2181\nserver.10=h10:1:2:participant\nversion=100000003")
    assert DynamicConfig.parse(config.render()) == config
    assert (config.voters, config.observers, config.ids) == ({10}, {2}, {2, 10})
    # The dynamic file (writeDynamicConfig): string order, no version line.
    assert config.render_file() == "server.10=h10:1:2:participant\nserver.2=h2:1:2:observer;0.0.0.0:2181"


def test_config_text_errors() -> None:
    with pytest.raises(DynamicConfigError, match="listed twice"):
        DynamicConfig.parse("server.1=a:1:2\nserver.1=b:1:2")
    with pytest.raises(DynamicConfigError, match="hexadecimal"):
        DynamicConfig.parse("server.1=a:1:2\nversion=0x10")
    with pytest.raises(DynamicConfigError, match="unrecognised parameter 'tickTime'"):
        DynamicConfig.parse("server.1=a:1:2\ntickTime=2000")
    with pytest.raises(DynamicConfigError, match="hierarchical"):
        DynamicConfig.parse("server.1=a:1:2\ngroup.1=1")
    assert DynamicConfig.parse("# made by hand\n\nserver.1=a:1:2\n").version == 0
    with pytest.raises(ValueError, match="with_version"):
        DynamicConfig([ServerSpec(1, "a", 1, 2)], None).render()


def test_client_addresses_put_the_server_host_for_a_wildcard() -> None:
    config = DynamicConfig.parse(
        "server.1=10.0.0.1:2888:3888;0.0.0.0:2181\n"
        "server.2=10.0.0.2:2888:3888;10.9.9.2:2182\n"
        "server.3=10.0.0.3:2888:3888\n"  # no client port: not for clients
        "server.4=[fe80::4]:2888:3888:observer;[::]:2184\n"
    )
    assert config.client_addresses() == [("10.0.0.1", 2181), ("10.9.9.2", 2182), ("fe80::4", 2184)]
    # A server's own line as written in its zoo.cfg: no address a client could use.
    assert DynamicConfig.parse("server.1=0.0.0.0:2888:3888;2181\nserver.2=h:1:2;2181").client_addresses() is None


# --- incremental and bulk changes -----------------------------------------------------------------


def test_incremental_removes_first_then_adds_or_replaces() -> None:
    new = incremental(three(), "server.4=10.0.0.4:2888:3888:observer;2181,3=10.0.0.3:2888:3888:observer;2181", "2, 9")
    assert new.version is None
    assert (new.voters, new.observers) == ({1}, {3, 4})
    assert new.by_id[3].render() == "server.3=10.0.0.3:2888:3888:observer;0.0.0.0:2181"
    # Leaving and joining the same id: it is back (removal happens first), with the new ports.
    again = incremental(three(), ["server.2=10.0.0.2:2889:3889;2181"], ["2"])
    assert again.by_id[2].quorum_port == 2889 and again.ids == {1, 2, 3}
    assert incremental(three(), None, None).servers == three().servers


@pytest.mark.parametrize(
    ("joining", "leaving", "says"),
    [
        ("some thing", None, "expected server.N="),  # kazoo's test_bad_input
        ("server.4=10.0.0.4:2888:3888", None, "needs its client port"),
        ("server.4=10.0.0.1:2888:3889;2181", None, "10.0.0.1:2888 of server.4 conflicts"),
        ("server.4=10.0.0.4:2888:3888;10.0.0.2:3888", None, "conflicts with the same address of server.2"),
        (None, "two", "bad server id"),
        ("server.4=10.0.0.4:2888:3888;2181,server.5=10.0.0.4:2888:3889;2182", None, "of server.5 conflicts"),
    ],
)
def test_incremental_refusals_are_bad_arguments(joining: str | None, leaving: str | None, says: str) -> None:
    with pytest.raises(BadArgumentsError, match=says):
        incremental(three(), joining, leaving)


def test_loopback_and_wildcard_addresses_are_not_duplicates() -> None:
    # A local test ensemble: every server on 127.0.0.1 (ZooKeeper skips those in the check).
    local = DynamicConfig.parse("server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889;2182")
    assert incremental(local, "server.3=127.0.0.1:2888:3890;0.0.0.0:2182", None).ids == {1, 2, 3}


def test_bulk_takes_commas_or_newlines_and_ignores_a_version() -> None:
    members = "server.1=a:1:2;2181,server.2=b:1:2;2181\nserver.3=c:1:2:observer;2181\nversion=5"
    new = bulk(members)
    assert (new.voters, new.observers, new.version) == ({1, 2}, {3}, None)
    assert bulk(["server.1=a:1:2;2181", "server.2=b:1:2"]).ids == {1, 2}
    for bad, says in (("5=a:1:2;2181", "unrecognised"), ("server.1=a:1", "expected"), ("weight.1=2", "hierarchical")):
        with pytest.raises(BadArgumentsError, match=says):
            bulk(bad)


def test_participant_floor_depends_on_standalone_enabled() -> None:
    one = bulk("server.1=a:1:2;2181,server.2=b:1:2:observer;2181")
    with pytest.raises(BadArgumentsError, match="at least 2 participants"):
        check_participants(one, standalone_enabled=True)
    check_participants(one, standalone_enabled=False)
    with pytest.raises(BadArgumentsError, match="at least 1 participant"):
        check_participants(bulk("server.2=b:1:2:observer;2181"), standalone_enabled=False)
    check_participants(three(), standalone_enabled=True)


def test_split_list_is_zookeepers_string_split() -> None:
    assert split_list(" 1, ,2 ,") == ["1", "2"]
    assert split_list(["1", "2,3"]) == ["1", "2", "3"]
    assert split_list("") == [] and split_list(None) is None


# --- round trips ------------------------------------------------------------------------------------

_labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
_names = st.lists(_labels, min_size=1, max_size=3).map(".".join)
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(str)
hosts = st.one_of(_names, _ipv4, _ipv6, st.just("0.0.0.0"))
ports = st.integers(0, 65535)


@st.composite
def specs(draw: st.DrawFn, server_id: int | None = None) -> ServerSpec:
    sid = draw(st.integers(0, 2**40)) if server_id is None else server_id
    quorum = draw(ports)
    election = draw(ports.filter(lambda p: p != quorum))
    client = draw(st.none() | st.tuples(hosts, ports))
    role = draw(st.sampled_from(["participant", "observer"]))
    return ServerSpec(sid, draw(hosts), quorum, election, role, *(client or (None, None)))


@st.composite
def configs(draw: st.DrawFn) -> DynamicConfig:
    ids = draw(st.sets(st.integers(0, 10_000), max_size=7))
    return DynamicConfig([draw(specs(i)) for i in ids], draw(st.integers(0, 2**63 - 1)))


@given(specs())
def test_server_line_round_trip(spec: ServerSpec) -> None:
    assert parse_server_line(spec.render()) == spec
    assert parse_server_line(spec.render().removeprefix("server."), shorthand=True) == spec


@given(configs())
def test_config_text_round_trip(config: DynamicConfig) -> None:
    text = config.render()
    assert DynamicConfig.parse(text) == config
    assert text.splitlines()[-1] == f"version={config.version:x}" and not text.endswith("\n")
    assert DynamicConfig.parse(config.render_file()).servers == config.servers
    assert bulk(text.replace("\n", ",")).servers == config.servers
