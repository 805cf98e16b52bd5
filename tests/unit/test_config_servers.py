"""server.N lines as ZooKeeper 3.5+ writes them: `0.0.0.0` or a hostname for a server, roles
(participant, observer), the `;[clientHost:]clientPort` suffix, IPv6 in brackets, and errors
that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccore.server.config import ConfigError, load, parse_peer


def write_config(tmp_path: Path, myid: int, *lines: str) -> Path:
    (tmp_path / "myid").write_text(f"{myid}\n")
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("\n".join([f"dataDir={tmp_path}", *lines]) + "\n")
    return cfg


def one_line(exc: BaseException) -> str:
    assert "\n" not in str(exc)
    return str(exc)


def test_own_line_on_any_address_and_the_others_by_hostname(tmp_path) -> None:
    cfg = write_config(
        tmp_path,
        2,
        "server.1=zoo1:2888:3888",
        "server.2=0.0.0.0:2889:3889",
        "server.3=localhost:2890:3890",
    )
    config = load(cfg)
    assert config.server_id == 2
    assert [(p.server_id, p.host, p.quorum_port, p.election_port, p.observer) for p in config.peers.values()] == [
        (1, "zoo1", 2888, 3888, False),
        (2, "0.0.0.0", 2889, 3889, False),
        (3, "localhost", 2890, 3890, False),
    ]


@pytest.mark.parametrize(
    ("value", "observer", "client"),
    [
        ("host:2888:3888", False, None),
        ("host:2888:3888;2181", False, ("0.0.0.0", 2181)),  # a port alone: every interface
        ("host:2888:3888;127.0.0.1:2182", False, ("127.0.0.1", 2182)),
        ("host:2888:3888:participant;0.0.0.0:2181", False, ("0.0.0.0", 2181)),
        ("host:2888:3888:observer", True, None),
        ("host:2888:3888:observer;2181", True, ("0.0.0.0", 2181)),
        (" host:2888:3888:Observer ; localhost:2181 ", True, ("localhost", 2181)),
        ("host:2888:3888:PARTICIPANT", False, None),
        ("host:2888:3888;", False, None),
    ],
)
def test_roles_and_client_port_suffix(value, observer, client) -> None:
    peer = parse_peer(1, value)
    assert (peer.host, peer.quorum_port, peer.election_port) == ("host", 2888, 3888)
    assert peer.observer is observer
    assert peer.client_address == client


def test_ipv6_addresses_in_brackets() -> None:
    peer = parse_peer(1, "[::1]:2888:3888:observer;[::]:2181")
    assert (peer.host, peer.quorum_port, peer.election_port, peer.observer) == ("::1", 2888, 3888, True)
    assert peer.client_address == ("::", 2181)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("host:2888:3888:voter", "unknown role 'voter'"),
        ("host:2888", "expected host:quorumPort:electionPort"),
        ("host:2888:3888:observer:extra", "expected host:quorumPort:electionPort"),
        (":2888:3888", "expected host:quorumPort:electionPort"),
        ("host:x:3888", "ports must be numbers"),
        ("host:2888:70000", "ports must be numbers"),
        ("host:2888:3888;2181;2182", "expected host:quorumPort:electionPort"),
        ("host:2888:3888;h:1:2", "expected host:quorumPort:electionPort"),
        ("host:2888:3888;port", "ports must be numbers"),
        ("a:2888:3888|b:2888:3888", "not supported"),
        ("[::1:2888:3888", "IPv6"),
    ],
)
def test_bad_server_lines_are_refused_saying_why(value, says) -> None:
    with pytest.raises(ConfigError) as e:
        parse_peer(1, value)
    assert says in one_line(e.value)
    assert f"server.1={value}" in str(e.value)


def test_own_client_port_suffix_sets_the_client_address(tmp_path) -> None:
    config = load(write_config(tmp_path, 1, "server.1=0.0.0.0:2888:3888;2191", "server.2=h2:2888:3888;2181"))
    assert (config.client_port_address, config.client_port) == ("0.0.0.0", 2191)
    config = load(write_config(tmp_path, 1, "server.1=h1:2888:3888:participant;127.0.0.1:2192", "server.2=h2:2888:3888"))
    assert (config.client_port_address, config.client_port) == ("127.0.0.1", 2192)


def test_client_port_keys_may_repeat_the_suffix_but_not_contradict_it(tmp_path) -> None:
    agree = ["clientPort=2191", "clientPortAddress=127.0.0.1", "server.1=h:2888:3888;127.0.0.1:2191"]
    config = load(write_config(tmp_path, 1, *agree))
    assert (config.client_port_address, config.client_port) == ("127.0.0.1", 2191)
    # A wildcard clientPortAddress leaves the address to the suffix, as in ZooKeeper.
    config = load(write_config(tmp_path, 1, "clientPortAddress=0.0.0.0", "server.1=h:2888:3888;127.0.0.1:2191"))
    assert config.client_port_address == "127.0.0.1"
    with pytest.raises(ConfigError) as e:
        load(write_config(tmp_path, 1, "clientPort=2181", "server.1=h:2888:3888;2191"))
    assert "clientPort=2181" in one_line(e.value) and "0.0.0.0:2191" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load(write_config(tmp_path, 1, "clientPortAddress=127.0.0.1", "server.1=h:2888:3888;2191"))
    assert "clientPortAddress=127.0.0.1" in one_line(e.value)


def test_a_server_listed_twice_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="server.1 is listed twice"):
        load(write_config(tmp_path, 1, "server.1=a:2888:3888", "server.1=b:2888:3888"))
