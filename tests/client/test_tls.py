"""Our client over TLS on both event loops, against `ccore serve` with a secureClientPort in
its own process (tests/server/test_tls.py covers the server's side, in-process on Trio):
mutual TLS works, and each refusal -- our certificate missing, the server's unverifiable --
is a NoServerError that names the reason, never a hang or a stray exception."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ccore.client import NoServerError, connect
from tests.compat.servers import ccore_server, free_port
from tests.tls_certs import Authority, Identity, authority

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> Authority:
    return authority(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def client_id(ca) -> Identity:
    return ca.issue("client")


@pytest.fixture(scope="module")
def tls_hosts(ca, tmp_path_factory) -> Iterator[str]:
    """The connection string of the TLS port of a `ccore serve` (beside its plain port) that
    needs a client certificate."""
    base = tmp_path_factory.mktemp("tls-server")
    server_id = ca.issue("server")
    secure_port = free_port()
    config = base / "zoo.cfg"
    config.write_text(
        f"secureClientPort={secure_port}\n"
        f"ssl.keyStore.location={server_id.key_store}\n"
        f"ssl.trustStore.location={ca.trust_store}\n"
        "ssl.clientAuth=need\n"
    )
    handle = ccore_server(base, extra_args=["--config", str(config)]).start()
    try:
        yield f"127.0.0.1:{secure_port}"
    finally:
        handle.kill()


async def test_mutual_tls(tls_hosts, ca, client_id):
    async with connect(tls_hosts, tls_ca=ca.trust_store, tls_cert=client_id.cert, tls_key=client_id.key) as zk:
        path = await zk.create("/over-tls-", b"secret", sequence=True, ephemeral=True)
        assert (await zk.get(path))[0] == b"secret"


async def test_server_refuses_a_client_without_a_certificate(tls_hosts, ca):
    with pytest.raises(NoServerError) as failure:
        async with connect(tls_hosts, tls_ca=ca.trust_store, connect_timeout=1.5):
            pass
    assert "certificate" in str(failure.value)


async def test_client_refuses_a_server_it_cannot_verify(tls_hosts, client_id, tmp_path):
    other = authority(tmp_path, "other")
    with pytest.raises(NoServerError) as failure:
        async with connect(tls_hosts, tls_ca=other.trust_store, tls_cert=client_id.key_store, connect_timeout=1.5):
            pass
    assert "certificate verify failed" in str(failure.value)


async def test_plain_client_on_the_tls_port_is_refused(tls_hosts):
    with pytest.raises(NoServerError):
        async with connect(tls_hosts, connect_timeout=1.5):
            pass
