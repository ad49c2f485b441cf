"""The little of SPDY/3.1 that ``kubectl port-forward`` needs.

kubectl 1.31+ opens port-forward as a WebSocket with subprotocol
``SPDY/3.1+portforward.k8s.io`` whose binary messages carry a SPDY/3.1 byte stream
(client-go's ``TunnelingConnection``; before 1.31 it was a plain SPDY upgrade, which
corral does not serve). In that stream the client opens, per local connection, two
streams (``SYN_STREAM`` with headers ``streamtype: error|data``, ``port``,
``requestid``); the server answers each with ``SYN_REPLY``, then copies bytes on the
data stream and writes any failure on the error stream, ending both with ``FIN``.

Framing (SPDY draft 3): a control frame is ``1|version(15) type(16) flags(8)
length(24)`` then its payload; a data frame is ``0|stream-id(31) flags(8) length(24)``
then data. Header blocks are zlib-compressed with one compressor per direction for the
whole connection, primed with SPDY's dictionary (:data:`DICTIONARY`), each block ended
with a sync flush. The client (moby/spdystream) does no flow control, so neither does
this (``WINDOW_UPDATE`` and ``SETTINGS`` are read and ignored). Pure code: bytes in,
frames and bytes out.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_CANCEL = 5
RST_PROTOCOL_ERROR = 1
MAX_FRAME = 1 << 24
TUNNELING_PREFIX = "SPDY/3.1+"
PORTFORWARD_PROTOCOL = "portforward.k8s.io"

_DICTIONARY_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
    "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
    "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
    "keep-alive", "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(word)) + word.encode() for word in _DICTIONARY_WORDS) + \
    _DICTIONARY_TAIL.encode()
"""SPDY/3's header-compression dictionary (draft 3, section 2.6.10.1): its words, length-prefixed, then its tail."""


class SpdyError(ValueError):
    """The peer sent something that is not SPDY/3."""


@dataclass(frozen=True)
class Frame:
    """A parsed frame: ``kind`` is a control type, or 0 for data (then ``data`` is the payload)."""

    kind: int
    flags: int
    stream_id: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    value: int = 0  # PING id, RST_STREAM / GOAWAY status

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class Framer:
    """Parses frames out of a byte stream (fed in arbitrary pieces) and builds the server's frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY,
                                         DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            head, payload = bytes(self._buffer[:8]), bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            frames.append(self._parse(head, payload))
        return frames

    def _parse(self, head: bytes, payload: bytes) -> Frame:
        flags = head[4]
        if not head[0] & 0x80:
            return Frame(0, flags, int.from_bytes(head[:4], "big") & 0x7FFFFFFF, data=payload)
        version, kind = struct.unpack(">HH", head[:4])
        if version & 0x7FFF != VERSION:
            raise SpdyError(f"SPDY version {version & 0x7FFF} is not supported (only 3)")
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS):
            offset = 10 if kind == SYN_STREAM else 4
            if len(payload) < offset:
                raise SpdyError(f"control frame {kind} is too short")
            stream_id = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            return Frame(kind, flags, stream_id, headers=self._headers(payload[offset:]))
        if kind in (RST_STREAM, GOAWAY, WINDOW_UPDATE) and len(payload) >= 8:
            stream_id, value = struct.unpack(">II", payload[:8])
            return Frame(kind, flags, stream_id & 0x7FFFFFFF, value=value)
        if kind == PING and len(payload) >= 4:
            return Frame(kind, flags, value=int.from_bytes(payload[:4], "big"))
        return Frame(kind, flags, data=payload)  # SETTINGS and unknown control frames: ignored

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as error:
            raise SpdyError(f"cannot decompress a header block: {error}") from None
        headers: dict[str, str] = {}
        try:
            (count,), offset = struct.unpack(">I", raw[:4]), 4
            for _ in range(count):
                (size,) = struct.unpack(">I", raw[offset:offset + 4])
                name = raw[offset + 4:offset + 4 + size].decode()
                offset += 4 + size
                (size,) = struct.unpack(">I", raw[offset:offset + 4])
                headers[name.lower()] = raw[offset + 4:offset + 4 + size].decode().split("\x00")[0]
                offset += 4 + size
        except (struct.error, UnicodeDecodeError) as error:
            raise SpdyError(f"malformed header block: {error}") from None
        return headers

    def _block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers)) + b"".join(
            struct.pack(">I", len(name)) + name.encode() + struct.pack(">I", len(value.encode())) + value.encode()
            for name, value in headers.items())
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None, *, fin: bool = False) -> bytes:
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + self._block(headers or {}))

    def syn_stream(self, stream_id: int, headers: dict[str, str], *, fin: bool = False) -> bytes:
        """(What a client sends; here for tests.)"""
        return self._control(SYN_STREAM, FLAG_FIN if fin else 0,
                             struct.pack(">IIH", stream_id, 0, 0) + self._block(headers))

    @staticmethod
    def data(stream_id: int, payload: bytes = b"", *, fin: bool = False) -> bytes:
        return struct.pack(">II", stream_id, ((FLAG_FIN if fin else 0) << 24) | len(payload)) + payload

    def rst_stream(self, stream_id: int, status: int = RST_CANCEL) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_stream_id: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))
