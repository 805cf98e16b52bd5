"""A guest (a joining or removed server, outside our configuration) that says hello and hangs up
at once must not take the server down.

Found by the chaos membership nemesis (seed 21): a server exited with

    File "server/peers.py", in _dial
        host, port = self._dial_address(out.peer_id)
    File "server/replication.py", in <lambda>
        dial_address=lambda peer: overrides.get(peer, self.net.members[peer]),
    KeyError: 5

`_take_guest` starts a task dialling the guest back; if the guest's connection ends before
that task first runs, `_forget` has already removed the guest from `members` (and cancelled a
scope the task has not entered yet), and `_dial` looks its address up before its first
checkpoint. The KeyError escaped the network's nursery and ended the server. Now `_dial`
checkpoints first and dials only while the peer is still one it keeps.
"""

from __future__ import annotations

import cbor2
import trio

from ccore.server.peers import HELLO_MAGIC, PeerNetwork, frame

ATTEMPTS = 40


async def test_a_guest_that_hangs_up_at_once_does_not_crash_the_network() -> None:
    net = PeerNetwork(
        1,
        {1: ("127.0.0.1", 0)},
        encode=cbor2.dumps,
        decode=cbor2.loads,
        on_message=lambda *a: None,
        dynamic=True,
        backoff_s=(0.01, 0.02),
    )
    # Where the guests say they listen: nobody answers there, which is fine for this test.
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    guest_port = listener.socket.getsockname()[1]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(net.run)
            for guest in range(2, 2 + ATTEMPTS):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(frame(cbor2.dumps([HELLO_MAGIC, guest, "a digest", ["127.0.0.1", guest_port]])))
                await stream.aclose()  # hello, then gone
                await trio.sleep(0.02)
            nursery.cancel_scope.cancel()  # the network survived every guest
    await listener.aclose()
