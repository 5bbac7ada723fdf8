"""SNS signing certificates: which URLs are trusted, and how long certificates are kept.

An SNS message names its signing certificate by URL, and whoever wrote the
message chose that URL. Only ``https://sns.<region>.amazonaws.com/<name>.pem``
(``amazonaws.com.cn`` too) is accepted (:func:`check_certificate_url`): a
certificate from anywhere else could be an attacker's, and would make any
forged message verify.

A *source* (:data:`CertificateFetcher`) takes such a URL and returns the
certificate's PEM bytes; :mod:`commproc_email.certificate_sources` has the
two built-in ones, HTTPS downloads and a local directory. A
:class:`CertificateCache` keeps parsed certificates until they expire (a
day, or the certificate's own end of validity if sooner) and remembers a
failed fetch for a few seconds, so that a batch of ten messages does not
wait for the same timeout ten times. One cache serves the whole process
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

import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Final
from urllib.parse import urlsplit

import attrs
from cryptography import x509

from commproc_core.errors import SignatureError, TransientError

__all__ = [
    "CERTIFICATE_FIELD",
    "MAX_CERTIFICATE_BYTES",
    "CertificateCache",
    "CertificateFetcher",
    "certificate_host_and_name",
    "check_certificate_url",
    "parse_certificate",
    "shared_certificate_cache",
]

#: Takes a checked certificate URL, returns the PEM bytes.
CertificateFetcher = Callable[[str], bytes]

#: SNS certificates are about 2 KB; anything far larger is not one.
MAX_CERTIFICATE_BYTES: Final = 65536

#: The field a certificate problem is reported on.
CERTIFICATE_FIELD: Final = "$.SigningCertURL"
_FIELD: Final = CERTIFICATE_FIELD
_SNS_HOST: Final = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
# One path segment of plain characters (SNS names its certificates
# SimpleNotificationService-<hex>.pem), so that the name can be used as a file
# name and quoted in an error without quoting anything an attacker chose.
_FILE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.pem$")


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


def certificate_host_and_name(url: str) -> tuple[str, str]:
    """The host and file name of a certificate URL, after :func:`check_certificate_url`."""
    parts = urlsplit(check_certificate_url(url))
    return parts.hostname or "", parts.path[1:]


def parse_certificate(pem: bytes) -> x509.Certificate:
    """The certificate in ``pem``; SignatureError when it is none."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError) as exc:
        raise SignatureError("signing certificate is not a PEM certificate", field=_FIELD) from exc


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
