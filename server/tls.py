"""TLS for the client port and the peer links: `ssl.SSLContext`s built from the zoo.cfg settings
(PEM stores only), the time-bounded handshake of an accepted or dialled socket, and one-line
descriptions of why a handshake failed.

Every problem with the files is a `ConfigError` raised while the server is built, before any
task runs, so that `ccore serve` stops with one line naming the key and the file.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import attrs
import trio

from .config import ConfigError, ServerConfig
from .tls_config import CONVERT_HINT, TlsSettings

log = logging.getLogger(__name__)

# A client that connects and then says nothing (or sends half a ClientHello) holds a socket;
# past this it is closed. Short, since a real handshake takes milliseconds on a LAN.
HANDSHAKE_TIMEOUT_S = 5.0
# Closing sends a close_notify; a peer that stopped reading must not keep us waiting on it.
CLOSE_TIMEOUT_S = 1.0

_VERIFY_MODES = {"none": ssl.CERT_NONE, "want": ssl.CERT_OPTIONAL, "need": ssl.CERT_REQUIRED}


@attrs.frozen
class PeerTls:
    """Both ends of a peer link authenticate: we accept as a TLS server asking for a
    certificate, and dial as a TLS client presenting ours."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@attrs.frozen
class ServerTls:
    client_port: ssl.SSLContext | None = None  # for secureClientPort
    peers: PeerTls | None = None  # for sslQuorum=true


def build(config: ServerConfig) -> ServerTls:
    """The contexts `config` asks for (none when it asks for no TLS)."""
    client_port = None
    if config.secure_client_port is not None:
        client_port = server_context(config.client_tls, config.client_tls.client_auth, "secureClientPort")
    elif config.client_tls.key_store is not None:
        log.warning("ssl.keyStore.location is set but secureClientPort is not: the client port is plain TCP")
    peers = None
    if config.quorum_tls.configured and not config.ssl_quorum:
        log.warning("ssl.quorum.* keys are set but sslQuorum is not true: the peer links are plain TCP")
    if config.ssl_quorum:
        if not config.replicated:
            raise ConfigError("sslQuorum=true needs server.N lines: a standalone server has no peer links")
        quorum = config.quorum_tls
        if quorum.client_auth != "need":
            raise ConfigError(
                f"ssl.quorum.clientAuth={quorum.client_auth}: peer links always authenticate both sides; remove the key or set need"
            )
        peers = PeerTls(server_context(quorum, "need", "sslQuorum=true"), client_context(quorum, "sslQuorum=true"))
    for settings, used in ((config.client_tls, client_port is not None), (config.quorum_tls, peers is not None)):
        if used and settings.ignored:
            log.warning(
                "ignoring %s: not supported (only the key store, trust store and client auth are)", ", ".join(settings.ignored)
            )
    return ServerTls(client_port, peers)


def server_context(settings: TlsSettings, client_auth: str, needed_by: str) -> ssl.SSLContext:
    """The accepting side: our key and certificate chain, the trust store for a client's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_key_store(context, settings, needed_by)
    context.verify_mode = _VERIFY_MODES[client_auth]
    if client_auth != "none":
        _load_trust_store(context, settings, ssl.Purpose.CLIENT_AUTH)
    return context


def client_context(settings: TlsSettings, needed_by: str) -> ssl.SSLContext:
    """The dialling side of a peer link: our certificate, and the far side's checked (and
    its name too, unless ssl.quorum.hostnameVerification=false)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = settings.hostname_verification
    _load_key_store(context, settings, needed_by)
    _load_trust_store(context, settings, ssl.Purpose.SERVER_AUTH)
    return context


