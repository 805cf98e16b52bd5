"""The TLS settings of zoo.cfg (ZooKeeper's `ssl.*` and `ssl.quorum.*` keys) as plain records.

Only reading and checking the values lives here; turning them into `ssl.SSLContext`s (which
reads the files) is server/tls.py's job, so that config.py stays free of the ssl module.
"""

from __future__ import annotations

from pathlib import Path

import attrs

CLIENT_AUTH_MODES = ("none", "want", "need")
# What ZooKeeper calls a PEM store; the other types it knows are refused with this hint.
PEM = "PEM"
CONVERT_HINT = (
    "only PEM key and trust stores are supported; convert with openssl "
    "(e.g. `openssl pkcs12 -in store.p12 -nodes -out store.pem`, after `keytool -importkeystore "
    "-srcstoretype JKS -deststoretype PKCS12` for a JKS store)"
)


@attrs.define
class TlsSettings:
    """One group of keys: `ssl.` for the client port, `ssl.quorum.` for the peer links."""

    prefix: str
    key_store: Path | None = None
    key_store_password: str | None = None
    key_store_type: str | None = None
    trust_store: Path | None = None
    trust_store_password: str | None = None
    trust_store_type: str | None = None
    client_auth: str = "need"  # ZooKeeper's default: a client must present a certificate
    hostname_verification: bool = True
    # Keys with our prefix that we do not implement (ssl.crl, ssl.ciphersuites, ...): logged at
    # start, so that nobody believes a security setting is in force when it is not.
    ignored: list[str] = attrs.Factory(list)

    def set(self, suffix: str, value: str) -> None:
        """Take `<prefix><suffix>=value`; ValueError says what is wrong with the value."""
        if suffix == "keyStore.location":
            self.key_store = Path(value)
        elif suffix == "keyStore.password":
            self.key_store_password = value
        elif suffix == "keyStore.type":
            self.key_store_type = _store_type(f"{self.prefix}{suffix}", value)
        elif suffix == "trustStore.location":
            self.trust_store = Path(value)
        elif suffix == "trustStore.password":
            self.trust_store_password = value
        elif suffix == "trustStore.type":
            self.trust_store_type = _store_type(f"{self.prefix}{suffix}", value)
        elif suffix == "clientAuth":
            mode = value.strip().lower()
            if mode not in CLIENT_AUTH_MODES:
                raise ValueError(f"{self.prefix}clientAuth={value}: use none, want or need")
            self.client_auth = mode
        elif suffix == "hostnameVerification":
            self.hostname_verification = parse_bool(f"{self.prefix}{suffix}", value)
        else:
            self.ignored.append(f"{self.prefix}{suffix}")

    @property
    def configured(self) -> bool:
        return self.key_store is not None or self.trust_store is not None


def _store_type(key: str, value: str) -> str:
    kind = value.strip().upper()
    if kind != PEM:
        raise ValueError(f"{key}={value}: {CONVERT_HINT}")
    return kind


def parse_bool(key: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ValueError(f"{key}={value}: expected true or false")
