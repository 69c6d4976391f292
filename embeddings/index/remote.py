"""The embedded index shared by several processes: one process owns the store and serves
it, the others call it.

The embedded engine (Qdrant Edge) admits one process per folder. A single machine running
gunicorn with several workers, Celery workers and beat without a Qdrant server runs
``manage.py serve_index``: it opens the store (``VITRINE_INDEX_PATH``) and answers the
other processes, which set ``VITRINE_INDEX_SERVER=host:port`` and get a
:class:`RemoteIndex` from ``get_index()``: the same interface, every call forwarded.

The protocol is small and local: each message is a length, an HMAC-SHA256 of the body
under a key derived from ``SECRET_KEY`` (every process of a deployment shares it) and the
body, a pickle. A message whose HMAC does not verify is never unpickled: the connection
is closed. Bind it to loopback or a private network (the default is 127.0.0.1).

Every call has a deadline: searches' reads ``VITRINE_INDEX_READ_TIMEOUT`` (a hung server
answers 503 in about that long, not after the shopper gave up), writes ``QDRANT_TIMEOUT``,
building the graph none. A connection that timed out is dropped (a late answer must not
be read as the next call's).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import socket
import socketserver
import struct
import threading
import time

from django.conf import settings

from embeddings.index.base import IndexUnavailable, VectorIndex

logger = logging.getLogger(__name__)

HEADER = struct.Struct("!Q")
MAC_BYTES = 32
# A message larger than this is refused (the largest real one, 1,000 candidates with
# their facts or a batch of vectors, is a few megabytes).
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
# What the server runs: VectorIndex's public methods, nothing else.
METHODS = frozenset(name for name, value in vars(VectorIndex).items() if callable(value) and not name.startswith("_"))
READS = frozenset(
    {
        "alias_target",
        "candidates",
        "count",
        "has_keywords",
        "image_ids",
        "keyword_candidates",
        "other_collections",
        "payloads",
        "query",
        "vectors",
    }
)
UNTIMED = frozenset({"optimize"})  # building a graph takes minutes on a large collection
# Facts sent once per connection. A search's candidates carry their products' facts
# (category, brand, price, attributes: FACT_FIELDS): pickling and unpickling them cost the
# server and the web worker more than the search itself, and they are the same objects
# search after search (the embedded engine keeps them in memory, replacing a product's on
# any change, never changing one in place). A client that says HELLO keeps, per
# connection, the facts it was sent; the server then sends KNOWN instead of an object it
# sent on this connection before. Both tables live and die with the connection.
HELLO = "hello"
PROTOCOL = 2
KNOWN = ...  # pickles as itself
FACT_READS = frozenset({"candidates", "keyword_candidates"})
# Products whose facts a connection keeps (about 0.4 KB each); past this the client closes
# the connection and both sides start again.
MAX_KNOWN_FACTS = 20_000
# A call that keeps the store this long is logged: the searches queued behind it wait too.
SLOW_CALL_SECONDS = 1.0


def channel_key() -> bytes:
    """The processes' shared key: derived from SECRET_KEY, never the key itself."""
    return hmac.new(settings.SECRET_KEY.encode(), b"vitrine-index-server", hashlib.sha256).digest()


def parse_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{value!r} is not host:port")
    return host.strip("[]"), int(port)


def _send(sock: socket.socket, key: bytes, message) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(HEADER.pack(len(body)) + hmac.new(key, body, hashlib.sha256).digest() + body)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        chunks += chunk
    return bytes(chunks)


def _receive(sock: socket.socket, key: bytes):
    (size,) = HEADER.unpack(_receive_exactly(sock, HEADER.size))
    if size > MAX_MESSAGE_BYTES:
        raise ConnectionError(f"a message of {size} bytes is over the limit")
    mac = _receive_exactly(sock, MAC_BYTES)
    body = _receive_exactly(sock, size)
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise PermissionError("a message was not signed with this deployment's key (SECRET_KEY differs?)")
    return pickle.loads(body)  # noqa: S301 - only after the signature verified


