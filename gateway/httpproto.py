"""uvicorn's httptools protocol with a cap on the request head (request line and headers).

llhttp sets no limit of its own and uvicorn's `h11_max_incomplete_event_size` applies to the h11 protocol
only, so without this a client could send 32 MB of headers and the server would buffer them all. Past the cap
the connection gets 431 in the gateway's shape and is closed, as nginx (in front of Supabase's Kong) does.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadLimitedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request whose head grows past `max_head_bytes`."""

    max_head_bytes = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._in_head = True
        self._oversized = False

    def data_received(self, data: bytes) -> None:
        """Count the bytes that arrive while a head is incomplete; refuse once they pass the cap."""
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # A head still incomplete past the cap is refused before it is all buffered; a head that completed in
        # this chunk was measured exactly by on_headers_complete.
        too_long = self._in_head and self._head_bytes > self.max_head_bytes
        if (too_long or self._oversized) and not self.transport.is_closing():
            self._refuse()

    def on_headers_complete(self) -> None:
        """The head is complete: measure it, and start the request only when it is within the cap."""
        self._in_head = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            self._oversized = True  # no request cycle: data_received answers 431 once the parser returns
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """The body of an accepted request."""
        if not self._oversized:
            super().on_body(body)

    def on_message_complete(self) -> None:
        """The next bytes start another request's head."""
        if self._oversized:
            return
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        """An upgrade whose head is over the cap is refused like any other request."""
        if self._oversized:
            self._refuse()
            return
        super().handle_websocket_upgrade()

    def _refuse(self) -> None:
        message = (
            f'{{"message":"Request header fields too large: the request line and headers are over '
            f'{self.max_head_bytes} bytes"}}'
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json; charset=utf-8\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\nconnection: close\r\n\r\n" + message
        )
        self.transport.close()


def head_limited(max_head_bytes: int) -> type[HeadLimitedProtocol]:
    """The protocol class for uvicorn's `http=`, with the cap set."""
    return type("HeadLimitedProtocol", (HeadLimitedProtocol,), {"max_head_bytes": max_head_bytes})
