"""Local servers for the certificate tests: an HTTPS server posing as Amazon SNS, a CONNECT proxy.

The HTTPS server's certificate is made in the test for ``sns.us-east-1.amazonaws.com``
(and the China host) by a throwaway certificate authority; clients trust that
authority through their SSL context and reach the server through
``connect_to``, so TLS host name checking runs exactly as against Amazon.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SNS_HOST = "sns.us-east-1.amazonaws.com"
CN_HOST = "sns.cn-north-1.amazonaws.com.cn"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Authority:
    """A throwaway certificate authority and the server certificates it signs."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("commproc test CA"))
            .issuer_name(_name("commproc test CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this authority."""
        return ssl.create_default_context(cadata=self.pem.decode())

    def server_context(self, directory: Path, *hosts: str) -> ssl.SSLContext:
        """A server context whose certificate names ``hosts``."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file = directory / f"server-{x509.random_serial_number()}.pem"
        key_file = cert_file.with_suffix(".key")
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


#: A route answers a GET: (status, body), or a callable writing the answer itself.
Route = tuple[int, bytes] | Callable[[http.server.BaseHTTPRequestHandler], None]


class FakeSns:
    """An HTTPS server on 127.0.0.1 answering certificate paths from ``routes``."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str]] = []
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                server.requests.append((self.headers.get("Host", ""), self.path))
                route = server.routes.get(self.path, (404, b"not found"))
                if callable(route):
                    route(self)
                    return
                status, body = route
                self.send_response(status)
                self.send_header("Content-Type", "application/x-x509-ca-cert")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                del format, args

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def __enter__(self) -> FakeSns:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def hang(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        """A route that never answers (until the server stops)."""
        self.release.wait(30)

    def trickle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        """A route that answers one byte at a time, each well within a socket timeout."""
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):
            if self.release.wait(0.05):
                return
            try:
                handler.wfile.write(b"x")
                handler.wfile.flush()
            except OSError:
                return


@contextmanager
def silent_listener() -> Iterator[tuple[str, int]]:
    """A TCP port that accepts connections (the kernel does) and never says a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()
    finally:
        sock.close()


def closed_port() -> tuple[str, int]:
    """An address where nothing listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    address: tuple[str, int] = sock.getsockname()
    sock.close()
    return address


class ConnectProxy:
    """An HTTP proxy that tunnels CONNECT to ``target`` (whatever host is asked for).

    ``status`` other than 200 refuses the tunnel with that status;
    ``requests`` records each CONNECT request's lines.
    """

    def __init__(self, target: tuple[str, int], status: int = 200) -> None:
        self.target = target
        self.status = status
        self.requests: list[list[str]] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ConnectProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(1024)
                if not chunk:
                    return
                data += chunk
            self.requests.append(data.split(b"\r\n\r\n")[0].decode().split("\r\n"))
            if self.status != 200:
                client.sendall(f"HTTP/1.1 {self.status} Refused\r\nContent-Length: 0\r\n\r\n".encode())
                return
            upstream = socket.create_connection(self.target)
            client.sendall(b"HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\n")
            with upstream:
                pump = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
                pump.start()
                _pipe(client, upstream)
                pump.join(5)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            chunk = source.recv(65536)
            if not chunk:
                break
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
