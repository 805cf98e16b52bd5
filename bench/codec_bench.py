"""CPU per operation of the server's per-write steps, in microseconds: txn codec, tree apply,
client-protocol decode/encode, session touch.

    python bench/codec_bench.py [--repeat 7] [--number 2000] [--only txn,apply]

Not a test. Each figure is the best of `--repeat` timings of `--number` operations (the
minimum is the least noisy estimate on a shared machine), in µs per operation, which is also
ms per 1000 operations. The txns are the ones the pipelined-create benchmark makes: a 100-byte
value under a fresh parent, open ACL, the connection's ip identity.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ccore.server.requests import to_op, write_response
from ccore.server.sessions import SessionTable
from ccore.znodes import protocol
from ccore.znodes import records as r
from ccore.znodes.acl import OPEN_ACL_UNSAFE, Id
from ccore.znodes.codec import (
    decode_snapshot,
    decode_txn,
    decode_value,
    encode_snapshot,
    encode_txn,
    encode_value,
)
from ccore.znodes.constants import OpCode
from ccore.znodes.tree import DataTree
from ccore.znodes.txn import Check, Create, CreateSession, Delete, Multi, Op, SetData, Txn

VALUE = b"x" * 100
AUTH = (Id("ip", "127.0.0.1"),)
PARENT = "/bench-ours-1234567890"


def _txns(n: int, op: Callable[[int], Op]) -> list[Txn]:
    return [Txn(0x5_0000_0000 + i, 1_700_000_000_000 + i, 0x1_0000_0042, op(i), AUTH, 2, 10**15 + i) for i in range(n)]


def _create(i: int) -> Create:
    return Create(f"{PARENT}/n{i:07d}", VALUE, OPEN_ACL_UNSAFE, 0)


def _multi(i: int) -> Multi:
    return Multi((_create(i), SetData(PARENT, VALUE, -1), Check(PARENT, 3), Delete(f"{PARENT}/old{i}", 2)))


KINDS: dict[str, Callable[[int], Op]] = {
    "create": _create,
    "setData": lambda i: SetData(f"{PARENT}/n{i:07d}", VALUE, -1),
    "delete": lambda i: Delete(f"{PARENT}/n{i:07d}", -1),
    "multi(4)": _multi,
    "createSession": lambda i: CreateSession(30_000, bytes(16)),
}


def best(fn: Callable[[], object], number: int, repeat: int) -> float:
    """µs per operation: the best of `repeat` runs of `fn`, which performs `number` operations."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) / number * 1e6


def bench_txn(number: int, repeat: int) -> list[tuple[str, float]]:
    out = []
    for kind, make in KINDS.items():
        txns = _txns(number, make)
        payloads = [encode_txn(t) for t in txns]
        assert [decode_txn(p) for p in payloads] == txns
        out.append(
            (f"encode_txn {kind} ({len(payloads[0])} B)", best(lambda txns=txns: [encode_txn(t) for t in txns], number, repeat))
        )
        out.append((f"decode_txn {kind}", best(lambda payloads=payloads: [decode_txn(p) for p in payloads], number, repeat)))
    ops = [_create(i) for i in range(number)]
    values = [encode_value(op, Op) for op in ops]
    assert [decode_value(v, Op) for v in values] == ops
    out.append(("encode_value create (forward)", best(lambda: [encode_value(op, Op) for op in ops], number, repeat)))
    out.append(("decode_value create (forward)", best(lambda: [decode_value(v, Op) for v in values], number, repeat)))
    return out


