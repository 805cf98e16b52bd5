"""Apache ZooKeeper's own Java client (zkCli's ZooKeeperMain, Netty socket, PEM stores) against
our secureClientPort: the TLS that ZooKeeper users configure works unchanged."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import trio

from ccore.server.config import ServerConfig
from ccore.server.tls_config import TlsSettings
from ccore.server.zkserver import ZKServer
from tests.compat.helpers import require_apache
from tests.compat.servers import zookeeper_classpath
from tests.tls_certs import authority

JAVA_TIMEOUT_S = 60.0
# The Netty client socket needs these too; Debian's zookeeper.jar manifest leaves them out.
NETTY_EXTRA_JARS = ("netty-resolver.jar", "netty-codec.jar")


def netty_classpath() -> list[Path]:
    classpath = zookeeper_classpath()
    assert classpath is not None
    extra = [classpath[0].parent / name for name in NETTY_EXTRA_JARS]
    return classpath + [jar for jar in extra if jar.is_file() and jar not in classpath]


async def zkcli(port: int, properties: dict[str, str], *command: str) -> tuple[int, str]:
    argv = [
        shutil.which("java") or "java",
        "-Xmx128m",
        "-XX:TieredStopAtLevel=1",
        "-Djava.net.preferIPv4Stack=true",
        *(f"-D{key}={value}" for key, value in properties.items()),
        "-cp",
        os.pathsep.join(map(str, netty_classpath())),
        "org.apache.zookeeper.ZooKeeperMain",
        "-timeout",
        "10000",
        "-server",
        f"127.0.0.1:{port}",
        *command,
    ]
    with trio.fail_after(JAVA_TIMEOUT_S):
        proc = await trio.run_process(argv, capture_stdout=True, stderr=subprocess.STDOUT, check=False)
    return proc.returncode, proc.stdout.decode(errors="replace")


async def test_zkcli_connects_over_tls_with_pem_stores(nursery, tmp_path) -> None:
    require_apache()
    ca = authority(tmp_path)
    settings = TlsSettings("ssl.", key_store=ca.issue("server").key_store, trust_store=ca.trust_store, client_auth="need")
    config = ServerConfig(data_dir=tmp_path / "data", client_port=None, secure_client_port=0, client_tls=settings)
    server = await nursery.start(ZKServer(config).run)
    client = ca.issue("zkcli")
    properties = {
        "zookeeper.client.secure": "true",
        "zookeeper.clientCnxnSocket": "org.apache.zookeeper.ClientCnxnSocketNetty",
        "zookeeper.ssl.keyStore.location": str(client.key_store),
        "zookeeper.ssl.keyStore.type": "PEM",
        "zookeeper.ssl.trustStore.location": str(ca.trust_store),
        "zookeeper.ssl.trustStore.type": "PEM",
    }
    status, output = await zkcli(server.secure_port, properties, "create", "/from-java", "hello")
    assert "Created /from-java" in output, output
    status, output = await zkcli(server.secure_port, properties, "get", "/from-java")
    assert "hello" in output.splitlines(), output
