"""Start, probe and stop the servers the compatibility tests run against.

Two kinds of server, one handle type: Apache ZooKeeper standalone (the Debian `zookeeper`
package, run with `java` directly) and our own `python -m ccore serve`. Both listen on a free
127.0.0.1 port, are judged up when `ruok` answers `imok`, and are killed at teardown.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import attrs

from ccore.server.ensemble import free_ports as ensemble_free_ports

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
FOUR_LETTER_TIMEOUT_S = 5.0
NOT_SERVING = "This ZooKeeper instance is not currently serving requests"

ZK_NOT_INSTALLED = "Apache ZooKeeper not installed: apt-get install -y zookeeper"
ZK_JAR_DIRS = (Path("/usr/share/java"), Path("/usr/share/zookeeper"), Path("/usr/share/zookeeper/lib"))
# An SLF4J binding so the server log says something; the Debian jar's manifest Class-Path
# brings slf4j-api but no binding, which would leave the log (and our failure messages) empty.
SLF4J_BINDINGS = ("slf4j-simple.jar", "slf4j-jdk14.jar")


class ServerStartError(RuntimeError):
    """A server did not answer `ruok` in time, or exited while starting."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1 (see ccore.server.ensemble.free_ports)."""
    return ensemble_free_ports(n)


def four_letter(port: int, command: str, *, host: str = HOST, timeout_s: float = FOUR_LETTER_TIMEOUT_S) -> str:
    """Send a four-letter word and return everything the server writes before closing."""
    deadline = time.monotonic() + timeout_s
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(command.encode("ascii"))
        chunks = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"four-letter word {command!r} on port {port}: no EOF after {timeout_s}s")
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def isro(port: int) -> str:
    """`isro`'s answer ("ro", "rw", "null"), or "down" when nothing answers."""
    try:
        return four_letter(port, "isro", timeout_s=3.0)
    except OSError:
        return "down"


