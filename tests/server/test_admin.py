"""The admin HTTP API and /metrics on a real in-process server: JSON that agrees with the 4lw
text, ZooKeeper's names, and bad HTTP that costs a 4xx and never the server."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from ccore.server import fourletter
from ccore.server.config import PROMETHEUS_PROVIDER
from ccore.znodes import records as r
from ccore.znodes.constants import CreateMode, OpCode

from .helpers import RawClient, start_server


async def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET through the standard library, in a thread: a client that is not ours."""

    def fetch() -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers.items()), e.read()

    return await trio.to_thread.run_sync(fetch)


async def command(port: int, name: str) -> tuple[int, dict]:
    status, _, body = await get(port, f"/commands/{name}")
    return status, json.loads(body)


async def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    out = b""
    with trio.fail_after(timeout):
        await stream.send_all(data)
        while chunk := await stream.receive_some(65536):
            out += chunk
    await stream.aclose()
    return out


async def admin_server(nursery, tmp_path, **kw):
    kw.setdefault("admin_port", 0)
    server = await start_server(nursery, tmp_path, **kw)
    assert server.ops.admin is not None and server.ops.admin.port
    return server, server.ops.admin.port


async def test_every_listed_command_answers_json_with_zookeepers_envelope(nursery, tmp_path) -> None:
    server, port = await admin_server(nursery, tmp_path)
    status, listing = await command(port, "")
    assert status == 200
    names = listing["commands"]
    for expected in ("ruok", "server_stats", "stats", "monitor", "configuration", "connections", "watch_summary"):
        assert expected in names
    for expected in ("dump", "environment", "leader", "is_read_only", "voting_view", "snapshot"):
        assert expected in names
    for name in names:
        if name in ("snapshot", "stat_reset"):
            continue
        status, body = await command(port, name)
        assert status == 200, (name, body)
        assert body["command"] == name
        if name != "leader":  # a standalone server has no leader: ZooKeeper answers an error
            assert body["error"] is None, (name, body)
    status, body = await command(port, "leader")
    assert body["error"] == "server is not initialized"


async def test_json_and_four_letter_words_say_the_same(nursery, tmp_path) -> None:
    server, port = await admin_server(nursery, tmp_path)
    c = await RawClient.connect(server.port)
    await c.create("/x", b"12345")
    await c.create("/x/e", b"", CreateMode.EPHEMERAL)
    await c.call(OpCode.getData, r.GetDataRequest("/x", True))

    _, mntr = await command(port, "mntr")  # an alias: answered under the primary name
    assert mntr["command"] == "monitor"
    text = dict(line.split("\t") for line in fourletter.answer(server, "mntr").splitlines())
    for key in ("znode_count", "watch_count", "ephemerals_count", "approximate_data_size", "num_alive_connections"):
        assert str(mntr[key]) == text[f"zk_{key}"], key
    assert mntr["znode_count"] == len(server.tree.nodes)
    assert mntr["ephemerals_count"] == 1 and mntr["watch_count"] == 1

    _, wchs = await command(port, "wchs")
    assert (wchs["num_connections"], wchs["num_paths"], wchs["num_total_watches"]) == (1, 1, 1)
    assert fourletter.answer(server, "wchs") == "1 connections watching 1 paths\nTotal watches:1\n"

    _, cons = await command(port, "cons")
    assert [conn["session_id"] for conn in cons["connections"]] == [f"{c.session_id:#x}"]
    assert f"sid={c.session_id:#x}" in fourletter.answer(server, "cons")

    _, conf = await command(port, "conf")
    assert conf["client_port"] == server.port and conf["tick_time"] == 100
    assert f"clientPort={server.port}\n" in fourletter.answer(server, "conf")

    _, stat = await command(port, "stat")
    assert stat["node_count"] == len(server.tree.nodes)
    assert stat["server_stats"]["server_state"] == "standalone"
    assert stat["server_stats"]["last_processed_zxid"] == server.last_zxid
    assert len(stat["connections"]) == 1

    _, dump = await command(port, "dump")
    assert dump["session_id_to_ephemeral_paths"] == {str(c.session_id): ["/x/e"]}
    assert "/x/e" in fourletter.answer(server, "dump")

    _, isro = await command(port, "is_read_only")
    assert isro["read_only"] is False


async def test_unknown_command_and_resource_are_404(nursery, tmp_path) -> None:
    _, port = await admin_server(nursery, tmp_path)
    status, body = await command(port, "nope")
    assert status == 404 and body["error"] == "Unknown command: nope"
    status, _, _ = await get(port, "/elsewhere")
    assert status == 404


