"""Download a file from a URL a person gave us, without letting that URL reach inside our network.

The threat is server-side request forgery (SSRF): a URL such as ``http://169.254.169.254/`` (cloud
metadata), ``http://localhost:6379/`` or ``http://10.0.0.5/admin`` makes *our* server send a request
to a place only it can reach. Checking the host name is not enough: a public-looking name can
resolve to a private address, resolve to several addresses of which one is private, or resolve
differently the second time it is asked (DNS rebinding, between our check and the connection).
Redirects can point anywhere, and a slow or endless body can tie up a worker.

The design:

* Parse strictly: http/https only, a host, no user info, no odd numeric IPv4 forms (``2130706433``,
  ``0x7f.1``, ``127.1``) that resolvers accept but a reader does not recognise as loopback.
* Resolve the host once and check every address: only global unicast addresses pass (mapped,
  6to4 and NAT64 IPv6 addresses are judged by the IPv4 address inside them), unless the address is
  in ``VITRINE_FETCH_ALLOWED_NETWORKS``. One refused address refuses the URL.
* Connect to a vetted address itself (no second lookup); for https the certificate is still
  verified against the host name, which is also sent as SNI and in the Host header.
* Every redirect is a new URL that goes through all of the above, up to
  ``VITRINE_FETCH_MAX_REDIRECTS``.
* Read in small chunks with a per-read timeout and one deadline for the whole download (status
  line and headers included); stop as soon as the size limit is passed.

The Content-Type the server sends is reported but decides nothing: callers decode with Pillow.
"""

from __future__ import annotations

import functools
import http.client
import io
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from searchsite.errors import InputRejected

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

USER_AGENT = "Vitrine/1.0 (+image fetch)"
MAX_URL_LENGTH = 2000
CHUNK_SIZE = 64 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
# A last label that is a number makes the whole host an IPv4 address to URL parsers and resolvers.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
# Characters left as they are in the request target; everything else (spaces, non-ASCII) is %-encoded.
_TARGET_SAFE = "/?:@!$&'()*+,;=%[]~"

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class FetchRefused(InputRejected):
    """The URL cannot or may not be downloaded; .code is stable, .message is for people."""


@dataclass(frozen=True)
class FetchedFile:
    url: str  # final URL after redirects
    content: bytes
    content_type: str  # as the server said; informational only (callers sniff with Pillow)


def url_fetch(url: str, *, max_bytes: int | None = None, resolver: Resolver | None = None) -> FetchedFile:
    """Download ``url`` (http/https, public addresses only) and return its body; raise FetchRefused.

    ``resolver(host, port)`` returns the host's addresses as strings (default: the system resolver);
    it is called exactly once per URL, redirects included, and its own timeouts bound the lookup
    (the deadline is checked after it). Error codes: bad_url, bad_scheme,
    dns_failed, private_address, connection_failed, timeout, too_many_redirects, http_error,
    too_large, empty_response.
    """
    allowed = allowed_networks()
    per_read = float(getattr(settings, "VITRINE_FETCH_TIMEOUT", 5.0))
    total = float(getattr(settings, "VITRINE_FETCH_TOTAL_TIMEOUT", 20.0))
    max_redirects = max(0, int(getattr(settings, "VITRINE_FETCH_MAX_REDIRECTS", 3)))
    limit = settings.VITRINE_MAX_IMAGE_BYTES if max_bytes is None else max_bytes
    if limit < 1:
        raise ValueError(f"max_bytes must be positive, not {limit}")
    resolver = resolver or system_resolver
    clock = _Clock(total=total, per_read=per_read)

    target = _Target.parse(url)
    logger.info("Fetching an image from %s", target.display)
    logger.debug("Fetching an image from %s", target.url)
    redirects = 0
    try:
        while True:
            addresses = _resolve(target, resolver)
            _vet(target, addresses, allowed)
            if clock.expired():
                raise _timeout(target, clock)
            result = _get(target, addresses, clock, limit)
            if isinstance(result, FetchedFile):
                return result
            if redirects >= max_redirects:
                raise FetchRefused(
                    "too_many_redirects",
                    f"{target.display} redirects more than {max_redirects} "
                    f"time{'s' if max_redirects != 1 else ''} (VITRINE_FETCH_MAX_REDIRECTS).",
                )
            redirects += 1
            target = _Target.parse(urljoin(target.url, result), redirected_from=target)
            logger.debug("Redirected to %s", target.url)
    except FetchRefused as refused:
        logger.info("Image fetch from %s refused: %s", target.display, refused.code)
        raise


