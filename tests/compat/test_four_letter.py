"""Four-letter words on the client port: the same commands answer with the same shape
(line formats, key names) and with numbers that move when the tree and the sessions do."""

from __future__ import annotations

import re

import pytest

from tests.compat.rawzk import AddWatchMode, CreateFlag

SRVR_LINES = [
    r"Zookeeper version: \S.*",
    r"Latency min/avg/max: [\d.]+/[\d.]+/[\d.]+",
    r"Received: \d+",
    r"Sent: \d+",
    r"Connections: \d+",
    r"Outstanding: \d+",
    r"Zxid: 0x[0-9a-f]+",
    r"Mode: standalone",
    r"Node count: \d+",
]

MNTR_KEYS = [
    "zk_version",
    "zk_avg_latency",
    "zk_max_latency",
    "zk_min_latency",
    "zk_packets_received",
    "zk_packets_sent",
    "zk_num_alive_connections",
    "zk_outstanding_requests",
    "zk_server_state",
    "zk_znode_count",
    "zk_watch_count",
    "zk_ephemerals_count",
    "zk_approximate_data_size",
    "zk_open_file_descriptor_count",
    "zk_max_file_descriptor_count",
]


def srvr_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            fields[key] = value
    return fields


def mntr(zk_handle) -> dict[str, str]:
    text = zk_handle.four_letter("mntr")
    fields = {}
    for line in text.splitlines():
        if not line:
            continue
        key, sep, value = line.partition("\t")
        assert sep, f"mntr line without a tab: {line!r}"
        fields[key] = value
    return fields


def test_ruok(zk_handle):
    assert zk_handle.four_letter("ruok") == "imok"


def test_isro(zk_handle):
    assert zk_handle.four_letter("isro") == "rw"


def test_srvr_lines(zk_handle):
    text = zk_handle.four_letter("srvr")
    lines = [line for line in text.splitlines() if line]
    assert len(lines) == len(SRVR_LINES), text
    for pattern, line in zip(SRVR_LINES, lines, strict=True):
        assert re.fullmatch(pattern, line), f"{line!r} does not match {pattern!r}"


def test_srvr_counts_follow_the_tree(zk_handle, kazoo_client, zk_root):
    before = srvr_fields(zk_handle.four_letter("srvr"))
    for name in ("a", "b", "c"):
        kazoo_client.create(f"{zk_root}/{name}")
    czxid = kazoo_client.exists(f"{zk_root}/c").czxid
    after = srvr_fields(zk_handle.four_letter("srvr"))
    assert int(after["Node count"]) == int(before["Node count"]) + 3
    assert int(after["Zxid"], 16) >= czxid
    assert int(after["Connections"]) >= 1
    assert int(after["Received"]) > int(before["Received"])


