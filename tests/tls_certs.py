"""Throwaway certificate authorities for the TLS tests (trustme), written out as PEM files the
way a ZooKeeper admin would keep them: a key store file with the private key and certificate
chain, a trust store file with the CA certificate."""

from __future__ import annotations

from pathlib import Path

import attrs
import trustme
from cryptography.hazmat.primitives import serialization

NAMES = ("127.0.0.1", "localhost")  # what the test servers and clients are reached as


@attrs.frozen
class Identity:
    """One party's files: `key_store` holds its key and chain; `cert`/`key` the same, apart."""

    key_store: Path
    cert: Path
    key: Path


@attrs.frozen
class Authority:
    ca: trustme.CA
    trust_store: Path  # the CA's certificate, PEM
    directory: Path

    def issue(self, name: str, *identities: str) -> Identity:
        leaf = self.ca.issue_cert(*(identities or NAMES))
        # PKCS#8 ("BEGIN PRIVATE KEY"): the one PEM key form ZooKeeper's Java PEM reader takes.
        key_pem = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        key_store = self.directory / f"{name}.pem"
        key_store.write_bytes(key_pem + chain)
        cert = self.directory / f"{name}-cert.pem"
        cert.write_bytes(chain)
        key = self.directory / f"{name}-key.pem"
        key.write_bytes(key_pem)
        return Identity(key_store, cert, key)


def authority(directory: Path, name: str = "ca") -> Authority:
    directory = directory / name
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name=f"ccore tests {name}")
    trust_store = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(trust_store))
    return Authority(ca, trust_store, directory)


def server_tls_lines(auth: Authority, identity: Identity, *, client_auth: str | None = None) -> list[str]:
    """zoo.cfg lines for TLS on the client port with `identity`'s key store."""
    lines = [
        f"ssl.keyStore.location={identity.key_store}",
        "ssl.keyStore.type=PEM",
        f"ssl.trustStore.location={auth.trust_store}",
        "ssl.trustStore.type=PEM",
    ]
    if client_auth is not None:
        lines.append(f"ssl.clientAuth={client_auth}")
    return lines


def quorum_tls_lines(auth: Authority, identity: Identity) -> list[str]:
    """zoo.cfg lines for TLS between servers with `identity`'s key store."""
    return [
        "sslQuorum=true",
        f"ssl.quorum.keyStore.location={identity.key_store}",
        "ssl.quorum.keyStore.type=PEM",
        f"ssl.quorum.trustStore.location={auth.trust_store}",
        "ssl.quorum.trustStore.type=PEM",
    ]
