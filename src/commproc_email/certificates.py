"""SNS signing certificates: which URLs are trusted, where certificates come from, how long they are kept.

An SNS message names its signing certificate by URL, and whoever wrote the
message chose that URL. Only ``https://sns.<region>.amazonaws.com/<name>.pem``
(``amazonaws.com.cn`` too) is accepted (:func:`check_certificate_url`): a
certificate from anywhere else could be an attacker's, and would make any
forged message verify.

A *source* takes such a URL and returns the certificate's PEM bytes:

* :class:`HttpsCertificateFetcher`, the default, downloads it: TLS checked
  against the system's certificate authorities, a connect and a read
  timeout, a size limit, and the proxy named by ``HTTPS_PROXY`` /
  ``NO_PROXY``;
* :class:`DirectoryCertificateSource` reads it from a local directory, for
  hosts without egress.

A :class:`CertificateCache` keeps parsed certificates until they expire (a
day, or the certificate's own end of validity if sooner) and remembers a
failed fetch for a few seconds, so that a batch of ten messages does not wait
for the same timeout ten times. One cache serves the whole process
(:func:`shared_certificate_cache`): every poller of every email channel
shares it, and concurrent misses on one URL make a single fetch.

A source that cannot get the certificate raises
:class:`~commproc_core.errors.TransientError` whose message names the host
and the cause (``could not fetch the SNS signing certificate from
sns.us-east-1.amazonaws.com: connect timed out after 3s``); the message stays
on the queue. An answer that proves the URL wrong (404, not a certificate)
raises :class:`~commproc_core.errors.SignatureError`. Neither quotes anything
but the checked URL's host and file name: no proxy credentials, no payload.
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
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

import attrs
from cryptography import x509

from commproc_core.errors import ConfigError, SignatureError, TransientError

__all__ = [
    "MAX_CERTIFICATE_BYTES",
    "CertificateCache",
    "CertificateFetcher",
    "DirectoryCertificateSource",
    "HttpsCertificateFetcher",
    "certificate_source",
    "check_certificate_url",
    "fetch_certificate",
    "shared_certificate_cache",
]

#: Takes a checked certificate URL, returns the PEM bytes.
CertificateFetcher = Callable[[str], bytes]

#: SNS certificates are about 2 KB; anything far larger is not one.
MAX_CERTIFICATE_BYTES: Final = 65536

_FIELD: Final = "$.SigningCertURL"
_SNS_HOST: Final = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
# One path segment of plain characters (SNS names its certificates
# SimpleNotificationService-<hex>.pem), so that the name can be used as a file
# name and quoted in an error without quoting anything an attacker chose.
_FILE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.pem$")
_MAX_HEADER_LINES: Final = 100


def check_certificate_url(url: object) -> str:
    """``url`` if it names a ``.pem`` on an Amazon SNS host over HTTPS; SignatureError otherwise."""
    if not isinstance(url, str) or not url:
        raise SignatureError("missing signing certificate URL", field=_FIELD)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SignatureError("signing certificate URL is not a URL", field=_FIELD) from exc
    if parts.scheme != "https" or not _SNS_HOST.match(parts.hostname or "") or port not in (None, 443):
        raise SignatureError("signing certificate URL is not an Amazon SNS host", field=_FIELD)
    if (
        parts.query
        or parts.fragment
        or "@" in parts.netloc
        or not parts.path.startswith("/")
        or not _FILE_NAME.match(parts.path[1:])
    ):
        raise SignatureError("signing certificate URL is not an SNS .pem", field=_FIELD)
    return url


def _host_and_name(url: str) -> tuple[str, str]:
    parts = urlsplit(check_certificate_url(url))
    return parts.hostname or "", parts.path[1:]


def _prefix(host: str) -> str:
    return f"could not fetch the SNS signing certificate from {host}"


def parse_certificate(pem: bytes) -> x509.Certificate:
    """The certificate in ``pem``; SignatureError when it is none."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError) as exc:
        raise SignatureError("signing certificate is not a PEM certificate", field=_FIELD) from exc


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

    ``connect_timeout`` bounds connecting (TCP, the proxy's tunnel, the TLS
    handshake); ``read_timeout`` bounds the whole answer once the request is
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
        self._context = ssl_context or ssl.create_default_context()
        self._proxies = proxies
        self._connect_to = dict(connect_to or {})
        self._max_bytes = max_bytes

    def __call__(self, url: str) -> bytes:
        host, name = _host_and_name(url)
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
        raw = socket.create_connection(address, timeout=self.connect_timeout)
        try:
            if proxy is not None:
                _set_deadline(raw, deadline)
                _tunnel(raw, host, port, proxy.authorization)
            _set_deadline(raw, deadline)
            return self._context.wrap_socket(raw, server_hostname=host)
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
        host, name = _host_and_name(url)
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


