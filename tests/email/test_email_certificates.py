"""SNS signing certificates: the HTTPS fetcher against a local TLS server, the directory, the cache."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from email_support import CERT_URL, TOPIC_ARN, SnsSigner, events, payload, processor, run
from tls_support import CN_HOST, SNS_HOST, Authority, ConnectProxy, FakeSns, closed_port, silent_listener

from commproc_core.errors import ConfigError, SignatureError, TransientError
from commproc_core.model import QueueMessage
from commproc_core.pipeline.envelope import unwrap
from commproc_core.queues import MemoryQueue
from commproc_core.stores import MemoryStore
from commproc_email import (
    CertificateCache,
    DirectoryCertificateSource,
    EmailProcessor,
    HttpsCertificateFetcher,
    shared_certificate_cache,
)
from commproc_email.certificate_sources import certificate_source
from commproc_email.certificates import check_certificate_url

CERT_PATH = "/" + CERT_URL.rsplit("/", 1)[1]
CERT_NAME = CERT_PATH[1:]
PREFIX = f"could not fetch the SNS signing certificate from {SNS_HOST}"


@pytest.fixture(autouse=True)
def fresh_shared_cache() -> Iterator[None]:
    # The shared cache outlives a test by design; each test starts from empty.
    shared_certificate_cache().clear()
    yield
    shared_certificate_cache().clear()


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


@pytest.fixture(scope="module")
def signer() -> SnsSigner:
    return SnsSigner()


@pytest.fixture(scope="module")
def server(
    authority: Authority, signer: SnsSigner, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeSns]:
    context = authority.server_context(tmp_path_factory.mktemp("tls"), SNS_HOST, CN_HOST)
    with FakeSns(context) as fake:
        fake.routes[CERT_PATH] = (200, signer.pem)
        fake.routes["/error.pem"] = (500, b"internal error")
        fake.routes["/gone.pem"] = (410, b"")
        fake.routes["/redirect.pem"] = (301, b"")
        fake.routes["/big.pem"] = (200, b"x" * 70000)
        fake.routes["/hang.pem"] = fake.hang
        fake.routes["/trickle.pem"] = fake.trickle
        yield fake


def fetcher(authority: Authority, server: FakeSns, **kwargs: object) -> HttpsCertificateFetcher:
    """The real fetcher, trusting the test authority, sent to the local server for SNS hosts."""
    kwargs.setdefault("connect_to", {SNS_HOST: server.address, CN_HOST: server.address})
    kwargs.setdefault("proxies", {})
    return HttpsCertificateFetcher(ssl_context=authority.client_context(), **kwargs)  # type: ignore[arg-type]


def url(path: str, host: str = SNS_HOST) -> str:
    return f"https://{host}{path}"


# -- the allow-list ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "http://sns.us-east-1.amazonaws.com/a.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/a.pem",
        "https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/a.pem",
        "https://sns.us-east-1.amazonaws.com:8443/a.pem",
        "https://sns.us-east-1.amazonaws.com/dir/a.pem",
        "https://sns.us-east-1.amazonaws.com/a.pem?x=1",
        "https://sns.us-east-1.amazonaws.com/a.pem#x",
        "https://sns.us-east-1.amazonaws.com/../a.pem",
        "https://sns.us-east-1.amazonaws.com/%2e%2e%2fa.pem",
        "https://sns.us-east-1.amazonaws.com/a b.pem",
        "https://user:pw@sns.us-east-1.amazonaws.com/a.pem",
        "https://sns.us-east-1.amazonaws.com:99999/a.pem",
        "https://[::1/a.pem",
        "",
    ],
)
def test_only_sns_pem_urls_are_accepted(bad: str) -> None:
    with pytest.raises(SignatureError) as info:
        check_certificate_url(bad)
    assert info.value.field == "$.SigningCertURL"


def test_the_fetcher_checks_the_url_before_connecting(authority: Authority, server: FakeSns) -> None:
    before = len(server.requests)
    with pytest.raises(SignatureError):
        fetcher(authority, server)(f"https://127.0.0.1:{server.port}{CERT_PATH}")
    assert len(server.requests) == before


# -- downloading ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", [SNS_HOST, CN_HOST])
def test_downloads_over_verified_tls(
    authority: Authority, server: FakeSns, signer: SnsSigner, host: str
) -> None:
    assert fetcher(authority, server)(url(CERT_PATH, host)) == signer.pem
    assert server.requests[-1] == (host, CERT_PATH)


def test_a_server_the_system_does_not_trust_is_transient(server: FakeSns) -> None:
    # The default context trusts the system's authorities only, not the test's.
    plain = HttpsCertificateFetcher(connect_to={SNS_HOST: server.address}, proxies={})
    with pytest.raises(TransientError) as info:
        plain(CERT_URL)
    assert str(info.value).startswith(f"{PREFIX}: TLS certificate verification failed")


def test_a_certificate_for_another_host_is_refused(
    authority: Authority, signer: SnsSigner, tmp_path: Path
) -> None:
    with FakeSns(authority.server_context(tmp_path, "sns.evil.example")) as impostor:
        impostor.routes[CERT_PATH] = (200, signer.pem)
        with pytest.raises(TransientError, match="TLS certificate verification failed") as info:
            fetcher(authority, impostor)(CERT_URL)
    assert "mismatch" in str(info.value).lower()
    assert impostor.requests == []


def test_connect_timeout(authority: Authority) -> None:
    with silent_listener() as address:
        slow = HttpsCertificateFetcher(
            connect_timeout=0.2,
            ssl_context=authority.client_context(),
            connect_to={SNS_HOST: address},
            proxies={},
        )
        started = time.monotonic()
        with pytest.raises(TransientError) as info:
            slow(CERT_URL)
    assert str(info.value) == f"{PREFIX}: connect timed out after 0.2s"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("path", ["/hang.pem", "/trickle.pem"])
def test_read_timeout_bounds_the_whole_answer(authority: Authority, server: FakeSns, path: str) -> None:
    # /trickle.pem sends a byte every 50 ms: each read is quick, the whole is not.
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        fetcher(authority, server, read_timeout=0.4)(url(path))
    assert str(info.value) == f"{PREFIX}: read timed out after 0.4s"
    assert time.monotonic() - started < 2


def test_connection_refused(authority: Authority) -> None:
    refused = HttpsCertificateFetcher(
        ssl_context=authority.client_context(), connect_to={SNS_HOST: closed_port()}, proxies={}
    )
    with pytest.raises(TransientError) as info:
        refused(CERT_URL)
    assert str(info.value) == f"{PREFIX}: connection refused"


def test_unresolvable_host(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr("commproc_email.certificate_sources.socket.getaddrinfo", no_dns)
    with pytest.raises(TransientError) as info:
        HttpsCertificateFetcher(proxies={})(CERT_URL)
    assert str(info.value) == f"{PREFIX}: the host name could not be resolved"


def test_a_hanging_resolver_is_bounded_by_the_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def slow_dns(*args: object, **kwargs: object) -> list[object]:
        release.wait(10)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr("commproc_email.certificate_sources.socket.getaddrinfo", slow_dns)
    started = time.monotonic()
    try:
        with pytest.raises(TransientError) as info:
            HttpsCertificateFetcher(connect_timeout=0.2, proxies={})(CERT_URL)
    finally:
        release.set()
    assert str(info.value) == f"{PREFIX}: connect timed out after 0.2s"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("path", "status"), [("/error.pem", 500), ("/redirect.pem", 301)])
def test_server_errors_are_transient(authority: Authority, server: FakeSns, path: str, status: int) -> None:
    with pytest.raises(TransientError) as info:
        fetcher(authority, server)(url(path))
    assert str(info.value) == f"{PREFIX}: HTTP {status}"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/absent.pem", "no certificate at the signing certificate URL (HTTP 404)"),
        ("/gone.pem", "no certificate at the signing certificate URL (HTTP 410)"),
        ("/big.pem", "signing certificate is larger than 65536 bytes"),
    ],
)
def test_answers_that_prove_the_url_wrong_are_permanent(
    authority: Authority, server: FakeSns, path: str, message: str
) -> None:
    with pytest.raises(SignatureError) as info:
        fetcher(authority, server)(url(path))
    assert (info.value.detail, info.value.field, info.value.code) == (
        message,
        "$.SigningCertURL",
        "bad_signature",
    )


# -- through a proxy ----------------------------------------------------------------------------


def test_downloads_through_a_connect_proxy_with_credentials(
    authority: Authority, server: FakeSns, signer: SnsSigner
) -> None:
    with ConnectProxy(server.address) as proxy:
        proxied = fetcher(
            authority, server, connect_to={}, proxies={"https": f"http://ops:p%40ss@127.0.0.1:{proxy.port}"}
        )
        assert proxied(CERT_URL) == signer.pem
    request = proxy.requests[0]
    assert request[0] == f"CONNECT {SNS_HOST}:443 HTTP/1.1"
    assert f"Proxy-Authorization: Basic {base64.b64encode(b'ops:p@ss').decode()}" in request


def test_a_refusing_proxy_is_named_without_its_credentials(authority: Authority, server: FakeSns) -> None:
    with ConnectProxy(server.address, status=407) as proxy:
        proxied = fetcher(authority, server, proxies={"https": f"http://ops:hunter2@127.0.0.1:{proxy.port}"})
        with pytest.raises(TransientError) as info:
            proxied(CERT_URL)
    assert str(info.value) == (
        f"{PREFIX}: the proxy refused the connection (HTTP 407) (through the proxy 127.0.0.1:{proxy.port})"
    )
    assert "hunter2" not in str(info.value)


def test_a_bad_proxy_setting_is_not_quoted(authority: Authority, server: FakeSns) -> None:
    proxied = fetcher(authority, server, proxies={"https": "socks5://ops:hunter2@proxy.internal:1080"})
    with pytest.raises(TransientError) as info:
        proxied(CERT_URL)
    assert str(info.value) == f"{PREFIX}: the HTTPS proxy setting is not an http://host:port URL"


def test_the_proxy_comes_from_the_environment(
    authority: Authority, server: FakeSns, signer: SnsSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with ConnectProxy(server.address) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        from_env = fetcher(authority, server, connect_to={}, proxies=None)
        assert from_env(CERT_URL) == signer.pem
        assert len(proxy.requests) == 1
        # NO_PROXY sends it straight to the host (here: the local server).
        monkeypatch.setenv("NO_PROXY", ".amazonaws.com")
        assert fetcher(authority, server, proxies=None)(CERT_URL) == signer.pem
        assert len(proxy.requests) == 1


# -- a local directory ------------------------------------------------------------------------------


def test_directory_source(signer: SnsSigner, tmp_path: Path) -> None:
    other = SnsSigner()
    (tmp_path / CERT_NAME).write_bytes(signer.pem)
    (tmp_path / CN_HOST).mkdir()
    (tmp_path / CN_HOST / CERT_NAME).write_bytes(other.pem)
    source = DirectoryCertificateSource(tmp_path)
    assert source(CERT_URL) == signer.pem
    # A folder named for the host wins over the directory itself.
    assert source(url(CERT_PATH, CN_HOST)) == other.pem
    with pytest.raises(TransientError) as info:
        source(url("/SimpleNotificationService-new.pem"))
    assert str(info.value) == (
        f"the SNS signing certificate SimpleNotificationService-new.pem is not in the certificate "
        f"directory {tmp_path}; download https://{SNS_HOST}/SimpleNotificationService-new.pem into it"
    )
    # Added later (SNS rotated its certificate): found without a restart.
    (tmp_path / "SimpleNotificationService-new.pem").write_bytes(other.pem)
    assert source(url("/SimpleNotificationService-new.pem")) == other.pem
    (tmp_path / "SimpleNotificationService-broken.pem").write_text("not a certificate")
    with pytest.raises(TransientError, match="is not a readable PEM certificate"):
        source(url("/SimpleNotificationService-broken.pem"))
    with pytest.raises(SignatureError):
        source("https://evil.example/" + CERT_NAME)


def test_directory_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        certificate_source(str(tmp_path / "absent"))
    assert info.value.problems == ["not a directory @ config.sns_certificate_dir"]
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError) as info:
        certificate_source(str(tmp_path))
    assert info.value.problems == ["bad.pem is not a readable PEM certificate @ config.sns_certificate_dir"]
    with pytest.raises(ConfigError, match="sns_certificate_dir"):
        processor(MemoryStore(), {"sns_certificate_dir": str(tmp_path / "absent")})


def test_processor_verifies_from_a_directory_without_network(
    signer: SnsSigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(self: object, url: str) -> bytes:
        raise AssertionError("nothing may be downloaded")

    monkeypatch.setattr(HttpsCertificateFetcher, "__call__", no_network)
    (tmp_path / CERT_NAME).write_bytes(signer.pem)
    store = MemoryStore()
    proc = processor(store, {"sns_signature": "required", "sns_certificate_dir": str(tmp_path)})
    stats = run(proc, [signer.wrap(payload("ses_events.json", "Delivery"))])
    assert (stats.processed, stats.failed) == (1, 0)


# -- the cache ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


class CountingSource:
    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.calls: list[str] = []
        self.error: Exception | None = None

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        if self.error is not None:
            raise self.error
        return self.pem


def test_cache_entries_expire(signer: SnsSigner) -> None:
    clock, source = Clock(), CountingSource(signer.pem)
    cache = CertificateCache(ttl_seconds=60, clock=clock)
    first = cache.get(CERT_URL, source)
    assert cache.get(CERT_URL, source) is first
    clock.now += timedelta(seconds=59)
    cache.get(CERT_URL, source)
    assert len(source.calls) == 1
    clock.now += timedelta(seconds=2)
    cache.get(CERT_URL, source)
    assert len(source.calls) == 2


def test_cache_never_outlives_the_certificate(signer: SnsSigner) -> None:
    # The signer's certificate is valid for 30 days; a year's TTL stops there.
    clock, source = Clock(), CountingSource(signer.pem)
    cache = CertificateCache(ttl_seconds=365 * 86400, clock=clock)
    cache.get(CERT_URL, source)
    clock.now += timedelta(days=29)
    cache.get(CERT_URL, source)
    assert len(source.calls) == 1
    clock.now += timedelta(days=2)
    cache.get(CERT_URL, source)
    assert len(source.calls) == 2
    assert len(cache) == 0  # expired on arrival: not kept


def test_cache_remembers_a_transient_failure_briefly(signer: SnsSigner) -> None:
    clock, source = Clock(), CountingSource(signer.pem)
    source.error = TransientError(f"{PREFIX}: connect timed out after 3s")
    cache = CertificateCache(failure_seconds=10, clock=clock)
    for _ in range(3):
        with pytest.raises(TransientError) as info:
            cache.get(CERT_URL, source)
        assert str(info.value) == f"{PREFIX}: connect timed out after 3s"
    assert len(source.calls) == 1
    source.error = None
    clock.now += timedelta(seconds=11)
    cache.get(CERT_URL, source)
    assert len(source.calls) == 2


def test_cache_does_not_remember_permanent_failures(signer: SnsSigner) -> None:
    source = CountingSource(b"<html>")
    cache = CertificateCache()
    for _ in range(2):
        with pytest.raises(SignatureError, match="not a PEM"):
            cache.get(CERT_URL, source)
    assert len(source.calls) == 2


def test_concurrent_misses_make_one_fetch(signer: SnsSigner) -> None:
    release = threading.Event()
    calls: list[str] = []

    def slow(url: str) -> bytes:
        calls.append(url)
        release.wait(5)
        return signer.pem

    cache = CertificateCache()
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(CERT_URL, slow))) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1
    assert len(results) == 8 and len({id(r) for r in results}) == 1


def test_concurrent_misses_share_a_failure() -> None:
    release = threading.Event()
    calls: list[str] = []

    def failing(url: str) -> bytes:
        calls.append(url)
        release.wait(5)
        raise TransientError(f"{PREFIX}: connection refused")

    cache = CertificateCache()
    errors: list[str] = []

    def get() -> None:
        try:
            cache.get(CERT_URL, failing)
        except TransientError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=get) for _ in range(5)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == [CERT_URL]
    assert errors == [f"{PREFIX}: connection refused"] * 5


def test_cache_is_bounded(signer: SnsSigner) -> None:
    source = CountingSource(signer.pem)
    cache = CertificateCache(max_entries=3)
    for number in range(5):
        cache.get(url(f"/SimpleNotificationService-{number}.pem"), source)
    assert len(cache) == 3


def test_one_cache_serves_every_processor_of_the_process(signer: SnsSigner, tmp_path: Path) -> None:
    (tmp_path / CERT_NAME).write_bytes(signer.pem)
    config = {"sns_signature": "required", "sns_certificate_dir": str(tmp_path)}
    first, second = MemoryStore(), MemoryStore()
    delivery = signer.wrap(payload("ses_events.json", "Delivery"))
    assert run(processor(first, config), [delivery]).processed == 1
    assert len(shared_certificate_cache()) == 1
    # The second poller finds the certificate in the shared cache, not the directory.
    (tmp_path / CERT_NAME).unlink()
    stats = run(processor(second, config), [delivery])
    assert (stats.processed, stats.failed) == (1, 0)


def test_a_custom_fetcher_gets_its_own_cache(signer: SnsSigner) -> None:
    proc = processor(MemoryStore(), certificate_fetcher=signer.fetch)
    run(proc, [signer.wrap(payload("ses_events.json", "Delivery"))])
    assert signer.fetched[-1] == CERT_URL
    assert len(shared_certificate_cache()) == 0


# -- end to end: the processor and a real HTTPS fetch -------------------------------------------------


def test_signed_envelopes_verify_with_certificates_fetched_over_https(
    authority: Authority, server: FakeSns, signer: SnsSigner
) -> None:
    store = MemoryStore()
    before = len(server.requests)
    proc = processor(
        store,
        {"sns_signature": "required", "sns_topic_arns": [TOPIC_ARN]},
        certificate_fetcher=fetcher(authority, server),
    )
    bodies = [
        signer.wrap(payload("ses_events.json", name), message_id=f"m-{name}")
        for name in ("Send", "Delivery", "Open")
    ]
    stats = run(proc, bodies)
    assert (stats.processed, stats.failed) == (3, 0)
    assert len(server.requests) == before + 1


def _queue_message(body: dict[str, object]) -> QueueMessage:
    return QueueMessage(message_id="q-1", receipt_handle="rh-1", body=json.dumps(body))


def test_an_unreachable_certificate_host_leaves_the_message_for_retry_with_its_cause(
    signer: SnsSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Settings only, as a user would: the default fetcher, the proxy from the
    # environment, a proxy that never answers.
    for name in ("no_proxy", "NO_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    store = MemoryStore()
    with silent_listener() as (host, port):
        monkeypatch.setenv("HTTPS_PROXY", f"http://{host}:{port}")
        proc = EmailProcessor(
            config={"sns_certificate_connect_timeout": 0.2}, store=store, queue=MemoryQueue()
        )
        message = _queue_message(signer.wrap(payload("ses_events.json", "Bounce")))
        expected = f"{PREFIX}: connect timed out after 0.2s (through the proxy {host}:{port})"
        with pytest.raises(TransientError) as info:
            proc.authenticate(unwrap(message).envelope)
        assert str(info.value) == expected
        report = proc.process_batch([message], acknowledge=False)
    (outcome,) = report.outcomes
    assert (outcome.outcome, outcome.reason) == ("retry", "transient_error")
    assert events(store) == []
