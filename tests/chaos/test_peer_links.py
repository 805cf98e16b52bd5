"""The fault proxies in front of the real peer links of server/peers.py: each server dials
each peer through the proxy of that directed link (the `dial_address` hook), so a fault on
("peer", i, j) stops exactly i -> j. This is how the ensemble harness will wire them."""

from __future__ import annotations

import cbor2
import trio

from ccore.server.peers import PeerNetwork
from chaos.proxy import HOST, ProxyFleet
from tests.compat.servers import free_ports
from tests.polling import wait_for


async def test_a_fault_on_one_directed_link_stops_only_that_direction(nursery: trio.Nursery) -> None:
    members = {sid: (HOST, port) for sid, port in zip((1, 2, 3), free_ports(3), strict=True)}
    fleet: ProxyFleet = await nursery.start(ProxyFleet(seed=3).run)
    dial: dict[tuple[int, int], tuple[str, int]] = {}
    for i in members:
        for j in members:
            if i != j:
                dial[(i, j)] = (HOST, await fleet.add(("peer", i, j), members[j]))
    inbox: list[tuple[int, int, object]] = []
    links: set[tuple[int, int]] = set()
    nets = {
        sid: PeerNetwork(
            sid,
            members,
            encode=cbor2.dumps,
            decode=cbor2.loads,
            on_message=lambda frm, msg, me=sid: inbox.append((frm, me, msg)),
            on_connected=lambda peer, me=sid: links.add((me, peer)),
            on_disconnected=lambda peer, me=sid: links.discard((me, peer)),
            dial_address=lambda peer, me=sid: dial[(me, peer)],
            backoff_s=(0.02, 0.2),
        )
        for sid in members
    }
    for net in nets.values():
        await nursery.start(net.run)
    every_link = {(i, j) for i in members for j in members if i != j}
    await wait_for(lambda: links == every_link)

    def got(frm: int, to: int, msg: str) -> bool:
        return (frm, to, msg) in inbox

    nets[1].send(2, "before")
    nets[2].send(1, "before")
    await wait_for(lambda: got(1, 2, "before") and got(2, 1, "before"))

    # Cut 1 -> 2: the link between 1 and 2 is down for both (Zab needs both directions), so
    # nothing flows either way; the links to 3 are untouched.
    await fleet["peer", 1, 2].cut()
    await wait_for(lambda: (1, 2) not in links and (2, 1) not in links)
    nets[1].send(2, "during-cut")
    nets[2].send(1, "during-cut")
    nets[1].send(3, "during-cut")
    await wait_for(lambda: got(1, 3, "during-cut"))
    await trio.sleep(0.2)
    assert not got(1, 2, "during-cut") and not got(2, 1, "during-cut")
    assert {(1, 3), (3, 1), (2, 3), (3, 2)} <= links
    await fleet["peer", 1, 2].heal()
    # Both ends: while cut, server 1 may briefly count a dial the proxy accepts (and closes
    # at once) as up; only a healed connection also brings the link up at server 2.
    await wait_for(lambda: (1, 2) in links and (2, 1) in links)
    nets[1].send(2, "after-cut")
    await wait_for(lambda: got(1, 2, "after-cut"))

    # Blackhole 2 -> 3: server 2 still believes the link is up, yet nothing arrives.
    fleet["peer", 2, 3].blackhole()
    nets[2].send(3, "into-the-void")
    nets[3].send(2, "the-other-way")
    await wait_for(lambda: got(3, 2, "the-other-way"))
    await trio.sleep(0.2)
    assert (2, 3) in links and not got(2, 3, "into-the-void")
    # Heal closes the connection that lost bytes; server 2 redials and talks again.
    await fleet["peer", 2, 3].heal()
    await wait_for(lambda: (2, 3) in links and fleet["peer", 2, 3].stats().accepted >= 2)
    nets[2].send(3, "after-blackhole")
    await wait_for(lambda: got(2, 3, "after-blackhole"))
    assert not got(2, 3, "into-the-void")
    nursery.cancel_scope.cancel()
