"""Peer links: FIFO delivery per direction, reconnection, and refusal of strangers."""

from __future__ import annotations

import cbor2
import trio
import trio.lowlevel

from ccore.server.peers import PeerNetwork, frame
from tests.compat.servers import free_ports
from tests.polling import wait_for


def make_nets(members, inbox, links):
    nets = {}
    for sid in members:
        nets[sid] = PeerNetwork(
            sid,
            members,
            encode=cbor2.dumps,
            decode=cbor2.loads,
            on_message=lambda frm, msg, me=sid: inbox.append((frm, me, msg)),
            on_connected=lambda peer, me=sid: links.add((me, peer)),
            on_disconnected=lambda peer, me=sid: links.discard((me, peer)),
        )
    return nets


async def test_messages_flow_in_order_between_all_pairs(nursery) -> None:
    members = {i: ("127.0.0.1", p) for i, p in zip((1, 2, 3), free_ports(3), strict=True)}
    inbox: list = []
    links: set = set()
    nets = make_nets(members, inbox, links)
    for net in nets.values():
        await nursery.start(net.run)
    await wait_for(lambda: len(links) == 6)
    for i in range(100):
        nets[1].send(2, ["m", i])
        nets[3].send(1, ["n", i])
    await wait_for(lambda: len(inbox) == 200)
    assert [m[1] for f, to, m in inbox if (f, to) == (1, 2)] == list(range(100))
    assert [m[1] for f, to, m in inbox if (f, to) == (3, 1)] == list(range(100))


async def test_big_bursts_stay_whole_and_in_order(nursery) -> None:
    """`send` writes straight to the socket while nothing is queued: a burst that fills the
    socket buffer must go on through the pump task, partial writes included, in order. One
    message object sent to two peers is encoded once and must reach both whole."""
    members = {i: ("127.0.0.1", p) for i, p in zip((1, 2, 3), free_ports(3), strict=True)}
    inbox: list = []
    links: set = set()
    nets = make_nets(members, inbox, links)
    for net in nets.values():
        await nursery.start(net.run)
    await wait_for(lambda: len(links) == 6)
    sizes = [1 + (i * 7919) % 300_000 for i in range(60)]
    backlogged = False
    for i, size in enumerate(sizes):
        message = ["m", i, bytes([i]) * size]
        nets[1].send(2, message)
        nets[1].send(3, message)
        backlogged |= nets[1].backlogged
        if i % 4 == 3:
            await trio.lowlevel.checkpoint()  # let readers drain some while a queue may still wait
    assert backlogged, "no burst ever filled a socket buffer: the test proves nothing"
    await wait_for(lambda: len(inbox) == 120, timeout_s=30)
    for to in (2, 3):
        got = [m for f, t, m in inbox if (f, t) == (1, to)]
        assert [m[1] for m in got] == list(range(60))
        assert all(m[2] == bytes([m[1]]) * sizes[m[1]] for m in got)


async def test_restarted_peer_is_redialled(nursery) -> None:
    members = {i: ("127.0.0.1", p) for i, p in zip((1, 2), free_ports(2), strict=True)}
    inbox: list = []
    links: set = set()
    nets = make_nets(members, inbox, links)
    await nursery.start(nets[1].run)
    with trio.CancelScope() as scope2:
        async with trio.open_nursery() as inner:
            await inner.start(nets[2].run)
            await wait_for(lambda: (1, 2) in links)
            scope2.cancel()
    await wait_for(lambda: (1, 2) not in links)
    fresh = make_nets(members, inbox, links)[2]
    await nursery.start(fresh.run)
    await wait_for(lambda: (1, 2) in links)
    nets[1].send(2, "again")
    await wait_for(lambda: inbox and inbox[-1] == (1, 2, "again"))


async def test_strangers_and_garbage_are_refused(nursery) -> None:
    members = {i: ("127.0.0.1", p) for i, p in zip((1, 2), free_ports(2), strict=True)}
    inbox: list = []
    nets = make_nets(members, inbox, set())
    await nursery.start(nets[1].run)
    port = members[1][1]

    async def closed_after(payload: bytes) -> bool:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(payload)
        with trio.fail_after(2):
            return await stream.receive_some(10) == b""

    assert await closed_after(frame(cbor2.dumps(["ccore-peer-1", 9, nets[1].digest])))  # unknown id
    assert await closed_after(frame(cbor2.dumps(["ccore-peer-1", 2, "0000"])))  # other config
    assert await closed_after(frame(b"\xff\xfe not cbor"))
    good = frame(cbor2.dumps(["ccore-peer-1", 2, nets[1].digest]))
    # garbage after a good hello (a reserved CBOR header: cbor2 before 5.5 reads 0xff as a break marker)
    assert await closed_after(good + frame(b"\x1c"))
    assert inbox == []


async def test_a_stream_goes_in_its_place_among_the_messages(nursery) -> None:
    """Messages sent after a stream wait for all of it; a stream whose producer fails takes
    the link down (the far side cannot use half of it), and the link comes back."""
    members = {i: ("127.0.0.1", p) for i, p in zip((1, 2), free_ports(2), strict=True)}
    inbox: list = []
    links: set = set()
    nets = make_nets(members, inbox, links)
    for net in nets.values():
        await nursery.start(net.run)
    await wait_for(lambda: len(links) == 2)
    discarded: list[str] = []

    async def pieces(count: int, fail: bool = False):
        for i in range(count):
            await trio.sleep(0.001)  # produced while sent: later messages must still wait
            yield ["piece", i]
        if fail:
            raise OSError("the producer died")

    nets[1].send(2, ["before"])
    nets[1].send_stream(2, pieces(20), lambda: discarded.append("first"))
    nets[1].send(2, ["after"])
    await wait_for(lambda: ["after"] in [m for _, _, m in inbox])
    got = [m for f, t, m in inbox if (f, t) == (1, 2)]
    assert got == [["before"], *(["piece", i] for i in range(20)), ["after"]]
    assert not discarded
    inbox.clear()
    nets[1].send_stream(2, pieces(3, fail=True), lambda: discarded.append("failing"))
    await wait_for(lambda: (1, 2) not in links)
    await wait_for(lambda: (1, 2) in links and (2, 1) in links)
    nets[1].send(2, ["again"])
    await wait_for(lambda: ["again"] in [m for _, _, m in inbox])
    nets[2].send_stream(1, pieces(1), lambda: discarded.append("down"))  # link up: sent
    nursery.cancel_scope.cancel()
