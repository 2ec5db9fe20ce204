"""A raw HTTP/2 client (h2) that speaks gRPC's framing by hand, to act as
the clients a real library never would: one that opens streams and sends
headers but no body, or a length prefix promising more bytes than it sends.
"""

from __future__ import annotations

import socket
import struct
import time

import h2.config
import h2.connection
import h2.events

__all__ = ["RawGrpcConnection", "grpc_frame"]


def grpc_frame(message: bytes, *, promised: int | None = None) -> bytes:
    """A gRPC length-prefixed message: uncompressed, whose prefix says
    `promised` bytes (default: the message's real length)."""
    length = len(message) if promised is None else promised
    return struct.pack(">BI", 0, length) + message


class RawGrpcConnection:
    """One HTTP/2 connection to a gRPC server on 127.0.0.1."""

    def __init__(self, port: int, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.port = port
        self._metadata = metadata
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.h2.initiate_connection()
        self._flush()
        # Per stream: the response headers and trailers received, and the
        # grpc-status once known.
        self.trailers: dict[int, dict[str, str]] = {}
        self.reset: dict[int, int] = {}
        self.remote_settings: dict[int, int] = {}
        self.closed = False

    def open(self, method: str, body: bytes = b"", *, end: bool = False) -> int:
        """Open a stream calling `method` (/package.Service/Method), send its
        headers and `body`, and leave it open unless `end`."""
        stream = self.h2.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", f"127.0.0.1:{self.port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *self._metadata,
        ]
        self.h2.send_headers(stream, headers, end_stream=end and not body)
        if body:
            self.h2.send_data(stream, body, end_stream=end)
        self._flush()
        return stream

    def pump(self, seconds: float) -> None:
        """Read and answer frames (pings, settings) for `seconds`."""
        end = time.monotonic() + seconds
        while not self.closed and (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            except OSError:
                self.closed = True
                return
            if not data:
                self.closed = True
                return
            for event in self.h2.receive_data(data):
                self._note(event)
            self._flush()

    def wait_settings(self, timeout: float = 5.0) -> None:
        """Read frames until the server's SETTINGS came (it sends them first)."""
        end = time.monotonic() + timeout
        while not self.remote_settings and not self.closed and time.monotonic() < end:
            self.pump(0.05)

    def status(self, stream: int) -> str | None:
        """The stream's grpc-status, once its trailers came."""
        return self.trailers.get(stream, {}).get("grpc-status")

    def _note(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.TrailersReceived | h2.events.ResponseReceived):
            headers = dict(event.headers or [])
            if "grpc-status" in headers and event.stream_id is not None:
                self.trailers[event.stream_id] = headers
        elif isinstance(event, h2.events.StreamReset) and event.stream_id is not None:
            self.reset[event.stream_id] = int(event.error_code or 0)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for setting, changed in event.changed_settings.items():
                self.remote_settings[int(setting)] = changed.new_value
        elif isinstance(event, h2.events.DataReceived) and event.stream_id is not None:
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            self.closed = True
