"""The built-in sources of SNS signing certificates: HTTPS downloads and a local directory.

Both are :data:`~commproc_email.certificates.CertificateFetcher` callables
taking a certificate URL (checked again here) and returning PEM bytes:

* :class:`HttpsCertificateFetcher`, the default, downloads it: TLS checked
  against the system's certificate authorities, a connect and a read
  timeout, a size limit, and the proxy named by ``HTTPS_PROXY`` /
  ``NO_PROXY``;
* :class:`DirectoryCertificateSource` reads it from a local directory, for
  hosts without egress.

Failures to reach the certificate are TransientError naming the host and
the cause with a fixed phrase, never the exception's own text (which may
quote a proxy URL with its credentials).
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import attrs
from cryptography import x509

from commproc_core.errors import ConfigError, SignatureError, TransientError
from commproc_email.certificates import (
    CERTIFICATE_FIELD,
    MAX_CERTIFICATE_BYTES,
    CertificateFetcher,
    certificate_host_and_name,
)

__all__ = [
    "DirectoryCertificateSource",
    "HttpsCertificateFetcher",
    "certificate_source",
    "fetch_certificate",
]

_FIELD: Final = CERTIFICATE_FIELD
_MAX_HEADER_LINES: Final = 100


def _prefix(host: str) -> str:
    return f"could not fetch the SNS signing certificate from {host}"


# -- downloading ---------------------------------------------------------------------------


class _ProxyRefused(OSError):
    def __init__(self, status: int) -> None:
        super().__init__(f"proxy answered {status}")
        self.status = status


@attrs.frozen
class _Proxy:
    host: str
    port: int
    authorization: str | None

    @classmethod
    def parse(cls, url: str) -> _Proxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        try:
            port = parts.port or 80
        except ValueError:
            port = -1
        if parts.scheme != "http" or not parts.hostname or port < 0:
            raise ValueError("not an http:// proxy URL")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = base64.b64encode(pair.encode()).decode("ascii")
        return cls(parts.hostname, port, authorization)


def _describe(exc: BaseException, phase: str, timeout: float) -> str:
    """A fixed phrase for a network failure: never the exception's text, which may quote a proxy URL."""
    if isinstance(exc, TimeoutError):
        return f"{phase} timed out after {timeout:g}s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate verification failed" + (
            f" ({exc.verify_message})" if exc.verify_message else ""
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or type(exc).__name__})"
    if isinstance(exc, socket.gaierror):
        return "the host name could not be resolved"
    if isinstance(exc, _ProxyRefused):
        return f"the proxy refused the connection (HTTP {exc.status})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return "the connection was closed"
    if isinstance(exc, http.client.HTTPException):
        return "the answer was not valid HTTP"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return type(exc).__name__


