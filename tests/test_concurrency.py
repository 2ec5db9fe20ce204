"""Many callers at once: every answer is its own, no Store is shared."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from conftest import RunningDaemon
from wasmtube.v1 import wasmtube_pb2 as pb


def test_concurrent_calls_each_get_their_own_answer(guest_daemon: RunningDaemon) -> None:
    def one(i: int) -> tuple[int, str]:
        text = json.dumps({"args": f"caller-{i}-" + "x" * (i % 97)}, separators=(",", ":"))
        return i, guest_daemon.call("wasm_test", "echo", text).json

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(800)))
    for i, output in results:
        assert json.loads(output) == {"args": f"caller-{i}-" + "x" * (i % 97)}


def test_concurrent_image_and_json_calls(guest_daemon: RunningDaemon) -> None:
    def image(i: int) -> dict[str, int]:
        w, h = 1 + i % 40, 1 + i % 23
        request = pb.CallRequest(
            module="wasm_test",
            function="image_size",
            image=pb.Image(data=bytes(w * h * 3), width=w, height=h),
        )
        return json.loads(guest_daemon.stub.Call(request).json) | {"i": i}

    with ThreadPoolExecutor(max_workers=8) as pool:
        for result in pool.map(image, range(300)):
            i = result["i"]
            assert (result["width"], result["height"]) == (1 + i % 40, 1 + i % 23)
