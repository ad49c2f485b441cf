"""SPDY/3.1 framing for kubectl's port-forward (:mod:`corral.apiserver.spdy`)."""

from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st

from corral.apiserver import spdy
from corral.util.streamproto import V1, V4, V5, choose_protocol, port_prefix, status_json

header_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
header_values = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)


def test_the_dictionary_is_spdy3s() -> None:
    """The Adler-32 that a SPDY/3 peer puts in its first header block's zlib header (FDICT)."""
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


@given(st.lists(st.dictionaries(header_names, header_values, max_size=5), min_size=1, max_size=4),
       st.lists(st.integers(min_value=1, max_value=50), max_size=20))
def test_header_blocks_round_trip_across_frames_and_split_reads(blocks: list[dict[str, str]],
                                                                 cuts: list[int]) -> None:
    client, server = spdy.Framer(), spdy.Framer()
    wire = b"".join(client.syn_stream(2 * index + 1, headers) for index, headers in enumerate(blocks))
    wire += client.data(1, b"payload", fin=True) + client.ping(7)
    frames: list[spdy.Frame] = []
    position = 0
    for cut in cuts:  # the stream arrives in arbitrary pieces (WebSocket messages)
        frames += server.feed(wire[position:position + cut])
        position += cut
    frames += server.feed(wire[position:])
    assert [f.headers for f in frames[:len(blocks)]] == blocks
    assert [f.stream_id for f in frames[:len(blocks)]] == [2 * i + 1 for i in range(len(blocks))]
    data, ping = frames[len(blocks):]
    assert (data.kind, data.stream_id, data.data, data.fin) == (0, 1, b"payload", True)
    assert (ping.kind, ping.value) == (spdy.PING, 7)


def test_a_reply_decodes_on_the_other_side() -> None:
    client, server = spdy.Framer(), spdy.Framer()
    server.feed(client.syn_stream(1, {"streamtype": "data", "port": "8000", "requestid": "0"}))
    reply, empty = client.feed(server.syn_reply(1, {"x": "y"}) + server.syn_reply(3))
    assert (reply.kind, reply.stream_id, reply.headers) == (spdy.SYN_REPLY, 1, {"x": "y"})
    assert (empty.stream_id, empty.headers) == (3, {})
    assert client.feed(server.rst_stream(5) + server.goaway(3))[1].kind == spdy.GOAWAY


def test_a_wrong_version_or_garbage_header_block_is_an_error() -> None:
    framer = spdy.Framer()
    try:
        framer.feed(b"\x80\x02\x00\x01\x00\x00\x00\x0a" + bytes(10))
    except spdy.SpdyError as error:
        assert "version 2" in str(error)
    else:
        raise AssertionError("SPDY/2 accepted")
    try:
        spdy.Framer().feed(b"\x80\x03\x00\x02\x00\x00\x00\x08" + b"\x00\x00\x00\x01garbage!"[:8])
    except spdy.SpdyError as error:
        assert "header block" in str(error)
    else:
        raise AssertionError("garbage header block accepted")


def test_status_on_the_error_channel_per_protocol() -> None:
    assert status_json(V5, 0) == b'{"metadata":{},"status":"Success"}'
    failure = status_json(V4, 3)
    assert b'"reason":"NonZeroExitCode"' in failure and b'"causes":[{"reason":"ExitCode","message":"3"}]' in failure
    assert status_json(V1, 0) == b"" and b"exit code" in status_json(V1, 2)
    assert b'"reason":"InternalError"' in status_json(V5, None, "cannot start")


def test_protocol_choice_follows_the_clients_order() -> None:
    assert choose_protocol("v4.channel.k8s.io, v5.channel.k8s.io", (V5, V4)) == V4
    assert choose_protocol("", (V5,)) == ""
    assert choose_protocol("SPDY/3.1+portforward.k8s.io", (V5, V4)) is None
    assert port_prefix(8000) == b"\x40\x1f"