def test_stat_lists_clients_and_srvr_fields(zk_handle, raw_factory):
    raw_factory()
    text = zk_handle.four_letter("stat")
    assert text.startswith("Zookeeper version: ")
    clients = text.split("Clients:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert clients, text
    for line in clients:
        assert re.match(r"^ /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+", line), line
    fields = srvr_fields(text)
    assert fields["Mode"] == "standalone"
    assert re.fullmatch(r"0x[0-9a-f]+", fields["Zxid"])


def test_mntr_keys(zk_handle):
    fields = mntr(zk_handle)
    missing = [key for key in MNTR_KEYS if key not in fields]
    assert not missing, f"mntr lacks {missing}"
    assert fields["zk_server_state"] == "standalone"
    for key in MNTR_KEYS[1:]:
        if key != "zk_server_state":
            float(fields[key])  # numeric


def test_mntr_counts_follow_the_tree(zk_handle, raw_factory, zk_root):
    before = mntr(zk_handle)
    client = raw_factory()
    client.create(f"{zk_root}/p")
    client.create(f"{zk_root}/p/e", b"12345", flags=CreateFlag.EPHEMERAL)
    client.get(f"{zk_root}/p/e", watch=True)
    after = mntr(zk_handle)
    assert int(after["zk_znode_count"]) == int(before["zk_znode_count"]) + 2
    assert int(after["zk_ephemerals_count"]) == int(before["zk_ephemerals_count"]) + 1
    assert int(after["zk_watch_count"]) == int(before["zk_watch_count"]) + 1
    assert int(after["zk_num_alive_connections"]) >= int(before["zk_num_alive_connections"]) + 1
    assert int(after["zk_approximate_data_size"]) > int(before["zk_approximate_data_size"])


def test_conf(zk_handle):
    text = zk_handle.four_letter("conf")
    conf = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert conf["clientPort"] == str(zk_handle.port)
    assert conf["tickTime"] == str(zk_handle.tick_time_ms)
    assert conf["minSessionTimeout"] == str(2 * zk_handle.tick_time_ms)
    assert conf["maxSessionTimeout"] == str(20 * zk_handle.tick_time_ms)
    assert "dataDir" in conf and "maxClientCnxns" in conf
    assert conf["serverId"] == "0"


def test_cons_shows_the_session(zk_handle, raw_factory):
    client = raw_factory()
    client.exists("/")
    text = zk_handle.four_letter("cons")
    lines = [line for line in text.splitlines() if line.strip()]
    ours = [line for line in lines if f"sid=0x{client.session_id:x}," in line]
    assert len(ours) == 1, text
    assert re.match(r"^ /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+,sid=0x[0-9a-f]+,", ours[0])
    assert f"to={client.negotiated_timeout_ms}" in ours[0]


def test_wchs(zk_handle, raw_factory, zk_root):
    pattern = r"(\d+) connections watching (\d+) paths\nTotal watches:(\d+)\n?"
    before = re.fullmatch(pattern, zk_handle.four_letter("wchs").strip() + "\n")
    assert before, zk_handle.four_letter("wchs")
    client = raw_factory()
    client.create(f"{zk_root}/w")
    client.get(f"{zk_root}/w", watch=True)
    after = re.fullmatch(pattern, zk_handle.four_letter("wchs").strip() + "\n")
    assert int(after.group(3)) == int(before.group(3)) + 1


@pytest.mark.parametrize("word", ["wchc", "wchp"])
def test_watches_by_session_and_by_path(zk_handle, raw_factory, zk_root, word):
    client = raw_factory()
    client.create(f"{zk_root}/w")
    client.get(f"{zk_root}/w", watch=True)
    text = zk_handle.four_letter(word)
    session, path = re.escape(f"0x{client.session_id:x}"), re.escape(f"{zk_root}/w")
    if word == "wchc":  # session, then its paths, tab-indented
        assert re.search(rf"^{session}\n(\t.*\n)*\t{path}$", text, re.MULTILINE), text
    else:  # path, then its sessions
        assert re.search(rf"^{path}\n(\t.*\n)*\t{session}$", text, re.MULTILINE), text


def test_persistent_watch_counted(zk_handle, raw_factory, zk_root):
    before = int(mntr(zk_handle)["zk_watch_count"])
    client = raw_factory()
    client.add_watch(f"{zk_root}/pw", AddWatchMode.PERSISTENT_RECURSIVE)
    assert int(mntr(zk_handle)["zk_watch_count"]) >= before + 1


def test_dump_lists_sessions_and_ephemerals(zk_handle, raw_factory, zk_root):
    client = raw_factory()
    client.create(f"{zk_root}/e", flags=CreateFlag.EPHEMERAL)
    text = zk_handle.four_letter("dump")
    assert "SessionTracker dump:" in text
    assert "ephemeral nodes dump:" in text
    ephemerals = text.split("ephemeral nodes dump:", 1)[1]
    assert f"0x{client.session_id:x}:\n\t{zk_root}/e" in ephemerals


def test_unknown_word_on_client_port_closes_connection(zk_handle):
    """Four bytes that are no command are read as a frame length; nothing sensible answers."""
    assert zk_handle.four_letter("xxxx", timeout_s=10) == ""
