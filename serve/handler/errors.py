"""What a refused request gets: a RequestError becomes that request's 4xx, with a JSON body.

Client text never goes into the HTTP status line (TorchServe frames the reason phrase by its length in
characters, so a non-ASCII phrase corrupts the stream and kills the worker): the phrase is a fixed ASCII
word, and echoed text goes into the JSON body, escaped with ascii() and truncated.
"""

from __future__ import annotations

# Fixed ASCII reason phrases: nothing the client sent ever reaches the status line.
PHRASES = {400: "Bad Request", 413: "Payload Too Large", 415: "Unsupported Media Type", 422: "Unprocessable"}
ECHO_CHARS = 60


class RequestError(Exception):
    """A client mistake: becomes an HTTP 4xx for that request only; `reason` labels the reject metric.
    `column`: the feature whose value was refused, if one was (the log's refusal record names it)."""

    def __init__(self, status: int, message: str, reason: str = "invalid", column: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.column = column


def echo(value) -> str:
    """Client text made safe for a JSON body and a log line: ASCII escapes (CR, LF, surrogates), truncated."""
    text = ascii(value)
    return text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 3] + "..."


def kind_name(value) -> str:
    return {str: "string", bool: "boolean", dict: "object", list: "array", type(None): "null"}.get(
        type(value), type(value).__name__
    )
