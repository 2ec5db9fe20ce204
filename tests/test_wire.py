"""Large image requests are parsed with their pixels left in place: whatever
the bytes, the result must be what protobuf's own parser makes of them."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import RunningDaemon
from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube_server.api.wire import ZERO_COPY_MIN_BYTES, split_pixels

images = st.builds(
    pb.Image,
    data=st.binary(max_size=64),
    width=st.integers(0, 2**32 - 1),
    height=st.integers(0, 2**32 - 1),
    format=st.integers(0, 3),
)
requests = st.builds(
    pb.CallRequest, module=st.text(max_size=8), function=st.text(max_size=8), image=images
)


def same_as_protobuf(raw: bytes) -> None:
    split = split_pixels(raw)
    try:
        expected = pb.CallRequest.FromString(raw)
    except DecodeError:
        assert split is None
        return
    if split is None:
        return  # left to protobuf: always correct
    rebuilt = pb.CallRequest()
    rebuilt.CopyFrom(split.request)
    assert rebuilt.image.data == b""
    rebuilt.image.data = split.pixels.tobytes()
    assert rebuilt == expected
    assert rebuilt.WhichOneof("input") == expected.WhichOneof("input") == "image"


@settings(max_examples=300, deadline=None)
@given(request=requests)
def test_a_plain_request_splits_into_the_same_message(request: pb.CallRequest) -> None:
    raw = request.SerializeToString()
    split = split_pixels(raw)
    if request.image.data:  # proto3 writes no empty data field, leaving nothing to split
        assert split is not None
        assert split.pixels.tobytes() == request.image.data
    same_as_protobuf(raw)


@settings(max_examples=300, deadline=None)
@given(first=requests, second=requests, json=st.text(max_size=5), cut=st.integers(0, 200))
def test_odd_layouts_mean_what_protobuf_says(
    first: pb.CallRequest, second: pb.CallRequest, json: str, cut: int
) -> None:
    one, two = first.SerializeToString(), second.SerializeToString()
    with_json = pb.CallRequest(json=json).SerializeToString()
    for raw in (
        one + two,  # the image field twice: protobuf merges them
        one + with_json,  # json after the image: json wins
        with_json + one,  # image after json: image wins
        one[:cut],  # truncated anywhere
        one + b"\x22\x05ab",  # an image whose length overruns
        bytes([0x22, len(one) % 128]) + one,  # nested garbage
    ):
        same_as_protobuf(raw)


def test_a_large_frame_over_grpc_arrives_whole(guest_daemon: RunningDaemon) -> None:
    width, height = 1024, 512
    data = bytes(range(256)) * (width * height * 3 // 256)
    assert len(data) > ZERO_COPY_MIN_BYTES
    request = pb.CallRequest(
        module="wasm_test",
        function="image_checksum",
        image=pb.Image(data=data, width=width, height=height),
    )
    response = guest_daemon.stub.Call(request)
    assert response.json == f'{{"width":{width},"height":{height},"sum":{sum(data)}}}'
    # A large request with a bad string is still a precise INVALID_ARGUMENT.
    raw = bytearray(request.SerializeToString())
    raw[2] = 0xFF  # inside the module name
    call = guest_daemon.channel.unary_unary(
        "/wasmtube.v1.Wasmtube/Call",
        request_serializer=bytes,
        response_deserializer=pb.CallResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as info:
        call(bytes(raw))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a valid protobuf message" in info.value.details()