def bench_apply(number: int, repeat: int) -> list[tuple[str, float]]:
    creates = _txns(number, _create)
    sets = [Txn(t.zxid + number, t.time_ms, t.session, SetData(t.op.path, VALUE, -1), AUTH) for t in creates]
    deletes = [Txn(t.zxid + 2 * number, t.time_ms, t.session, Delete(t.op.path, -1), AUTH) for t in creates]
    head = Txn(0x4_0000_0000, 0, 0, Create(PARENT, b"", OPEN_ACL_UNSAFE, 0), AUTH)
    timings = {"create": [], "setData": [], "delete": []}
    for _ in range(repeat):
        tree = DataTree()
        tree.apply(head)
        for name, txns in (("create", creates), ("setData", sets), ("delete", deletes)):
            start = time.perf_counter()
            for t in txns:
                tree.apply(t)
            timings[name].append(time.perf_counter() - start)
        assert len(tree.nodes) == 5
    return [(f"tree.apply {name}", min(ts) / number * 1e6) for name, ts in timings.items()]


def bench_protocol(number: int, repeat: int) -> list[tuple[str, float]]:
    requests = [
        protocol.encode_request(i, OpCode.create, r.CreateRequest(f"{PARENT}/n{i:07d}", VALUE, OPEN_ACL_UNSAFE, 0))[4:]
        for i in range(number)
    ]
    tree = DataTree()
    results = []
    for t in [Txn(1, 0, 0, Create(PARENT, b"", OPEN_ACL_UNSAFE, 0))] + _txns(number, _create):
        results.append((t, tree.apply(t)[0]))
    results = results[1:]
    decoded = [protocol.decode_request(p) for p in requests]

    def replies() -> None:
        for (header, record), (txn, result) in zip(decoded, results, strict=True):
            err, body = write_response(header.type, record, result)
            protocol.encode_reply(header.xid, txn.zxid, err, body)

    def reads() -> None:
        for path in (t.op.path for t, _ in results):
            data, stat = tree.get_data(path, AUTH)
            protocol.encode_reply(1, 5, 0, r.GetDataResponse(data, stat))

    return [
        ("decode_request create", best(lambda: [protocol.decode_request(p) for p in requests], number, repeat)),
        ("to_op create", best(lambda: [to_op(h.type, rec) for h, rec in decoded], number, repeat)),
        ("write_response+encode_reply create", best(replies, number, repeat)),
        ("get_data+encode_reply", best(reads, number, repeat)),
    ]


def bench_sessions(number: int, repeat: int) -> list[tuple[str, float]]:
    out = []
    for sessions in (10, 1000, 10_000):
        table = SessionTable()
        for s in range(sessions):
            table.add(s, 30_000, 0.0)
        rng = random.Random(1)
        order = [rng.randrange(sessions) for _ in range(number)]
        clock = [1.0]

        def touches(table: SessionTable = table, order: list[int] = order, clock: list[float] = clock) -> None:
            now = clock[0]
            for i, s in enumerate(order):
                table.touch(s, now + i * 1e-6)
            clock[0] = now + 1.0

        out.append((f"SessionTable.touch ({sessions} sessions)", best(touches, number, repeat)))
    return out


def bench_snapshot(number: int, repeat: int) -> list[tuple[str, float]]:
    tree = DataTree()
    tree.apply(Txn(0x4_0000_0000, 0, 0, Create(PARENT, b"", OPEN_ACL_UNSAFE, 0)))
    for t in _txns(10 * number, _create):
        tree.apply(t)
    payload = encode_snapshot(tree)
    per_node = 10 * number
    return [
        ("encode_snapshot per node", best(lambda: encode_snapshot(tree), per_node, max(2, repeat // 2))),
        ("decode_snapshot per node", best(lambda: decode_snapshot(payload), per_node, max(2, repeat // 2))),
    ]


GROUPS = {
    "txn": bench_txn,
    "apply": bench_apply,
    "protocol": bench_protocol,
    "sessions": bench_sessions,
    "snapshot": bench_snapshot,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--only", default=",".join(GROUPS))
    args = parser.parse_args()
    print(f"{'step':<44} {'µs/op':>8}")
    for name in args.only.split(","):
        for label, us in GROUPS[name](args.number, args.repeat):
            print(f"{label:<44} {us:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