async def test_bad_http_gets_4xx_and_the_server_goes_on(nursery, tmp_path) -> None:
    server, port = await admin_server(nursery, tmp_path)
    assert (await raw_exchange(port, b"NOT HTTP AT ALL\r\n\r\n")).startswith(b"HTTP/1.1 400")
    huge = b"GET /commands/ruok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    assert (await raw_exchange(port, huge)).split(b" ")[1] in (b"431", b"400")
    post = b"POST /commands/ruok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"
    assert (await raw_exchange(port, post)).startswith(b"HTTP/1.1 405")
    big_body = b"GET /commands/ruok HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 100_000
    assert (await raw_exchange(port, big_body)).startswith(b"HTTP/1.1 413")
    # Two requests on one keep-alive connection, then the client closes.
    two = b"GET /commands/ruok HTTP/1.1\r\nHost: x\r\n\r\nGET /commands/isro HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = await raw_exchange(port, two)
    assert out.count(b"HTTP/1.1 200") == 2 and b'"is_read_only"' in out
    status, body = await command(port, "ruok")
    assert status == 200 and body["error"] is None
    assert await RawClient.connect(server.port)  # the client port never noticed


async def test_a_slow_client_is_cut_off_after_the_request_timeout(nursery, tmp_path) -> None:
    server, port = await admin_server(nursery, tmp_path)
    assert server.ops.admin is not None
    server.ops.admin.http.request_timeout_s = 0.3
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"GET /commands/ruok HTTP/1.1\r\n")  # and never the rest
    with trio.fail_after(5):
        assert await stream.receive_some(100) == b""  # closed on us
    status, _ = await command(port, "ruok")
    assert status == 200


async def test_connections_past_the_limit_are_closed(nursery, tmp_path) -> None:
    server, port = await admin_server(nursery, tmp_path)
    assert server.ops.admin is not None
    server.ops.admin.http.max_connections = 2
    held = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
    await trio.sleep(0.1)
    with trio.fail_after(5):
        assert await raw_exchange(port, b"GET /commands/ruok HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    for s in held:
        await s.aclose()
    await trio.sleep(0.1)
    status, _ = await command(port, "ruok")
    assert status == 200


async def test_admin_port_in_use_is_a_warning_and_the_server_serves(nursery, tmp_path, caplog) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="ccore.server.ops"):
            server = await start_server(nursery, tmp_path, admin_port=busy)
        assert server.ops.admin is None
        assert "admin server not started" in caplog.text
        c = await RawClient.connect(server.port)
        await c.create("/still-serving")


async def test_admin_server_can_be_disabled(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path, admin_enabled=False, admin_port=0)
    assert server.ops.admin is None


# -- /metrics ---------------------------------------------------------------------------------


def families(text: str) -> dict[str, dict[tuple[str, tuple], float]]:
    """name -> {(sample name, labels): value}"""
    out: dict[str, dict[tuple[str, tuple], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(fam.name, {})[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_carry_zookeepers_names_and_the_servers_values(nursery, tmp_path) -> None:
    server = await start_server(nursery, tmp_path, admin_port=0, metrics_provider=PROMETHEUS_PROVIDER, metrics_port=0)
    assert server.ops.metrics is not None
    port = server.ops.metrics.port
    c = await RawClient.connect(server.port)
    for i in range(5):
        await c.create(f"/m{i}", b"abc")
    await c.call(OpCode.getData, r.GetDataRequest("/m0", True))
    status, headers, body = await get(port, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    fams = families(body.decode())
    assert fams["znode_count"][("znode_count", ())] == len(server.tree.nodes)
    assert fams["watch_count"][("watch_count", ())] == 1
    assert fams["num_alive_connections"][("num_alive_connections", ())] == 1
    assert fams["global_sessions"][("global_sessions", ())] == 1
    assert fams["commit_count"][("commit_count", ())] == server.stats.txns >= 6
    # Summaries: one fsync per batch at least; every write and read timed.
    assert fams["fsynctime"][("fsynctime_count", ())] >= 1
    assert fams["updatelatency"][("updatelatency_count", ())] == 5
    assert fams["readlatency"][("readlatency_count", ())] >= 1
    assert ("updatelatency", (("quantile", "0.99"),)) in fams["updatelatency"]
    for name in ("avg_latency", "max_latency", "min_latency", "outstanding_requests", "approximate_data_size"):
        assert name in fams, name
    assert "process_resident_memory_bytes" in fams
    # The exposition keeps ZooKeeper's counter names (no `_total`).
    assert "\ncommit_count " in body.decode()
    status, _, _ = await get(port, "/elsewhere")
    assert status == 404


async def test_metrics_port_in_use_stops_the_server_with_one_line(tmp_path) -> None:
    from ccore.server.config import ConfigError
    from ccore.znodes.groups import unwrap_single

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="metricsProvider.httpPort"):
            with unwrap_single():
                async with trio.open_nursery() as nursery:
                    await start_server(nursery, tmp_path, admin_port=0, metrics_provider=PROMETHEUS_PROVIDER, metrics_port=busy)
