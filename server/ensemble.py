"""`ccore ensemble --nodes N`: a local ensemble of N server processes, in one command.

Writes a zoo.cfg and myid per server under a base directory, starts `ccore serve --config`
for each, waits until all answer `ruok`, prints the connection string, and stops them all on
Ctrl-C (or SIGTERM). Existing directories are reused, so a second run finds the same data.
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

READY_TIMEOUT_S = 30.0


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago (held open together while
    chosen). They come from below the kernel's ephemeral range, which it draws from for every
    port-0 bind and outgoing connection: a port chosen here and released is not handed to a
    fault proxy or a client socket before our server binds it (that collision made a chaos
    run's server exit with "Address already in use")."""
    low, high = _fixed_port_range()
    rng = random.Random()
    socks: list[socket.socket] = []
    try:
        for _ in range(50 * count + 1000):
            if len(socks) == count:
                break
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", rng.randrange(low, high) if high > low else 0))
            except OSError:
                s.close()
                continue
            socks.append(s)
        else:
            raise RuntimeError(f"found only {len(socks)} of {count} free ports in {low}-{high}")
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _fixed_port_range() -> tuple[int, int]:
    """Up to 12,000 ports just below the ephemeral range (Linux: 32768-60999), or (0, 0)
    (let the kernel choose) when that range is unknown or starts too low."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0, 0
    return (max(1024, first - 12_000), first) if first > 2048 else (0, 0)


def write_configs(base: Path, nodes: int, observers: int, first_client_port: int | None, tick_ms: int) -> list[Path]:
    """One directory per server with zoo.cfg and myid; ports are kept if configs exist."""
    existing = base / "server1" / "zoo.cfg"
    if existing.exists():
        return [base / f"server{i}" / "zoo.cfg" for i in range(1, nodes + observers + 1)]
    total = nodes + observers
    if first_client_port:
        # Fixed ports asked for: the admin APIs as predictable, from ZooKeeper's 8080 up.
        client_ports = [first_client_port + i for i in range(total)]
        admin_ports = [8080 + i for i in range(total)]
        peer_ports = free_ports(2 * total)
    else:
        ports = free_ports(4 * total)
        client_ports, admin_ports, peer_ports = ports[:total], ports[total : 2 * total], ports[2 * total :]
    lines = []
    for i in range(total):
        role = ":observer" if i >= nodes else ""
        lines.append(f"server.{i + 1}=127.0.0.1:{peer_ports[2 * i]}:{peer_ports[2 * i + 1]}{role}")
    paths = []
    for i in range(total):
        d = base / f"server{i + 1}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "myid").write_text(f"{i + 1}\n")
        cfg = d / "zoo.cfg"
        cfg.write_text(
            "\n".join(
                [
                    f"tickTime={tick_ms}",
                    "initLimit=10",
                    "syncLimit=5",
                    f"dataDir={d}",
                    f"clientPort={client_ports[i]}",
                    "clientPortAddress=127.0.0.1",
                    f"admin.serverPort={admin_ports[i]}",  # each its own: they share the machine
                    *lines,
                ]
            )
            + "\n"
        )
        paths.append(cfg)
    return paths


def client_port(cfg: Path) -> int:
    port = _config_value(cfg, "clientPort")
    if port is None:
        raise ValueError(f"{cfg} has no clientPort")
    return int(port)


def _config_value(cfg: Path, key: str) -> str | None:
    for line in cfg.read_text().splitlines():
        if line.startswith(key + "="):
            return line.split("=", 1)[1].strip()
    return None


def mode(port: int) -> str | None:
    """The server's `Mode:` from srvr (leader, follower, observer, standalone), or None while
    it is down or not serving (a member in read-only mode is not: it takes no writes)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"srvr")
            s.settimeout(1.0)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("Mode: "):
            found = line[6:].strip()
            return None if found == "read-only" else found
    return None


def start(configs: list[Path], log_level: str = "INFO") -> list[subprocess.Popen[bytes]]:
    procs = []
    for cfg in configs:
        log = open(cfg.parent / "server.log", "ab")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "ccore", "serve", "--config", str(cfg), "--log-level", log_level],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    return procs


def wait_ready(configs: list[Path], procs: list[subprocess.Popen[bytes]], timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    pending = {client_port(c): (c, p) for c, p in zip(configs, procs, strict=True)}
    while pending:
        for port, (cfg, proc) in list(pending.items()):
            if proc.poll() is not None:
                raise RuntimeError(f"server in {cfg.parent} exited with {proc.returncode}; see {cfg.parent / 'server.log'}")
            if mode(port) is not None:
                del pending[port]
        if time.monotonic() > deadline:
            raise RuntimeError(f"servers on ports {sorted(pending)} were not serving within {timeout_s:.0f} s")
        time.sleep(0.1)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ccore ensemble", description="Run a local ensemble of servers.")
    ap.add_argument("--nodes", type=int, default=3, help="voting servers (default 3)")
    ap.add_argument("--observers", type=int, default=0, help="non-voting servers (default 0)")
    ap.add_argument("--base-dir", type=Path, default=Path("ccore-ensemble"), help="default ./ccore-ensemble")
    ap.add_argument("--client-port", type=int, help="client port of server 1; the others follow (default: free ports)")
    ap.add_argument("--tick-time", type=int, default=2000, metavar="MS")
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    if args.nodes < 1:
        print("ccore ensemble: --nodes must be at least 1", file=sys.stderr)
        return 2
    configs = write_configs(args.base_dir.resolve(), args.nodes, args.observers, args.client_port, args.tick_time)
    print(f"starting {len(configs)} servers under {args.base_dir} ...", flush=True)
    procs = start(configs, args.log_level)
    try:
        wait_ready(configs, procs)
        hosts = ",".join(f"127.0.0.1:{client_port(c)}" for c in configs)
        print(f"ensemble ready: {hosts}", flush=True)
        admin = [f"http://127.0.0.1:{_config_value(c, 'admin.serverPort')}/commands" for c in configs]
        if all("None" not in a for a in admin):  # configs written before the admin API have none
            print("admin API: " + ", ".join(admin), flush=True)
        print("logs: " + ", ".join(str(c.parent / "server.log") for c in configs), flush=True)
        print("Ctrl-C stops every server", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        reported: set[int] = set()
        while True:
            # A server that dies (or is killed to try a failover) is reported; the rest go on.
            for i, (cfg, proc) in enumerate(zip(configs, procs, strict=True)):
                if proc.poll() is not None and i not in reported:
                    reported.add(i)
                    print(f"server {i + 1} exited with status {proc.returncode}; see {cfg.parent / 'server.log'}", flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping ...", flush=True)
        return 0
    except RuntimeError as e:
        print(f"ccore ensemble: {e}", file=sys.stderr)
        return 2
    finally:
        stop(procs)
