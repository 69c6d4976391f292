"""Slow requests, told to the operator while they are slow.

A request still running after ``VITRINE_SLOW_REQUEST_SECONDS`` is logged once, with its
method, path and where its thread is at that moment (the stack): the line that says why a
page hangs, even when the client gives up and the request never finishes. One daemon
thread per process looks at the requests in flight every half second; a request costs a
dict entry. ``0`` turns it off.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback

from django.conf import settings
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger("searchsite.slow")

CHECK_SECONDS = 0.5
STACK_FRAMES = 30

_in_flight: dict[int, tuple[float, str, bool]] = {}  # thread id → (started, what, reported)
_lock = threading.Lock()
_watcher: threading.Thread | None = None


class SlowRequestMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.VITRINE_SLOW_REQUEST_SECONDS
        if not limit:
            return self.get_response(request)
        _watcher_start()
        thread = threading.get_ident()
        started = time.monotonic()
        with _lock:
            _in_flight[thread] = (started, f"{request.method} {request.path}", False)
        try:
            response = self.get_response(request)
        finally:
            with _lock:
                _, what, reported = _in_flight.pop(thread, (started, "", False))
            if reported:
                logger.warning("Slow request finished: %s in %.1f s", what, time.monotonic() - started)
        return response


def slow_requests_report(now: float | None = None) -> list[str]:
    """Log (once each) the requests in flight for longer than the limit; what was logged."""
    limit = settings.VITRINE_SLOW_REQUEST_SECONDS
    now = time.monotonic() if now is None else now
    frames = sys._current_frames()
    logged = []
    with _lock:
        late = [(t, s, w) for t, (s, w, reported) in _in_flight.items() if not reported and now - s >= limit]
        for thread, started, what in late:
            _in_flight[thread] = (started, what, True)
    for thread, started, what in late:
        frame = frames.get(thread)
        stack = "".join(traceback.format_stack(frame, limit=STACK_FRAMES)) if frame else "(no stack)\n"
        message = f"Slow request: {what} running for {now - started:.1f} s; it is at:\n{stack}"
        logger.warning(message.rstrip())
        logged.append(message)
    return logged


def _watch() -> None:
    while True:
        time.sleep(CHECK_SECONDS)
        try:
            slow_requests_report()
        except Exception:  # noqa: BLE001 - the watchdog must outlive its own bugs
            logger.exception("The slow-request watchdog failed")


def _watcher_start() -> None:
    global _watcher
    if _watcher is None:
        with _lock:
            if _watcher is None:
                _watcher = threading.Thread(target=_watch, name="vitrine-slow-requests", daemon=True)
                _watcher.start()
