"""Error types shared by every app (they belong to no one app's domain)."""


class InputRejected(Exception):
    """A person's input cannot be used. ``code`` is stable (APIs, tests); ``message`` is for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# Seconds a client is told to wait (Retry-After) when a face answers 503.
RETRY_AFTER_UNAVAILABLE = "30"


class ServiceUnavailable(Exception):
    """Something Vitrine depends on (the vector store, the model) cannot be used right now;
    the message says why and what to do. Faces answer 503; commands stop with the message."""
