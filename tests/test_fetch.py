"""searchsite.fetch against a real local HTTP(S) server; DNS is stubbed with the ``resolver`` argument."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ImproperlyConfigured

from searchsite.fetch import USER_AGENT, FetchedFile, FetchRefused, url_fetch
from tests.images import image_bytes

PNG = image_bytes("PNG", size=(20, 10), color=(10, 200, 30))
LIMIT = 256 * 1024  # max_bytes for the size tests
STREAM_TOTAL = 64 * 1024 * 1024  # what /big-chunked would send if nobody stopped reading


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self.server.requests.append(
            {
                "path": self.path,
                "host": self.headers.get("Host"),
                "user_agent": self.headers.get("User-Agent"),
                "accept": self.headers.get("Accept"),
            }
        )
        route = self.path.partition("?")[0]
        try:
            getattr(self, "route_" + route.strip("/").replace("-", "_").replace(".", "_"), self.route_404)()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.server.aborted.append(route)
            self.close_connection = True

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location):
        self.send(302, headers=[("Location", location)])

    def route_image_png(self):
        self.send(200, PNG, [("Content-Type", "image/png")])

    def route_redirect_to_image(self):
        self.redirect("/image.png")

    def route_redirect_loop(self):
        self.redirect("/redirect-loop")

    def route_redirect_to_metadata(self):
        self.redirect("http://169.254.169.254/latest/meta-data/")

    def route_redirect_to_cdn(self):
        self.redirect(f"{self.server.scheme}://cdn.example:{self.server.server_port}/image.png?token=1")

    def route_redirect_to_ftp(self):
        self.redirect("ftp://shop.example/image.png")

    def route_big(self):
        self.send_response(200)
        self.send_header("Content-Length", str(10 * LIMIT))
        self.end_headers()
        self.wfile.write(b"x" * 1000)
        self.server.written["/big"] = 1000

    def route_big_chunked(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"y" * 16384
        written = 0
        try:
            while written < STREAM_TOTAL and not self.server.stopping.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                written += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        finally:
            self.server.written["/big-chunked"] = written
            self.server.finished.set()

    def route_slow(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.flush()
        for _ in range(60):
            if self.server.stopping.wait(0.5):
                return
            self.wfile.write(b"z")
            self.wfile.flush()

    def route_slow_headers(self):
        for byte in b"HTTP/1.1 200 OK\r\nX-Filler: " + b"a" * 100:
            if self.server.stopping.wait(0.3):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
        self.close_connection = True

    def route_empty(self):
        self.send(200, b"", [("Content-Type", "image/png")])

    def route_truncated(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(PNG[:10])
        self.close_connection = True

    def route_404(self):
        self.send(404, b"not here", [("Content-Type", "text/plain")])


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    scheme = "http"

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.aborted: list[str] = []
        self.written: dict[str, int] = {}
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self.server_names: list[str | None] = []

    def reset(self):
        self.requests.clear()
        self.aborted.clear()
        self.written.clear()
        self.finished.clear()


def serve(server: LocalServer):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


def stop(server: LocalServer, thread: threading.Thread):
    server.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def http_server():
    server = LocalServer()
    thread = serve(server)
    yield server
    stop(server, thread)


@pytest.fixture
def server(http_server):
    http_server.reset()
    yield http_server
    http_server.reset()


class StubResolver:
    """DNS from a dict; records every lookup."""

    def __init__(self, answers=None):
        self.answers = {
            "shop.example": ["127.0.0.1"],
            "cdn.example": ["127.0.0.1"],
            "other.example": ["127.0.0.1"],
            "evil.example": ["10.0.0.5"],
            "mixed.example": ["93.184.216.34", "127.0.0.1"],
            "mapped.example": ["::ffff:127.0.0.1"],
            "metadata.example": ["169.254.169.254"],
            **(answers or {}),
        }
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host, port):
        self.calls.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


@pytest.fixture
def resolver():
    return StubResolver()


@pytest.fixture
def allow_loopback(settings):
    settings.VITRINE_FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def no_connections(monkeypatch):
    """Every outgoing connection attempt is recorded and refused (nothing leaves the test)."""
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise ConnectionRefusedError(111, "Connection refused (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def refused(url, **kwargs) -> FetchRefused:
    with pytest.raises(FetchRefused) as caught:
        url_fetch(url, **kwargs)
    return caught.value


# --- Addresses that may not be reached ------------------------------------------------------


def test_loopback_by_name_is_refused_by_default(server, resolver, settings):
    settings.VITRINE_FETCH_ALLOWED_NETWORKS = []
    error = refused(f"http://shop.example:{server.server_port}/image.png", resolver=resolver)
    assert error.code == "private_address"
    assert "shop.example" in error.message and "127.0.0.1" not in error.message
    assert "VITRINE_FETCH_ALLOWED_NETWORKS" in error.message
    assert server.requests == []


def test_loopback_literal_is_refused_by_default(server, resolver):
    error = refused(f"http://127.0.0.1:{server.server_port}/image.png", resolver=resolver)
    assert error.code == "private_address"
    assert server.requests == []
    assert resolver.calls == []  # a literal address needs no lookup


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]:8080/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://100.100.100.200/",  # Alibaba Cloud metadata, in the CGNAT range
        "http://[fd00::1]/",
        "http://[fd00:ec2::254]/",  # AWS IPv6 metadata
        "http://[fe80::1]/",
        "http://[fec0::1]/",
        "http://10.0.0.5/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://224.0.0.1/",
        "http://[ff02::1]/",
        "http://[ff0e::1]/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://192.0.2.1/",
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        "http://[2002:a9fe:a9fe::]/",  # 6to4 of 169.254.169.254
        "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a00:5]/",  # NAT64 of 10.0.0.5
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo of 127.0.0.1
        "http://[::7f00:1]/",  # IPv4-compatible 127.0.0.1
        "https://127.0.0.1/",
    ],
)
def test_private_literal_addresses_are_refused_without_connecting(url, no_connections, resolver):
    error = refused(url, resolver=resolver)
    assert error.code == "private_address", error.message
    assert no_connections == []
    assert resolver.calls == []


@pytest.mark.parametrize(
    "url", ["http://2130706433/", "http://0x7f000001/", "http://0x7f.0.0.1/", "http://0177.0.0.1/", "http://127.1/"]
)
def test_odd_ipv4_forms_never_connect(url, no_connections, settings):
    # The system resolver reads these as 127.0.0.1: refused as a bad URL (or as an address), never fetched.
    settings.VITRINE_FETCH_ALLOWED_NETWORKS = []
    error = refused(url)
    assert error.code in {"bad_url", "private_address"}
    assert no_connections == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "127.1", "1.2.3.4.5"])
def test_odd_ipv4_forms_are_bad_urls_before_any_lookup(host, no_connections):
    resolver = StubResolver({host: ["93.184.216.34"]})
    assert refused(f"http://{host}/", resolver=resolver).code == "bad_url"
    assert resolver.calls == []
    assert no_connections == []


@pytest.mark.parametrize(
    "host, address", [("evil.example", "10.0.0.5"), ("mapped.example", "::ffff:127.0.0.1"), ("localhost", None)]
)
def test_names_resolving_to_private_addresses_are_refused(host, address, no_connections, caplog):
    """The refusal names the host, never what it resolves to (that would map internal
    names for whoever asks); the log keeps the address and its kind for operators."""
    resolver = StubResolver({"localhost": ["127.0.0.1", "::1"]})
    with caplog.at_level("INFO", logger="searchsite.fetch"):
        error = refused(f"http://{host}/image.png", resolver=resolver)
    assert error.code == "private_address"
    assert host in error.message and "not a public address" in error.message
    logged = caplog.text
    for shown in [address or "127.0.0.1", "loopback", "private"]:
        assert shown not in error.message
    if address:
        assert address in logged
    if host == "mapped.example":
        assert "loopback" in logged  # judged by the IPv4 address inside
    assert no_connections == []


def test_a_literal_private_address_is_named_with_its_kind(no_connections):
    error = refused("http://10.0.0.5/image.png", resolver=StubResolver({}))
    assert error.code == "private_address"
    assert "10.0.0.5" in error.message and "private" in error.message


def test_one_private_address_among_several_refuses_the_host(resolver, no_connections, settings, caplog):
    settings.VITRINE_FETCH_ALLOWED_NETWORKS = ["10.0.0.0/8"]  # allows another network, not loopback
    with caplog.at_level("INFO", logger="searchsite.fetch"):
        error = refused("http://mixed.example/image.png", resolver=resolver)
    assert error.code == "private_address"
    assert "127.0.0.1" not in error.message and "127.0.0.1" in caplog.text
    assert no_connections == []


def test_public_addresses_pass_the_check_and_the_vetted_address_is_connected(no_connections):
    resolver = StubResolver({"public.example": ["93.184.216.34", "2606:2800:220:1::1"]})
    error = refused("http://public.example/image.png", resolver=resolver)
    assert error.code == "connection_failed"
    assert no_connections == [("93.184.216.34", 80), ("2606:2800:220:1::1", 80)]
    assert resolver.calls == [("public.example", 80)]


@pytest.mark.parametrize(
    "url, address",
    [
        ("http://[2002:808:808::]/", "2002:808:808::"),  # 6to4 of 8.8.8.8
        ("http://[64:ff9b::808:808]/", "64:ff9b::808:808"),  # NAT64 of 8.8.8.8
        ("https://[2606:4700::1111]:8443/", "2606:4700::1111"),
    ],
)
def test_public_literal_addresses_pass_the_check(url, address, no_connections):
    assert refused(url).code == "connection_failed"
    assert [host for host, _ in no_connections] == [address]


def test_a_connection_timeout_is_a_timeout(monkeypatch):
    def slow(*args, **kwargs):
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", slow)
    assert refused("http://93.184.216.34/image.png").code == "timeout"


# --- Downloads --------------------------------------------------------------------------------


def test_image_downloads_from_an_allowed_network(server, resolver, allow_loopback, monkeypatch):
    lookups = []
    real_getaddrinfo = socket.getaddrinfo

    def recording_getaddrinfo(host, *args, **kwargs):
        lookups.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
    url = f"http://shop.example:{server.server_port}/image.png"
    fetched = url_fetch(url, resolver=resolver)
    assert fetched == FetchedFile(url=url, content=PNG, content_type="image/png")
    assert server.requests == [
        {
            "path": "/image.png",
            "host": f"shop.example:{server.server_port}",
            "user_agent": USER_AGENT,
            "accept": "image/*",
        }
    ]
    assert resolver.calls == [("shop.example", server.server_port)]
    assert "shop.example" not in lookups  # connected to the vetted address, no second lookup


def test_redirect_is_followed_and_the_final_url_reported(server, resolver, allow_loopback):
    fetched = url_fetch(f"http://shop.example:{server.server_port}/redirect-to-image", resolver=resolver)
    assert fetched.url == f"http://shop.example:{server.server_port}/image.png"
    assert fetched.content == PNG
    assert [r["path"] for r in server.requests] == ["/redirect-to-image", "/image.png"]


def test_redirect_to_another_host_resolves_that_host_once(server, resolver, allow_loopback):
    port = server.server_port
    fetched = url_fetch(f"http://shop.example:{port}/redirect-to-cdn", resolver=resolver)
    assert fetched.url == f"http://cdn.example:{port}/image.png?token=1"
    assert fetched.content == PNG
    assert resolver.calls == [("shop.example", port), ("cdn.example", port)]
    assert server.requests[-1]["host"] == f"cdn.example:{port}"


def test_redirect_to_cloud_metadata_is_refused_even_with_loopback_allowed(server, resolver, allow_loopback):
    error = refused(f"http://shop.example:{server.server_port}/redirect-to-metadata", resolver=resolver)
    assert error.code == "private_address"
    assert "169.254.169.254" in error.message
    assert [r["path"] for r in server.requests] == ["/redirect-to-metadata"]


def test_redirect_to_another_scheme_is_refused(server, resolver, allow_loopback):
    assert refused(f"http://shop.example:{server.server_port}/redirect-to-ftp", resolver=resolver).code == "bad_scheme"


def test_redirect_loop_is_cut_off(server, resolver, allow_loopback, settings):
    settings.VITRINE_FETCH_MAX_REDIRECTS = 3
    error = refused(f"http://shop.example:{server.server_port}/redirect-loop", resolver=resolver)
    assert error.code == "too_many_redirects"
    assert len(server.requests) == 4  # the first request and three redirects


def test_no_redirects_when_the_limit_is_zero(server, resolver, allow_loopback, settings):
    settings.VITRINE_FETCH_MAX_REDIRECTS = 0
    error = refused(f"http://shop.example:{server.server_port}/redirect-to-image", resolver=resolver)
    assert error.code == "too_many_redirects"
    assert [r["path"] for r in server.requests] == ["/redirect-to-image"]


def test_not_found_is_an_http_error(server, resolver, allow_loopback):
    error = refused(f"http://shop.example:{server.server_port}/404?token=secret", resolver=resolver)
    assert error.code == "http_error"
    assert "404" in error.message
    assert "secret" not in error.message


def test_empty_body_is_refused(server, resolver, allow_loopback):
    assert refused(f"http://shop.example:{server.server_port}/empty", resolver=resolver).code == "empty_response"


def test_truncated_body_is_refused(server, resolver, allow_loopback):
    assert refused(f"http://shop.example:{server.server_port}/truncated", resolver=resolver).code == "connection_failed"


def test_dns_failure(resolver):
    error = refused("http://nowhere.example/image.png", resolver=resolver)
    assert error.code == "dns_failed"
    assert "nowhere.example" in error.message


def test_no_addresses_is_a_dns_failure():
    assert refused("http://void.example/", resolver=lambda host, port: []).code == "dns_failed"


# --- Size and time ------------------------------------------------------------------------------


def test_declared_size_over_the_limit_is_refused_before_reading(server, resolver, allow_loopback):
    error = refused(f"http://shop.example:{server.server_port}/big", resolver=resolver, max_bytes=LIMIT)
    assert error.code == "too_large"
    assert "MB" in error.message and "VITRINE_MAX_IMAGE_BYTES" in error.message


def test_streamed_body_over_the_limit_is_cut_off(server, resolver, allow_loopback):
    started = time.monotonic()
    error = refused(f"http://shop.example:{server.server_port}/big-chunked", resolver=resolver, max_bytes=LIMIT)
    assert error.code == "too_large"
    assert "VITRINE_MAX_IMAGE_BYTES" in error.message
    assert time.monotonic() - started < 5
    assert server.finished.wait(5)
    assert server.aborted == ["/big-chunked"]  # the client hung up ...
    assert server.written["/big-chunked"] < STREAM_TOTAL // 2  # ... long before the end


def test_the_default_size_limit_is_the_setting(server, resolver, allow_loopback, settings):
    settings.VITRINE_MAX_IMAGE_BYTES = len(PNG) - 1
    assert refused(f"http://shop.example:{server.server_port}/image.png", resolver=resolver).code == "too_large"
    settings.VITRINE_MAX_IMAGE_BYTES = len(PNG)
    assert url_fetch(f"http://shop.example:{server.server_port}/image.png", resolver=resolver).content == PNG


def test_slow_drip_hits_the_total_deadline(server, resolver, allow_loopback, settings):
    settings.VITRINE_FETCH_TOTAL_TIMEOUT = 1.5
    started = time.monotonic()
    error = refused(f"http://shop.example:{server.server_port}/slow", resolver=resolver)
    elapsed = time.monotonic() - started
    assert error.code == "timeout"
    assert 1.2 < elapsed < 5


def test_slow_headers_hit_the_total_deadline(server, resolver, allow_loopback, settings):
    settings.VITRINE_FETCH_TOTAL_TIMEOUT = 1.0
    started = time.monotonic()
    error = refused(f"http://shop.example:{server.server_port}/slow-headers", resolver=resolver)
    assert error.code == "timeout"
    assert time.monotonic() - started < 5


# --- URLs and settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, code",
    [
        ("ftp://shop.example/image.png", "bad_scheme"),
        ("file:///etc/passwd", "bad_scheme"),
        ("javascript:alert(1)", "bad_scheme"),
        ("gopher://shop.example:6379/_FLUSHALL", "bad_scheme"),
        ("shop.example/image.png", "bad_scheme"),
        ("http://user:pass@shop.example/", "bad_url"),
        ("http://user@shop.example/", "bad_url"),
        ("http://evil.example\\@shop.example/", "bad_url"),
        ("http://", "bad_url"),
        ("http:///image.png", "bad_url"),
        ("", "bad_url"),
        ("http://shop.example:99999/", "bad_url"),
        ("http://shop.example:0/", "bad_url"),
        ("http://shop.example:port/", "bad_url"),
        ("http://shop .example/", "bad_url"),
        ("http://shop.example/\r\nX-Injected: 1", "bad_url"),
        ("http://[fe80::1%25eth0]/", "bad_url"),
        ("http://[v1.abc]/", "bad_url"),
        ("http://-shop.example/", "bad_url"),
        ("http://shop.example/" + "a" * 2000, "bad_url"),
    ],
)
def test_unusable_urls(url, code, no_connections, resolver):
    error = refused(url, resolver=resolver)
    assert error.code == code, error.message
    assert no_connections == []
    assert resolver.calls == []


def test_a_long_but_acceptable_url_is_fetched(server, resolver, allow_loopback):
    url = f"http://shop.example:{server.server_port}/image.png?" + "q" * 1900
    assert url_fetch(url, resolver=resolver).content == PNG


@pytest.mark.parametrize("networks", [["not-a-network"], ["10.0.0.0/33"], ["127.0.0.0/8", "::1/200"], "127.0.0.0/8"])
def test_bad_allowed_networks_are_a_configuration_error(networks, settings):
    settings.VITRINE_FETCH_ALLOWED_NETWORKS = networks
    with pytest.raises(ImproperlyConfigured, match="VITRINE_FETCH_ALLOWED_NETWORKS"):
        url_fetch("http://shop.example/image.png", resolver=StubResolver())


def test_allowed_networks_need_not_be_strict(server, resolver, settings):
    settings.VITRINE_FETCH_ALLOWED_NETWORKS = ["127.0.0.1/8"]
    assert url_fetch(f"http://shop.example:{server.server_port}/image.png", resolver=resolver).content == PNG


# --- HTTPS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for shop.example (and its key)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=shop.example"]
        + ["-addext", "subjectAltName=DNS:shop.example,DNS:cdn.example"],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def https_server(certificate):
    cert, key = certificate
    server = LocalServer()
    server.scheme = "https"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: server.server_names.append(name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = serve(server)
    yield server
    stop(server, thread)


@pytest.fixture
def tls(https_server, certificate, monkeypatch):
    """The HTTPS server, with its certificate trusted by ssl.create_default_context()."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    https_server.reset()
    https_server.server_names.clear()
    return https_server


def test_https_verifies_the_certificate_against_the_host_name(tls, resolver, allow_loopback):
    url = f"https://shop.example:{tls.server_port}/redirect-to-cdn"
    fetched = url_fetch(url, resolver=resolver)
    assert fetched.content == PNG
    assert fetched.url == f"https://cdn.example:{tls.server_port}/image.png?token=1"
    assert tls.server_names == ["shop.example", "cdn.example"]  # SNI
    assert [r["host"] for r in tls.requests] == [f"shop.example:{tls.server_port}", f"cdn.example:{tls.server_port}"]


def test_https_certificate_for_another_name_is_refused(tls, resolver, allow_loopback):
    error = refused(f"https://other.example:{tls.server_port}/image.png", resolver=resolver)
    assert error.code == "connection_failed"
    assert "certificate" in error.message
    assert tls.requests == []


def test_https_untrusted_certificate_is_refused(https_server, resolver, allow_loopback, monkeypatch, tmp_path):
    empty = tmp_path / "no-roots.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    error = refused(f"https://shop.example:{https_server.server_port}/image.png", resolver=resolver)
    assert error.code == "connection_failed"
    assert "certificate" in error.message
