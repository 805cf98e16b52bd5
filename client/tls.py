"""The client's TLS context, from `connect(tls_ca=, tls_cert=, tls_key=)` paths (PEM files)."""

from __future__ import annotations

import os
import ssl

from .errors import InvalidArgumentError

PathLike = str | os.PathLike[str]


def make_context(
    *,
    tls_ca: PathLike | None = None,
    tls_cert: PathLike | None = None,
    tls_key: PathLike | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> ssl.SSLContext | None:
    """The context to connect with, or None for plain TCP (nothing given).

    `tls_ca`: the CA certificates that sign the servers' (default: the system's);
    `tls_cert`: our certificate chain, for servers that ask for one (ssl.clientAuth); its
    private key is in `tls_key` or in the same file. The server's certificate must name the
    host of the connection string, as for HTTPS. `ssl_context` instead of the paths: a context
    made by the caller, used as it is.
    """
    if ssl_context is not None:
        if tls_ca is not None or tls_cert is not None or tls_key is not None:
            raise InvalidArgumentError(None, "give either ssl_context or tls_ca/tls_cert/tls_key, not both")
        return ssl_context
    if tls_ca is None and tls_cert is None and tls_key is None:
        return None
    if tls_key is not None and tls_cert is None:
        raise InvalidArgumentError(None, "tls_key needs tls_cert: the certificate that goes with the key")
    try:
        context = ssl.create_default_context(cafile=os.fspath(tls_ca) if tls_ca is not None else None)
    except FileNotFoundError:
        raise InvalidArgumentError(None, f"tls_ca={tls_ca}: no such file") from None
    except (OSError, ssl.SSLError) as e:
        raise InvalidArgumentError(None, f"tls_ca={tls_ca}: not a PEM file of CA certificates ({e})") from None
    if tls_cert is not None:

        def no_password() -> str:
            # Without this OpenSSL would prompt on the terminal for an encrypted key.
            raise InvalidArgumentError(
                None, f"the private key in {tls_key or tls_cert} is encrypted; decrypt it or pass ssl_context"
            )

        try:
            context.load_cert_chain(tls_cert, tls_key, password=no_password)
        except FileNotFoundError as e:
            raise InvalidArgumentError(None, f"{e.filename or tls_cert}: no such file") from None
        except (OSError, ssl.SSLError) as e:
            raise InvalidArgumentError(
                None, f"tls_cert={tls_cert}, tls_key={tls_key}: cannot load a PEM certificate and its private key ({e})"
            ) from None
    return context