def _read_pem(key: str, path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{key}={path}: cannot read it: {e.strerror or e}") from None
    text = data.decode("ascii", "replace")
    if "-----BEGIN " not in text:
        raise ConfigError(f"{key}={path} is not a PEM file (a JKS or PKCS12 store?): {CONVERT_HINT}")
    return text


def _load_key_store(context: ssl.SSLContext, settings: TlsSettings, needed_by: str) -> None:
    key = f"{settings.prefix}keyStore.location"
    if settings.key_store is None:
        raise ConfigError(f"{needed_by} needs {key}: a PEM file with this server's private key and certificate chain")
    path = settings.key_store
    text = _read_pem(key, path)
    if "PRIVATE KEY-----" not in text:
        raise ConfigError(f"{key}={path} holds no private key: a PEM key store holds the private key and its certificate chain")
    if "CERTIFICATE-----" not in text:
        raise ConfigError(f"{key}={path} holds no certificate: a PEM key store holds the private key and its certificate chain")
    password = settings.key_store_password
    encrypted = "ENCRYPTED" in text

    def give_password() -> str:
        # Without this callback OpenSSL would prompt on the terminal: a server must not wait there.
        if password is None:
            raise ConfigError(
                f"{key}={path}: the private key is encrypted; give its password in {settings.prefix}keyStore.password"
            )
        return password

    try:
        context.load_cert_chain(path, password=give_password)
    except ssl.SSLError as e:
        if encrypted:
            raise ConfigError(
                f"{key}={path}: cannot decrypt the private key; is {settings.prefix}keyStore.password right?"
            ) from None
        raise ConfigError(f"{key}={path}: the private key does not fit the first certificate, or cannot be read ({e})") from None


def _load_trust_store(context: ssl.SSLContext, settings: TlsSettings, purpose: ssl.Purpose) -> None:
    key = f"{settings.prefix}trustStore.location"
    if settings.trust_store_password is not None:
        # A PEM trust store holds certificates only: nothing in it is encrypted.
        log.info("%strustStore.password is not needed for a PEM trust store; ignored", settings.prefix)
    if settings.trust_store is None:
        # As the JVM's default trust store for ZooKeeper: the system's certificate authorities.
        context.load_default_certs(purpose)
        return
    path = settings.trust_store
    text = _read_pem(key, path)
    if "CERTIFICATE-----" not in text:
        raise ConfigError(f"{key}={path} holds no certificate: a PEM trust store lists the CA certificates to trust")
    try:
        context.load_verify_locations(cafile=str(path))
    except ssl.SSLError as e:
        raise ConfigError(f"{key}={path}: cannot read its certificates ({e})") from None


# -- at run time --------------------------------------------------------------------------------


def describe_failure(exc: BaseException) -> str:
    """Why a handshake failed, in a few words (OpenSSL's reason, not its error numbers)."""
    if isinstance(exc, trio.TooSlowError):
        return f"no handshake within {HANDSHAKE_TIMEOUT_S:g} s"
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        reason = (cause.reason or str(cause)).lower().replace("_", " ")
        if reason in ("wrong version number", "http request", "record layer failure", "packet length too long"):
            reason += " (plaintext on a TLS port?)"
        return reason
    if isinstance(exc, trio.BrokenResourceError):
        return "the connection closed during the handshake"
    return str(exc) or type(exc).__name__


async def handshake(stream: trio.SSLStream[trio.SocketStream]) -> BaseException | None:
    """Run `stream`'s handshake, at most HANDSHAKE_TIMEOUT_S; None when it succeeded, else
    the error (the stream is then closed)."""
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT_S):
            await stream.do_handshake()
    except (trio.BrokenResourceError, trio.TooSlowError, OSError) as e:
        if not isinstance(e, trio.TooSlowError):
            await _send_alert(stream)
        await trio.aclose_forcefully(stream.transport_stream)
        return e
    return None


async def _send_alert(stream: trio.SSLStream[trio.SocketStream]) -> None:
    """Best effort: deliver the alert OpenSSL wrote when it refused the handshake (say,
    "certificate required"), which trio drops on a failure, so that the client learns why
    instead of seeing the connection just end. Relies on a private attribute of trio's
    SSLStream; without it the client sees an end of file, as before."""
    pending = getattr(stream, "_outgoing", None)
    if not isinstance(pending, ssl.MemoryBIO) or not pending.pending:
        return
    with trio.move_on_after(CLOSE_TIMEOUT_S):
        try:
            await stream.transport_stream.send_all(pending.read())
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


async def aclose_bounded(stream: trio.abc.AsyncResource) -> None:
    """Close `stream` even when cancelled, in at most CLOSE_TIMEOUT_S (a TLS stream's
    close_notify may find the far side no longer reading; trio then drops the socket)."""
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + CLOSE_TIMEOUT_S
        await stream.aclose()