class HttpsCertificateFetcher:
    """Downloads SNS signing certificates over HTTPS; a :data:`CertificateFetcher`.

    ``connect_timeout`` bounds connecting (name resolution, TCP, the proxy's
    tunnel, the TLS handshake); ``read_timeout`` bounds the whole answer once the request is
    sent, however slowly it trickles in. The proxy is taken from
    ``HTTPS_PROXY`` and ``NO_PROXY`` as urllib reads them (an ``http://``
    proxy, credentials in its URL if it needs them) unless ``proxies`` is
    given (``{}`` for none). ``ssl_context`` replaces the default context
    (the system's CAs; ``SSL_CERT_FILE`` is honoured). ``connect_to`` maps a
    host name to another ``(address, port)`` to connect to, for a test server
    or a fixed endpoint; TLS still checks the certificate against the host
    name. Redirects are not followed.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: Mapping[str, str] | None = None,
        connect_to: Mapping[str, tuple[str, int]] | None = None,
        max_bytes: int = MAX_CERTIFICATE_BYTES,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._context = ssl_context
        self._proxies = proxies
        self._connect_to = dict(connect_to or {})
        self._max_bytes = max_bytes

    def __call__(self, url: str) -> bytes:
        host, name = certificate_host_and_name(url)
        port = urlsplit(url).port or 443
        phase, timeout = "connect", self.connect_timeout
        proxy: _Proxy | None = None
        sock: socket.socket | None = None
        try:
            try:
                proxy = self._proxy(host)
            except ValueError as exc:
                # Never quote the setting: it may hold credentials.
                raise TransientError(
                    f"{_prefix(host)}: the HTTPS proxy setting is not an http://host:port URL"
                ) from exc
            sock = self._connect(host, port, proxy)
            phase, timeout = "read", self.read_timeout
            return self._get(sock, host, name)
        except (SignatureError, TransientError):
            raise
        except (OSError, http.client.HTTPException) as exc:
            through = f" (through the proxy {proxy.host}:{proxy.port})" if proxy else ""
            raise TransientError(f"{_prefix(host)}: {_describe(exc, phase, timeout)}{through}") from exc
        finally:
            if sock is not None:
                sock.close()

    def _ssl_context(self) -> ssl.SSLContext:
        # Made on first use: loading the system's CAs costs milliseconds that
        # a processor which never sees a signed envelope should not pay.
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    def _proxy(self, host: str) -> _Proxy | None:
        if self._proxies is None:
            proxies = urllib.request.getproxies()
            if proxies.get("https") and urllib.request.proxy_bypass(host):
                return None
        else:
            proxies = dict(self._proxies)
        url = proxies.get("https")
        return _Proxy.parse(url) if url else None

    def _connect(self, host: str, port: int, proxy: _Proxy | None) -> socket.socket:
        deadline = time.monotonic() + self.connect_timeout
        address = (proxy.host, proxy.port) if proxy else self._connect_to.get(host, (host, port))
        raw = _open(address, deadline)
        try:
            if proxy is not None:
                _set_deadline(raw, deadline)
                _tunnel(raw, host, port, proxy.authorization)
            _set_deadline(raw, deadline)
            return self._ssl_context().wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise

    def _get(self, sock: socket.socket, host: str, name: str) -> bytes:
        deadline = time.monotonic() + self.read_timeout
        _set_deadline(sock, deadline)
        request = (
            f"GET /{name} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n"
            "User-Agent: commproc-email\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode("ascii"))
        # The response reads from our socket, which stays ours to close and
        # to give a shrinking timeout between reads.
        response = http.client.HTTPResponse(sock, method="GET")
        response.begin()
        if response.status in (404, 410):
            raise SignatureError(
                f"no certificate at the signing certificate URL (HTTP {response.status})", field=_FIELD
            )
        if response.status != 200:
            raise TransientError(f"{_prefix(host)}: HTTP {response.status}")
        body = bytearray()
        while True:
            _set_deadline(sock, deadline)
            # read1: at most one socket read, so the deadline is checked between them.
            chunk = response.read1(min(16384, self._max_bytes + 1 - len(body)))
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > self._max_bytes:
                raise SignatureError(
                    f"signing certificate is larger than {self._max_bytes} bytes", field=_FIELD
                )


def _resolve(host: str, port: int, deadline: float) -> list[tuple[Any, ...]]:
    """getaddrinfo within the deadline: the resolver's own timeouts can run to tens of seconds."""
    found: list[tuple[Any, ...]] = []
    failed: list[OSError] = []

    def resolve() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)

    # A daemon thread: if the resolver hangs, it is abandoned, not waited for.
    worker = threading.Thread(target=resolve, name="commproc-sns-resolve", daemon=True)
    worker.start()
    worker.join(max(deadline - time.monotonic(), 0))
    if worker.is_alive():
        raise TimeoutError("name resolution")
    if failed:
        raise failed[0]
    if not found:
        raise socket.gaierror(socket.EAI_NONAME, "no address")
    return found