# -- the cache ------------------------------------------------------------------------------


@attrs.frozen
class _Entry:
    certificate: x509.Certificate
    expires_at: datetime


class _Flight:
    """One fetch in progress, awaited by every other thread that missed on the same URL."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.certificate: x509.Certificate | None = None
        self.error: SignatureError | TransientError | None = None


def _again(error: SignatureError | TransientError) -> SignatureError | TransientError:
    # A fresh exception per raising thread: tracebacks are per exception object.
    if isinstance(error, SignatureError):
        return SignatureError(error.detail, field=error.field, code=error.code)
    return TransientError(str(error))


def _not_after(certificate: x509.Certificate) -> datetime:
    # ``*_utc`` arrived in cryptography 42; 41 has naive UTC datetimes only.
    after = getattr(certificate, "not_valid_after_utc", None)
    return after if after is not None else certificate.not_valid_after.replace(tzinfo=timezone.utc)


class CertificateCache:
    """Parsed certificates by URL, thread-safe, each kept until it expires.

    An entry expires ``ttl_seconds`` after it was fetched, or when the
    certificate stops being valid if that is sooner. A TransientError from
    the source is remembered for ``failure_seconds`` and raised again at once
    for that URL meanwhile. Concurrent misses on one URL wait for a single
    fetch. At most ``max_entries`` certificates are kept (the soonest to
    expire goes first).
    """

    def __init__(
        self,
        *,
        ttl_seconds: float = 86400.0,
        failure_seconds: float = 10.0,
        max_entries: int = 256,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.ttl = timedelta(seconds=ttl_seconds)
        self.failure_ttl = timedelta(seconds=failure_seconds)
        self.max_entries = max_entries
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._failures: dict[str, tuple[str, datetime]] = {}
        self._flights: dict[str, _Flight] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        """Forget every certificate and remembered failure."""
        with self._lock:
            self._entries.clear()
            self._failures.clear()

    def get(self, url: str, source: CertificateFetcher) -> x509.Certificate:
        """The certificate at ``url``: cached, or fetched from ``source`` and parsed."""
        while True:
            with self._lock:
                now = self._clock()
                entry = self._entries.get(url)
                if entry is not None and now < entry.expires_at:
                    return entry.certificate
                failure = self._failures.get(url)
                if failure is not None and now < failure[1]:
                    raise TransientError(failure[0])
                flight = self._flights.get(url)
                leader = flight is None
                if flight is None:
                    flight = self._flights[url] = _Flight()
            if leader:
                return self._load(url, source, flight)
            flight.done.wait()
            if flight.certificate is not None:
                return flight.certificate
            if flight.error is not None:
                raise _again(flight.error)
            # The fetching thread failed in some other way: try again ourselves.

    def _load(self, url: str, source: CertificateFetcher, flight: _Flight) -> x509.Certificate:
        try:
            certificate = parse_certificate(source(url))
        except TransientError as exc:
            flight.error = exc
            with self._lock:
                self._failures[url] = (str(exc), self._clock() + self.failure_ttl)
            raise
        except SignatureError as exc:
            flight.error = exc
            raise
        else:
            flight.certificate = certificate
            self._store(url, certificate)
            return certificate
        finally:
            with self._lock:
                self._flights.pop(url, None)
            flight.done.set()

    def _store(self, url: str, certificate: x509.Certificate) -> None:
        with self._lock:
            now = self._clock()
            expires_at = min(now + self.ttl, _not_after(certificate))
            self._failures.pop(url, None)
            if expires_at <= now:
                self._entries.pop(url, None)
                return
            if url not in self._entries and len(self._entries) >= self.max_entries:
                for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
                    del self._entries[key]
                if len(self._entries) >= self.max_entries:
                    del self._entries[min(self._entries, key=lambda k: self._entries[k].expires_at)]
            self._entries[url] = _Entry(certificate, expires_at)


_SHARED = CertificateCache()


def shared_certificate_cache() -> CertificateCache:
    """The process's cache, used by every EmailProcessor that builds its own certificate source."""
    return _SHARED