def allowed_networks() -> list[IPNetwork]:
    """VITRINE_FETCH_ALLOWED_NETWORKS parsed (ImproperlyConfigured for an entry that is not a network)."""
    entries = getattr(settings, "VITRINE_FETCH_ALLOWED_NETWORKS", [])
    if isinstance(entries, str | bytes) or not isinstance(entries, Iterable):
        raise ImproperlyConfigured(
            f"VITRINE_FETCH_ALLOWED_NETWORKS must be a list of networks such as ['10.1.0.0/16'], not {entries!r}."
        )
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip() if isinstance(entry, str) else entry, strict=False))
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"VITRINE_FETCH_ALLOWED_NETWORKS: {entry!r} is not a network such as 10.1.0.0/16 ({exc})."
            ) from exc
    return networks


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver, in its order."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def address_refusal(address: IPAddress) -> str | None:
    """Why a connection to ``address`` may not be made (a few words), or None for a public address."""
    if address.version == 6:
        if address.scope_id:
            return "a scoped IPv6 address"
        if address.ipv4_mapped is not None:
            reason = address_refusal(address.ipv4_mapped)
            return reason and f"an IPv4-mapped form of {reason}"
        if address in _NAT64:
            reason = address_refusal(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
            return reason and f"a NAT64 form of {reason}"
        if address.sixtofour is not None:
            reason = address_refusal(address.sixtofour)
            if reason:
                return f"a 6to4 form of {reason}"
        if address.teredo is not None:
            return "a Teredo address"
        if address in _IPV4_COMPATIBLE and not (address.is_unspecified or address.is_loopback):
            return "an IPv4-compatible IPv6 address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.version == 4 and address in _CGNAT:
        return "a shared (carrier-grade NAT) address"
    if address.version == 6 and address in _UNIQUE_LOCAL:
        return "a unique local IPv6 address"
    if address.version == 6 and address.is_site_local:
        return "a site-local IPv6 address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


# --- URLs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # ASCII, lower case, IPv6 without brackets
    port: int
    request_target: str  # path and query, %-encoded
    literal: IPAddress | None  # the host when it is an IP address

    @classmethod
    def parse(cls, url: str, *, redirected_from: _Target | None = None) -> _Target:
        where = f" (a redirect from {redirected_from.display})" if redirected_from else ""
        if not isinstance(url, str) or not url.strip():
            raise FetchRefused("bad_url", f"No URL was given{where}.")
        url = url.strip()
        if len(url) > MAX_URL_LENGTH:
            raise FetchRefused("bad_url", f"The URL is longer than {MAX_URL_LENGTH} characters{where}.")
        if _CONTROL_CHARACTERS.search(url):
            raise FetchRefused("bad_url", f"The URL contains control characters{where}.")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise FetchRefused("bad_url", f"The URL cannot be read{where}: {exc}.") from exc
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            shown = f"{scheme}: URL" if scheme else "URL without http:// or https://"
            raise FetchRefused("bad_scheme", f"Only http and https URLs can be fetched, not a {shown}{where}.")
        if "@" in parts.netloc:
            raise FetchRefused("bad_url", f"URLs with a user name or password are not fetched{where}.")
        if not parts.hostname:
            raise FetchRefused("bad_url", f"The URL has no host name{where}.")
        host, literal = _host_parse(parts.hostname, bracketed="[" in parts.netloc, where=where)
        if port is None:
            port = DEFAULT_PORTS[scheme]
        elif port == 0:
            raise FetchRefused("bad_url", f"Port 0 cannot be connected to{where}.")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(
            url=url,
            scheme=scheme,
            host=host,
            port=port,
            request_target=quote(target, safe=_TARGET_SAFE),
            literal=literal,
        )

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def display(self) -> str:
        """The URL without its query string (which may carry tokens), for messages and logs."""
        return f"{self.scheme}://{self.host_header}{self.request_target.partition('?')[0]}"


def _host_parse(hostname: str, *, bracketed: bool, where: str) -> tuple[str, IPAddress | None]:
    if bracketed:
        if "%" in hostname:
            raise FetchRefused("bad_url", f"IPv6 addresses with a zone ({hostname}) are not fetched{where}.")
        try:
            address = ipaddress.IPv6Address(hostname)
        except ValueError as exc:
            raise FetchRefused("bad_url", f"[{hostname}] is not an IPv6 address{where}.") from exc
        return address.compressed, address
    name = hostname[:-1] if hostname.endswith(".") else hostname
    try:
        address = ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return address.compressed, address
    try:
        name = name.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise FetchRefused("bad_url", f"{hostname!r} is not a valid host name{where}.") from exc
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise FetchRefused("bad_url", f"{hostname!r} is not a valid host name{where}.")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise FetchRefused(
            "bad_url", f"{hostname!r} is not a valid host name; write an IPv4 address as four decimals{where}."
        )
    return name, None


# --- Addresses -----------------------------------------------------------------------------


def _resolve(target: _Target, resolver: Resolver) -> list[IPAddress]:
    if target.literal is not None:
        return [target.literal]
    try:
        answers = resolver(target.host, target.port)
    except (OSError, UnicodeError) as exc:
        raise FetchRefused("dns_failed", f"The host name {target.host} could not be resolved ({exc}).") from exc
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer)
        except ValueError as exc:
            raise FetchRefused("dns_failed", f"{target.host} resolved to {answer!r}, which is not an address.") from exc
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchRefused("dns_failed", f"The host name {target.host} has no addresses.")
    return addresses