class RemoteIndex:
    """The index served by another process (``manage.py serve_index``)."""

    engine = "remote"

    def __init__(self, address: str, *, read_timeout: float, write_timeout: float):
        self.address = parse_address(address)
        self.location = address
        self.alias = settings.VITRINE_INDEX_ALIAS
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self._key = channel_key()
        self._local = threading.local()  # one connection per thread
        self._with_keywords: set[str] = set()  # spaces whose collection has keyword vectors

    def has_keywords(self, space) -> bool:
        """Asked by every text search. A collection made with keyword vectors keeps them
        (a collection's layout cannot change, and every new one is made with them), so a
        yes is remembered: one round trip fewer per search."""
        if space.id in self._with_keywords:
            return True
        answer = self._call("has_keywords", (space,), {})
        if answer:
            self._with_keywords.add(space.id)
        return answer

    def __getattr__(self, name: str):
        if name not in METHODS:
            raise AttributeError(name)

        def call(*args, **kwargs):
            return self._call(name, args, kwargs)

        call.__name__ = name
        return call

    def _call(self, method: str, args: tuple, kwargs: dict):
        timeout = None if method in UNTIMED else self.read_timeout if method in READS else self.write_timeout
        sock = self._connection(timeout)
        try:
            sock.settimeout(timeout)
            if self._local.known is None:  # a new connection: offer to keep facts (an older server refuses)
                _send(sock, self._key, (HELLO, (PROTOCOL,), {}))
                status, _ = _receive(sock, self._key)
                self._local.known = {} if status == "ok" else False
            _send(sock, self._key, (method, args, kwargs))
            status, value = _receive(sock, self._key)
            if status == "ok" and method in FACT_READS and self._local.known is not False:
                _facts_restore(value, self._local.known)
        except TimeoutError:
            self._drop()
            raise IndexUnavailable(
                f"The index server at {self.location} did not answer within {timeout:g} s "
                "(VITRINE_INDEX_READ_TIMEOUT for searches, QDRANT_TIMEOUT for writes); it may be overloaded or stuck."
            ) from None
        except (OSError, EOFError, PermissionError, pickle.UnpicklingError) as exc:
            self._drop()
            raise IndexUnavailable(f"The connection to the index server at {self.location} failed: {exc}") from None
        except KeyError as exc:  # KNOWN for facts never sent: the two sides disagree
            self._drop()
            raise IndexUnavailable(
                f"The index server at {self.location} referred to facts never sent ({exc})."
            ) from None
        if status == "error":
            raise value
        if self._local.known and len(self._local.known) > MAX_KNOWN_FACTS:
            self._drop()  # the next call starts a new connection, and both sides a new table
        return value

    def _connection(self, timeout: float | None) -> socket.socket:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            try:
                sock = socket.create_connection(self.address, timeout=min(timeout or 5.0, 5.0))
            except TimeoutError:
                raise IndexUnavailable(
                    f"The index server at {self.location} did not accept a connection in time."
                ) from None
            except OSError as exc:
                raise IndexUnavailable(
                    f"The index server at {self.location} is not reachable ({exc.strerror or exc}). Start it with "
                    "`python manage.py serve_index`, or unset VITRINE_INDEX_SERVER to open the store in this process."
                ) from None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.sock = sock
            self._local.known = None  # product id → facts sent on this connection (False: not kept)
        return sock

    def _drop(self) -> None:
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        self._local.known = None
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """This thread's connection; the server's store stays open."""
        self._drop()


def _facts_elide(found: list, sent: dict[int, dict]) -> None:
    """The server's side: facts already sent on this connection become KNOWN (``found`` is
    this call's own list of candidates; the facts objects are the index's, untouched)."""
    for candidate in found:
        facts = candidate.facts
        if facts is None:
            continue
        if sent.get(candidate.product_id) is facts:
            candidate.facts = KNOWN
        else:
            sent[candidate.product_id] = facts  # held, so its id is never reused meanwhile


def _facts_restore(found: list, known: dict[int, dict]) -> None:
    """The client's side, in the same order: KNOWN becomes the facts last sent for the
    product; facts sent are kept (raises KeyError for facts never sent)."""
    for candidate in found:
        facts = candidate.facts
        if facts is KNOWN:
            candidate.facts = known[candidate.product_id]
        elif facts is not None:
            known[candidate.product_id] = facts


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: IndexServer = self.server  # type: ignore[assignment]
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent: dict[int, dict] | None = None  # facts sent on this connection, once its client said HELLO
        while True:
            try:
                method, args, kwargs = _receive(sock, server.key)
            except (PermissionError, pickle.UnpicklingError, ValueError) as exc:
                logger.warning("Index server: closed a connection from %s: %s", self.client_address, exc)
                return
            except (ConnectionError, OSError, struct.error):
                return
            if method == HELLO:
                sent = {}
                reply = ("ok", PROTOCOL)
            elif method not in METHODS or method == "close":
                reply = ("error", IndexUnavailable(f"The index server does not run {method!r}."))
            else:
                started = time.monotonic()
                try:
                    value = getattr(server.index, method)(*args, **kwargs)
                    if sent is not None and method in FACT_READS:
                        if len(sent) > 2 * MAX_KNOWN_FACTS:  # the client starts again before this
                            sent.clear()
                        _facts_elide(value, sent)
                    reply = ("ok", value)
                except Exception as exc:  # noqa: BLE001 - sent to the caller, who raises it
                    reply = ("error", _portable(exc))
                took = time.monotonic() - started
                if took > SLOW_CALL_SECONDS:  # searches queued behind it may have timed out
                    logger.warning("Index server: %s took %.1f s", method, took)
            try:
                _send(sock, server.key, reply)
            except OSError:
                return


def _portable(exc: Exception) -> Exception:
    """The exception itself when it survives pickling, else one saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes
        return exc
    except Exception:  # noqa: BLE001
        return IndexUnavailable(f"The index server failed: {type(exc).__name__}: {exc}")


class IndexServer(socketserver.ThreadingTCPServer):
    """Serves ``index`` (the store this process opened) to the deployment's processes."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], index: VectorIndex):
        self.index = index
        self.key = channel_key()
        super().__init__(address, _Handler)
