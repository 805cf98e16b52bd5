"""TLS keys in zoo.cfg: what they set, and every mistake with the stores as one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ccore.server.config import ConfigError, ServerConfig, load
from ccore.server.zkserver import ZKServer
from tests.compat.servers import REPO_ROOT
from tests.tls_certs import Authority, Identity, authority


@pytest.fixture
def ca(tmp_path) -> Authority:
    return authority(tmp_path)


@pytest.fixture
def server_id(ca) -> Identity:
    return ca.issue("server")


def cfg(tmp_path: Path, *lines: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "zoo.cfg"
    path.write_text("\n".join([f"dataDir={tmp_path / 'data'}", *lines]) + "\n")
    return path


def build(tmp_path: Path, *lines: str) -> ZKServer:
    return ZKServer(load(cfg(tmp_path, *lines)))


def error_of(tmp_path: Path, *lines: str) -> str:
    with pytest.raises(ConfigError) as e:
        build(tmp_path, *lines)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_keys_are_read(tmp_path, ca, server_id) -> None:
    config = load(
        cfg(
            tmp_path,
            "clientPort=2181",
            "secureClientPort=2281",
            f"ssl.keyStore.location={server_id.key_store}",
            "ssl.keyStore.type=pem",
            f"ssl.trustStore.location={ca.trust_store}",
            "ssl.clientAuth=Want",
            "ssl.hostnameVerification=false",
            "ssl.ciphersuites=TLS_AES_128_GCM_SHA256",
        )
    )
    assert (config.client_port, config.secure_client_port) == (2181, 2281)
    tls = config.client_tls
    assert (tls.key_store, tls.trust_store, tls.client_auth) == (server_id.key_store, ca.trust_store, "want")
    assert tls.key_store_type == "PEM" and tls.hostname_verification is False
    assert tls.ignored == ["ssl.ciphersuites"]
    assert not config.ssl_quorum and not config.quorum_tls.configured


def test_secure_client_port_alone_means_no_plain_port(tmp_path) -> None:
    assert load(cfg(tmp_path, "secureClientPort=2281")).client_port is None
    assert load(cfg(tmp_path, "secureClientPort=2281", "clientPort=2181")).client_port == 2181
    assert load(cfg(tmp_path)).client_port == 2181 and load(cfg(tmp_path)).secure_client_port is None


def test_both_ports_the_same_or_none_are_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="both 2181"):
        load(cfg(tmp_path, "clientPort=2181", "secureClientPort=2181")).validate()
    with pytest.raises(ConfigError, match="no client port"):
        ServerConfig(client_port=None).validate()


def test_a_tls_server_starts_from_pem_stores(tmp_path, ca, server_id) -> None:
    server = build(
        tmp_path,
        "secureClientPort=0",
        f"ssl.keyStore.location={server_id.key_store}",
        f"ssl.trustStore.location={ca.trust_store}",
    )
    assert server.tls.client_port is not None and server.tls.peers is None


@pytest.mark.parametrize("kind", ["JKS", "PKCS12", "BCFKS"])
def test_a_jks_or_pkcs12_store_type_is_one_line_saying_pem(tmp_path, kind) -> None:
    with pytest.raises(ConfigError) as e:
        load(cfg(tmp_path, "secureClientPort=2281", f"ssl.keyStore.type={kind}"))
    assert f"ssl.keyStore.type={kind}" in str(e.value) and "only PEM" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="ssl.quorum.trustStore.type.*only PEM"):
        load(cfg(tmp_path, f"ssl.quorum.trustStore.type={kind}"))


def test_a_binary_store_file_is_not_pem(tmp_path, server_id) -> None:
    jks = tmp_path / "keystore.jks"
    jks.write_bytes(b"\xfe\xed\xfe\xed\x00\x00\x00\x02" + bytes(64))  # JKS magic
    message = error_of(tmp_path, "secureClientPort=0", f"ssl.keyStore.location={jks}")
    assert f"ssl.keyStore.location={jks} is not a PEM file" in message and "only PEM" in message


def test_a_missing_store_file_is_one_line(tmp_path, ca) -> None:
    missing = tmp_path / "nope.pem"
    message = error_of(tmp_path, "secureClientPort=0", f"ssl.keyStore.location={missing}")
    assert message == f"ssl.keyStore.location={missing}: cannot read it: No such file or directory"
    message = error_of(tmp_path, "secureClientPort=0", f"ssl.keyStore.location={ca.trust_store}")
    assert "holds no private key" in message
    message = error_of(tmp_path, "secureClientPort=0")
    assert message.startswith("secureClientPort needs ssl.keyStore.location")


def test_trust_store_mistakes(tmp_path, server_id) -> None:
    message = error_of(
        tmp_path,
        "secureClientPort=0",
        f"ssl.keyStore.location={server_id.key_store}",
        f"ssl.trustStore.location={server_id.key}",  # a key, no certificate
    )
    assert "ssl.trustStore.location" in message and "holds no certificate" in message


def test_an_encrypted_key_needs_its_password(tmp_path, ca, server_id) -> None:
    key = serialization.load_pem_private_key(server_id.key.read_bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"s3cret")
    )
    store = tmp_path / "encrypted.pem"
    store.write_bytes(encrypted + server_id.cert.read_bytes())
    base = ["secureClientPort=0", f"ssl.keyStore.location={store}", f"ssl.trustStore.location={ca.trust_store}"]
    assert "give its password in ssl.keyStore.password" in error_of(tmp_path, *base)
    assert "cannot decrypt the private key" in error_of(tmp_path, *base, "ssl.keyStore.password=wrong")
    assert build(tmp_path, *base, "ssl.keyStore.password=s3cret").tls.client_port is not None


def test_quorum_key_mistakes(tmp_path, ca, server_id) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myid").write_text("1\n")
    members = ["server.1=127.0.0.1:2888:3888", "server.2=127.0.0.1:2889:3889"]
    assert "sslQuorum=true needs ssl.quorum.keyStore.location" in error_of(tmp_path, *members, "sslQuorum=true")
    quorum = [f"ssl.quorum.keyStore.location={server_id.key_store}", f"ssl.quorum.trustStore.location={ca.trust_store}"]
    message = error_of(tmp_path, *members, "sslQuorum=true", *quorum, "ssl.quorum.clientAuth=want")
    assert "peer links always authenticate both sides" in message
    assert build(tmp_path, *members, "sslQuorum=true", *quorum).tls.peers is not None
    with pytest.raises(ConfigError, match="sslQuorum=yes-please: expected true or false"):
        load(cfg(tmp_path, "sslQuorum=yes-please"))
    assert "a standalone server has no peer links" in error_of(tmp_path / "alone", "sslQuorum=true", *quorum)


def test_ccore_serve_says_it_in_one_line(tmp_path) -> None:
    missing = tmp_path / "missing.pem"
    path = cfg(tmp_path, "secureClientPort=0", f"ssl.keyStore.location={missing}")
    proc = subprocess.run(
        [sys.executable, "-m", "ccore", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"ccore serve: ssl.keyStore.location={missing}: cannot read it: No such file or directory\n"