def _vet(target: _Target, addresses: list[IPAddress], allowed: list[IPNetwork]) -> None:
    for address in addresses:
        reason = address_refusal(address)
        if reason is None or _is_allowed(address, allowed):
            continue
        shown = _address_text(address)
        if target.literal is not None:  # the sender wrote the address: naming its kind tells nothing new
            where, what = shown, f"it is {reason}"
        else:
            # What a host name resolves to stays in the log: told to whoever asked, it would
            # map the internal network name by name.
            logger.info("Refused to fetch from %s: it resolves to %s, %s.", target.host, shown, reason)
            where, what = target.host, "it is not a public address"
        raise FetchRefused(
            "private_address",
            f"Not fetching from {where}: {what}. Only public addresses are fetched, and those in the "
            "networks of the setting VITRINE_FETCH_ALLOWED_NETWORKS.",
        )


def _address_text(address: IPAddress) -> str:
    """The address as people write it (::ffff:127.0.0.1 rather than ::ffff:7f00:1)."""
    if address.version == 6 and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _is_allowed(address: IPAddress, allowed: list[IPNetwork]) -> bool:
    candidates = [address]
    if address.version == 6 and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(candidate in network for candidate in candidates for network in allowed)


# --- HTTP ----------------------------------------------------------------------------------


class _Clock:
    """One deadline for the whole download, and the timeout each socket operation gets."""

    def __init__(self, *, total: float, per_read: float):
        self.total = total
        self.per_read = per_read
        self.deadline = time.monotonic() + total

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def timeout(self) -> float:
        """min(per-read timeout, time left); TimeoutError once the deadline has passed."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the download deadline has passed")
        return min(self.per_read, remaining)


class _DeadlineReader(io.RawIOBase):
    """The socket's reader, with the socket timeout set from the clock before every receive."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, clock: _Clock):
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._clock = clock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int | None:
        self._sock.settimeout(self._clock.timeout())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """An HTTPResponse whose every read (status line and headers too) respects the clock."""

    def __init__(self, sock, *args, clock: _Clock, **kwargs):
        super().__init__(sock, *args, **kwargs)
        self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, clock), CHUNK_SIZE)


