class InputRejected(Exception):
    """A person's input cannot be used. ``code`` is stable (APIs, tests); ``message`` is for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