def _open(address: tuple[str, int], deadline: float) -> socket.socket:
    """A TCP connection to the first address of ``address`` that answers, within the deadline."""
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in _resolve(*address, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            _set_deadline(sock, deadline)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise
            last = exc
            continue
        return sock
    raise last if last is not None else socket.gaierror(socket.EAI_NONAME, "no address")


def _set_deadline(sock: socket.socket, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    sock.settimeout(remaining)


def _tunnel(sock: socket.socket, host: str, port: int, authorization: str | None) -> None:
    """Ask an HTTP proxy for a tunnel (CONNECT) to ``host:port``."""
    lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
    if authorization:
        lines.append(f"Proxy-Authorization: Basic {authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    status_line = _read_line(sock)
    match = re.match(rb"^HTTP/1\.[01] (\d{3})", status_line)
    if match is None:
        raise http.client.BadStatusLine("proxy")
    for _ in range(_MAX_HEADER_LINES):
        if _read_line(sock) in (b"\r\n", b"\n"):
            break
    else:
        raise http.client.LineTooLong("proxy headers")
    status = int(match.group(1))
    if status != 200:
        raise _ProxyRefused(status)


def _read_line(sock: socket.socket) -> bytes:
    # A byte at a time: whatever follows the proxy's answer belongs to TLS.
    line = bytearray()
    while len(line) < 8192:
        byte = sock.recv(1)
        if not byte:
            raise ConnectionResetError("proxy closed the connection")
        line += byte
        if byte == b"\n":
            return bytes(line)
    raise http.client.LineTooLong("proxy answer")


# -- a local directory -----------------------------------------------------------------------


class DirectoryCertificateSource:
    """Reads SNS signing certificates from a directory instead of downloading them.

    A certificate is looked up by the URL's file name, first in a folder
    named for the host, then in the directory itself:
    ``<directory>/sns.us-east-1.amazonaws.com/SimpleNotificationService-<id>.pem``
    or ``<directory>/SimpleNotificationService-<id>.pem``. Files are read when
    first needed, so a certificate added later (SNS rotates them) is found
    without a restart. Every ``.pem`` present at construction must hold a
    certificate (ValueError naming the file otherwise). A missing certificate
    is a TransientError naming the file and the URL to download it from: the
    message is retried, and lands in the dead-letter queue if nobody adds it.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ValueError("not a directory")
        for path in sorted(self.directory.glob("*.pem")) + sorted(self.directory.glob("*/*.pem")):
            try:
                _read_certificate_file(path)
            except (OSError, ValueError) as exc:
                name = path.relative_to(self.directory)
                raise ValueError(f"{name} is not a readable PEM certificate") from exc

    def __call__(self, url: str) -> bytes:
        host, name = certificate_host_and_name(url)
        for path in (self.directory / host / name, self.directory / name):
            try:
                return _read_certificate_file(path)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                raise TransientError(
                    f"the SNS signing certificate file {path} is not a readable PEM certificate"
                ) from exc
        raise TransientError(
            f"the SNS signing certificate {name} is not in the certificate directory {self.directory}; "
            f"download https://{host}/{name} into it"
        )


def _read_certificate_file(path: Path) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(MAX_CERTIFICATE_BYTES + 1)
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise ValueError("too large")
    x509.load_pem_x509_certificate(data)
    return data


def certificate_source(
    directory: str | None, *, connect_timeout: float = 3.0, read_timeout: float = 10.0
) -> CertificateFetcher:
    """The source EmailSettings describe: the directory when one is set, else HTTPS downloads."""
    if directory is None:
        return HttpsCertificateFetcher(connect_timeout=connect_timeout, read_timeout=read_timeout)
    try:
        return DirectoryCertificateSource(directory)
    except ValueError as exc:
        raise ConfigError("invalid EmailSettings", [f"{exc} @ config.sns_certificate_dir"]) from exc


_DEFAULT_FETCHER = HttpsCertificateFetcher()


def fetch_certificate(url: str) -> bytes:
    """Download a certificate with the default timeouts (the default source)."""
    return _DEFAULT_FETCHER(url)