def _tcp_connect(address: str, port: int, clock: _Clock) -> socket.socket:
    sock = socket.create_connection((address, port), clock.timeout())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an address vetted beforehand: no name lookup of its own."""

    def __init__(self, host: str, port: int, *, address: str, clock: _Clock):
        super().__init__(host, port, timeout=clock.per_read)
        self.address = address
        self.response_class = functools.partial(_DeadlineResponse, clock=clock)
        self._clock = clock

    def connect(self) -> None:
        self.sock = _tcp_connect(self.address, self.port, self._clock)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address vetted beforehand; the certificate is checked against the host name."""

    def __init__(self, host: str, port: int, *, address: str, clock: _Clock):
        super().__init__(host, port, timeout=clock.per_read, context=ssl.create_default_context())
        self.address = address
        self.response_class = functools.partial(_DeadlineResponse, clock=clock)
        self._clock = clock

    def connect(self) -> None:
        sock = _tcp_connect(self.address, self.port, self._clock)
        try:
            # The handshake as a whole is bounded by the socket's timeout (min(per-read, time left)).
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _connect(target: _Target, addresses: list[IPAddress], clock: _Clock) -> http.client.HTTPConnection:
    """A connection to the first of ``addresses`` that answers (and completes TLS for https)."""
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    failures: list[tuple[IPAddress, OSError]] = []
    for address in addresses:
        connection = connection_class(target.host, target.port, address=str(address), clock=clock)
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            failures.append((address, exc))
            logger.debug("Connecting to %s at %s failed: %s", target.host, address, exc)
            continue
        return connection
    if all(isinstance(exc, TimeoutError) for _, exc in failures):
        raise _timeout(target, clock)
    certificate = [exc for _, exc in failures if isinstance(exc, ssl.SSLCertVerificationError)]
    if certificate:
        raise FetchRefused(
            "connection_failed",
            f"The certificate of {target.host} could not be verified ({certificate[0].verify_message}).",
        )
    address, exc = failures[-1]
    raise FetchRefused(
        "connection_failed",
        f"Could not connect to {target.host_header} ({address}): {exc.strerror or exc}.",
    )


def _get(target: _Target, addresses: list[IPAddress], clock: _Clock, limit: int) -> FetchedFile | str:
    """GET the target: the file, or the Location of a redirect (not yet checked)."""
    connection = _connect(target, addresses, clock)
    response = None
    try:
        connection.sock.settimeout(clock.timeout())
        connection.request(
            "GET",
            target.request_target,
            headers={
                "Host": target.host_header,
                "User-Agent": USER_AGENT,
                "Accept": "image/*",
                "Connection": "close",
            },
        )
        response = connection.getresponse()
        if response.status in REDIRECT_STATUSES:
            location = response.getheader("Location")
            if not location:
                raise FetchRefused(
                    "http_error",
                    f"The server answered HTTP {response.status} without a Location for {target.display}.",
                )
            return location
        if not 200 <= response.status < 300:
            raise FetchRefused("http_error", f"The server answered HTTP {response.status} for {target.display}.")
        if response.length is not None and response.length > limit:
            raise _too_large(target, limit, declared=response.length)
        content = _read_body(response, target, clock, limit)
        return FetchedFile(url=target.url, content=content, content_type=response.getheader("Content-Type", ""))
    except TimeoutError as exc:
        raise _timeout(target, clock) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise FetchRefused(
            "connection_failed", f"The connection to {target.host_header} failed: {exc or type(exc).__name__}."
        ) from exc
    finally:
        if response is not None:
            response.close()
        connection.close()


def _read_body(response: http.client.HTTPResponse, target: _Target, clock: _Clock, limit: int) -> bytes:
    chunks: list[bytes] = []
    received = 0
    while True:
        clock.timeout()  # raises once the deadline has passed
        chunk = response.read1(CHUNK_SIZE)  # one receive at most (chunked encoding decoded)
        if not chunk:
            break
        received += len(chunk)
        if received > limit:
            raise _too_large(target, limit)
        chunks.append(chunk)
    if response.length:  # Content-Length promised more than arrived
        raise FetchRefused(
            "connection_failed",
            f"{target.host_header} closed the connection after {received} bytes, before the whole file arrived.",
        )
    if not received:
        raise FetchRefused("empty_response", f"The server sent an empty file for {target.display}.")
    return b"".join(chunks)


def _too_large(target: _Target, limit: int, *, declared: int | None = None) -> FetchRefused:
    size = f" ({_megabytes(declared)} MB)" if declared is not None else ""
    return FetchRefused(
        "too_large",
        f"The file at {target.display}{size} is larger than the limit of {_megabytes(limit)} MB "
        "(VITRINE_MAX_IMAGE_BYTES).",
    )


def _timeout(target: _Target, clock: _Clock) -> FetchRefused:
    return FetchRefused(
        "timeout",
        f"{target.host_header} did not answer in time (the download may take {clock.total:g} s, "
        f"each read {clock.per_read:g} s).",
    )


def _megabytes(size: int) -> str:
    value = size / (1024 * 1024)
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text if text != "0" else f"{value:.2g}"