def wait_for_imok(port: int, proc: subprocess.Popen, log_path: Path, timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll `ruok` until `imok`; fail with the log tail on timeout or early exit."""
    deadline = time.monotonic() + timeout_s
    last_error: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(
                f"server exited with status {proc.returncode} before answering ruok on port {port}\n"
                f"--- log tail ({log_path}) ---\n{tail(log_path)}"
            )
        try:
            answer = four_letter(port, "ruok", timeout_s=1.0)
            if answer == "imok" and serving(port):
                return
            last_error = f"ruok answered {answer!r}"
        except OSError as exc:
            last_error = exc
        time.sleep(0.1)
    raise ServerStartError(
        f"no imok from port {port} within {timeout_s}s (last: {last_error})\n--- log tail ({log_path}) ---\n{tail(log_path)}"
    )


def _die_with_parent(argv: list[str]) -> list[str]:
    """Ask Linux to SIGKILL the server when the pytest process goes (setpriv --pdeathsig), so
    no server outlives a killed test run where the kernel honours it; otherwise the fixtures'
    teardown is all there is."""
    setpriv = shutil.which("setpriv")
    if setpriv and sys.platform.startswith("linux"):
        return [setpriv, "--pdeathsig", "KILL", "--", *argv]
    return argv


def serving(port: int) -> bool:
    """ZooKeeper answers `ruok` with `imok` a moment before it accepts sessions (it closes
    them with "ZooKeeperServer not running"); `srvr` says so until then."""
    try:
        return NOT_SERVING not in four_letter(port, "srvr", timeout_s=1.0)
    except OSError:
        return True  # a server without srvr: imok is all we can go by


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text("utf-8", "replace")
    except OSError as exc:
        return f"<cannot read log: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------
# Apache ZooKeeper


def zookeeper_jar() -> Path | None:
    """The Debian ZooKeeper server jar, or None when the package is missing."""
    override = os.environ.get("CCORE_ZK_JAR")
    if override:
        return Path(override) if Path(override).is_file() else None
    for directory in ZK_JAR_DIRS:
        jar = directory / "zookeeper.jar"
        if jar.is_file():
            return jar
    return None


def zookeeper_classpath() -> list[Path] | None:
    """zookeeper.jar plus its manifest Class-Path (Debian writes absolute jar paths there)
    plus an SLF4J binding; None when ZooKeeper or java is not installed."""
    jar = zookeeper_jar()
    if jar is None or shutil.which("java") is None:
        return None
    entries = [jar]
    try:
        with zipfile.ZipFile(jar) as archive:
            manifest = archive.read("META-INF/MANIFEST.MF").decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile):
        manifest = ""
    # Manifest lines are folded at 72 bytes with a leading space on continuations.
    unfolded = manifest.replace("\r\n", "\n").replace("\n ", "")
    for line in unfolded.splitlines():
        if line.startswith("Class-Path:"):
            for item in line.split(":", 1)[1].split():
                path = Path(item) if item.startswith("/") else jar.parent / item
                if path.is_file():
                    entries.append(path)
    jute = jar.parent / "zookeeper-jute.jar"
    if jute.is_file() and jute not in entries:
        entries.append(jute)
    for name in SLF4J_BINDINGS:
        binding = jar.parent / name
        if binding.is_file():
            entries.append(binding)
            break
    return entries


def apache_installed() -> bool:
    return zookeeper_classpath() is not None


@attrs.define
class ServerHandle:
    """One running server process, Apache or ours, and how to reach, stop and restart it."""

    kind: str  # "apache" | "ccore"
    port: int
    data_dir: Path
    log_path: Path
    argv: list[str]
    cwd: Path
    env: Mapping[str, str] | None = None
    tick_time_ms: int = 2000
    proc: subprocess.Popen | None = None
    _log_file: object = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def connect_string(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> ServerHandle:
        assert not self.running, f"{self.kind} server on port {self.port} is already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            _die_with_parent(self.argv),
            cwd=self.cwd,
            env=dict(self.env) if self.env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in pytest must not reach the server first
        )
        try:
            wait_for_imok(self.port, self.proc, self.log_path, timeout_s)
        except BaseException:
            self.kill()
            raise
        log.info("%s server up on %s (pid %s)", self.kind, self.connect_string, self.proc.pid)
        return self

    def _wait_exit(self, timeout_s: float) -> bool:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _finish(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """SIGKILL: a crash. Nothing is flushed that was not already fsynced."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self._wait_exit(STOP_TIMEOUT_S)
        self._finish()

    def terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM and wait for a clean exit; SIGKILL if it does not come. Returns the exit status."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if not self._wait_exit(timeout_s):
                log.warning("%s server pid %s ignored SIGTERM for %ss; killing", self.kind, self.proc.pid, timeout_s)
                self.kill()
        self._finish()
        return None if self.proc is None else self.proc.returncode

    def stop(self, how: str = "kill") -> None:
        if how == "kill":
            self.kill()
        elif how == "term":
            self.terminate()
        else:
            raise ValueError(f"stop how={how!r}: expected 'kill' or 'term'")

    def restart(self, how: str = "kill", timeout_s: float = START_TIMEOUT_S) -> ServerHandle:
        """Stop and start again on the same port and data directory."""
        self.stop(how)
        deadline = time.monotonic() + timeout_s
        # The old process's listening socket can linger a moment on some kernels.
        while True:
            try:
                return self.start(timeout_s=max(1.0, deadline - time.monotonic()))
            except ServerStartError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def four_letter(self, command: str, timeout_s: float = FOUR_LETTER_TIMEOUT_S) -> str:
        return four_letter(self.port, command, timeout_s=timeout_s)

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


def apache_server(
    base_dir: Path,
    *,
    tick_time_ms: int = 2000,
    min_session_timeout_ms: int | None = None,
    max_session_timeout_ms: int | None = None,
    port: int | None = None,
    system_properties: Mapping[str, str] | None = None,
    extra_config: Mapping[str, str] | None = None,
) -> ServerHandle:
    """A not-yet-started Apache ZooKeeper standalone server under `base_dir`."""
    classpath = zookeeper_classpath()
    if classpath is None:
        raise FileNotFoundError(ZK_NOT_INSTALLED)
    port = port or free_port()
    base_dir.mkdir(parents=True, exist_ok=True)
    data_dir = base_dir / "data"
    config = {
        "tickTime": str(tick_time_ms),
        "dataDir": str(data_dir),
        "clientPort": str(port),
        "clientPortAddress": HOST,
        "admin.enableServer": "false",
        "4lw.commands.whitelist": "*",
        "forceSync": "yes",
        "maxClientCnxns": "0",
        "autopurge.purgeInterval": "0",
    }
    if min_session_timeout_ms is not None:
        config["minSessionTimeout"] = str(min_session_timeout_ms)
    if max_session_timeout_ms is not None:
        config["maxSessionTimeout"] = str(max_session_timeout_ms)
    config.update(extra_config or {})
    config_path = base_dir / "zoo.cfg"
    config_path.write_text("".join(f"{key}={value}\n" for key, value in config.items()))
    props = {
        "zookeeper.extendedTypesEnabled": "true",  # TTL nodes
        "zookeeper.admin.enableServer": "false",
        "zookeeper.jmx.log4j.disable": "true",
        "org.slf4j.simpleLogger.defaultLogLevel": "info",
        "org.slf4j.simpleLogger.showDateTime": "true",
        "java.net.preferIPv4Stack": "true",
    }
    props.update(system_properties or {})
    argv = [
        shutil.which("java") or "java",
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",  # starts faster; the tests are not benchmarks
        *(f"-D{key}={value}" for key, value in props.items()),
        "-cp",
        os.pathsep.join(str(p) for p in classpath),
        "org.apache.zookeeper.server.ZooKeeperServerMain",
        str(config_path),
    ]
    return ServerHandle(
        kind="apache",
        port=port,
        data_dir=data_dir,
        log_path=base_dir / "zookeeper.log",
        argv=argv,
        cwd=base_dir,
        tick_time_ms=tick_time_ms,
    )


# ---------------------------------------------------------------------------------------
# Our server


def ccore_server(
    base_dir: Path,
    *,
    tick_time_ms: int = 2000,
    min_session_timeout_ms: int | None = None,
    max_session_timeout_ms: int | None = None,
    port: int | None = None,
    extra_args: list[str] | None = None,
) -> ServerHandle:
    """A not-yet-started `python -m ccore serve` under `base_dir`."""
    port = port or free_port()
    base_dir.mkdir(parents=True, exist_ok=True)
    data_dir = base_dir / "data"
    argv = [
        sys.executable,
        "-m",
        "ccore",
        "serve",
        "--client-port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--tick-time",
        str(tick_time_ms),
    ]
    if min_session_timeout_ms is not None:
        argv += ["--min-session-timeout", str(min_session_timeout_ms)]
    if max_session_timeout_ms is not None:
        argv += ["--max-session-timeout", str(max_session_timeout_ms)]
    argv += extra_args or []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return ServerHandle(
        kind="ccore",
        port=port,
        data_dir=data_dir,
        log_path=base_dir / "ccore.log",
        argv=argv,
        cwd=REPO_ROOT,
        env=env,
        tick_time_ms=tick_time_ms,
    )


def make_server(kind: str, base_dir: Path, **options) -> ServerHandle:
    if kind == "apache":
        return apache_server(base_dir, **options)
    if kind == "ccore":
        options.pop("system_properties", None)
        options.pop("extra_config", None)
        return ccore_server(base_dir, **options)
    raise ValueError(f"unknown server kind {kind!r}: expected 'apache' or 'ccore'")
