"""Smoke-test the committed wasm_test.wasm with wasmtime-py (no daemon needed).

    python wasm_test/verify.py [path/to/wasm_test.wasm]

Needs wasmtime and numpy. Checks the exports, the seed-ABI functions, and the
alloc ABI: json_echo on a 10 MB document, json_stats, image_stats on a 4K frame
against a numpy reference, busy, and that 1,000 alloc/call/free cycles do not
grow memory. Every store runs under a 256 MiB memory cap. Exits non-zero on the
first failure.
"""

import ctypes
import json
import os
import sys
import time
from typing import Any

import numpy as np
import wasmtime

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "server", "wasmtube_server", "examples", "wasm_test.wasm")
MEMORY_CAP = 256 << 20
SEED_OFFSET = 42
PAGE = 65536

EXPECTED_EXPORTS = {
    "echo": (["i32", "i32"], ["i32"]),
    "hello": (["i32", "i32"], ["i32"]),
    "image_size": (["i32", "i32", "i32", "i32"], ["i32"]),
    "busy": (["i32", "i32"], ["i32"]),
    "wasmtube_alloc": (["i32"], ["i32"]),
    "wasmtube_free": (["i32", "i32"], []),
    "json_echo": (["i32", "i32"], ["i64"]),
    "json_stats": (["i32", "i32"], ["i64"]),
    "image_stats": (["i32", "i32", "i32", "i32"], ["i64"]),
    "image_checksum": (["i32", "i32", "i32", "i32"], ["i64"]),
}


def as_i32(x: int) -> int:
    """An unsigned 32-bit address or length as the signed i32 wasmtime-py takes."""
    return x - (1 << 32) if x >= 1 << 31 else x


class Guest:
    """One instance in its own store, capped at MEMORY_CAP bytes of memory."""

    def __init__(self, engine: wasmtime.Engine, module: wasmtime.Module) -> None:
        self.store = wasmtime.Store(engine)
        self.store.set_limits(memory_size=MEMORY_CAP)
        self.instance = wasmtime.Instance(self.store, module, [])
        self.exports = self.instance.exports(self.store)
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory

    def pages(self) -> int:
        return self.memory.size(self.store)

    def _base(self) -> int:
        # The data pointer moves when memory grows: fetch it after every call.
        return ctypes.addressof(self.memory.data_ptr(self.store).contents)

    def write(self, ptr: int, data: bytes) -> None:
        assert ptr + len(data) <= self.memory.data_len(self.store)
        ctypes.memmove(self._base() + ptr, data, len(data))

    def read(self, ptr: int, length: int) -> bytes:
        assert ptr + length <= self.memory.data_len(self.store)
        return ctypes.string_at(self._base() + ptr, length)

    def call(self, name: str, *args: int) -> Any:
        func = self.exports[name]
        assert isinstance(func, wasmtime.Func)
        return func(self.store, *args)

    def seed(self, name: str, data: bytes, *extra: int) -> bytes:
        """Seed ABI: input at offset 42, output over it, returns its length."""
        self.write(SEED_OFFSET, data)
        n = self.call(name, SEED_OFFSET, len(data), *extra)
        return self.read(SEED_OFFSET, n)

    def alloc_call(self, name: str, data: bytes, *extra: int) -> bytes:
        """Alloc ABI: alloc + write input, call, unpack, read output, free both."""
        ptr = self.call("wasmtube_alloc", len(data)) & 0xFFFFFFFF if data else 0
        assert data == b"" or ptr != 0, "wasmtube_alloc failed"
        self.write(ptr, data)
        # wasmtime-py returns the i64 signed: reinterpret it as unsigned.
        packed = self.call(name, as_i32(ptr), len(data), *extra) & 0xFFFFFFFFFFFFFFFF
        out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
        out = self.read(out_ptr, out_len)
        self.call("wasmtube_free", as_i32(out_ptr), as_i32(out_len))
        self.call("wasmtube_free", as_i32(ptr), len(data))
        return out


def check(cond: bool, what: str) -> None:
    if not cond:
        sys.exit(f"FAIL: {what}")
    print(f"ok: {what}")


def traps(
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    name: str,
    data: bytes,
    *extra: int,
    seed: bool = False,
) -> bool:
    """Does a call (alloc ABI, or seed ABI if `seed`) on a fresh instance trap
    with `unreachable`?"""
    guest = Guest(engine, module)
    try:
        (guest.seed if seed else guest.alloc_call)(name, data, *extra)
    except wasmtime.Trap as e:
        return "unreachable" in str(e)
    return False


def image_reference(pixels: bytes, width: int, height: int) -> dict[str, Any]:
    """numpy reference for image_stats: same sums, mean and integer luma."""
    px = np.frombuffer(pixels, dtype=np.uint8).reshape(height * width, 3).astype(np.uint32)
    count = width * height
    # Python's int / int is correctly rounded, as is the guest's f64 division
    # of two exactly representable integers: the means must be equal.
    mean = [int(s) / count for s in px.sum(axis=0, dtype=np.uint64)]
    luma = (77 * px[:, 0] + 150 * px[:, 1] + 29 * px[:, 2]) >> 8
    histogram = np.bincount(luma, minlength=256).tolist()
    return {"width": width, "height": height, "mean": mean, "histogram": histogram}


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, path)
    print(f"{path}: {os.path.getsize(path)} bytes")

    # Exports and imports.
    funcs = {}
    for e in module.exports:
        if isinstance(e.type, wasmtime.FuncType):
            funcs[e.name] = ([str(t) for t in e.type.params], [str(t) for t in e.type.results])
    check(funcs == EXPECTED_EXPORTS, f"function exports and signatures {sorted(funcs)}")
    check(list(module.imports) == [], "no imports")

    # Seed ABI.
    g = Guest(engine, module)
    check(g.seed("echo", b'{"args":"Hello World!"}') == b'{"args":"Hello World!"}', "echo")
    check(g.seed("echo", b'{"args":"x","extra":1}') == b'{"args":"x"}', "echo drops extra fields")
    check(g.seed("hello", b'{"arg":"World"}') == b'{"message":"Hello, World!"}', "hello")
    check(
        g.seed("image_size", bytes(256 * 256 * 3), 256, 256) == b'{"width":256,"height":256}',
        "image_size 256x256",
    )
    check(traps(engine, module, "echo", b"{}", seed=True), "echo traps on a missing field")

    # busy: deterministic, and slow enough to be a benchmark.
    b = [json.loads(g.seed("busy", json.dumps({"n": n}).encode())) for n in (0, 1, 1000, 1000)]
    check(b[2] == b[3] and len({v["value"] for v in b[:3]}) == 3, f"busy is stable {b}")
    t = time.perf_counter()
    v = json.loads(g.seed("busy", b'{"n":100000000}'))
    elapsed = time.perf_counter() - t
    check(
        v == json.loads(Guest(engine, module).seed("busy", b'{"n":100000000}')),
        f"busy n=1e8 in {elapsed:.3f}s -> {v}",
    )

    # Alloc ABI: wasmtube_alloc edge cases.
    g = Guest(engine, module)
    check(
        g.call("wasmtube_alloc", 0) == 0 and g.call("wasmtube_alloc", -5) == 0,
        "alloc(<=0) returns 0",
    )
    check(
        g.call("wasmtube_alloc", 0x7FFFFFFF) == 0, "alloc beyond the memory cap returns 0, no trap"
    )
    g.call("wasmtube_free", 0, 10)  # no-ops, must not trap
    g.call("wasmtube_free", 1234, 0)

    # json_echo.
    small = b'{"a":[1,2.5,-3,true,null,"\\u00e9\\n"],"b":{}}'
    check(
        g.alloc_call("json_echo", small) == b'{"a":[1,2.5,-3,true,null,"\xc3\xa9\\n"],"b":{}}',
        "json_echo small",
    )
    check(
        g.alloc_call("json_echo", b' [ 1 , {"k" : "v"} ] ') == b'[1,{"k":"v"}]',
        "json_echo compacts",
    )
    check(traps(engine, module, "json_echo", b"[1,"), "json_echo traps on bad JSON")
    check(traps(engine, module, "json_echo", b"[1] x"), "json_echo traps on trailing data")
    check(
        g.alloc_call("json_echo", b'{"b":1,"a":2,"b":3}') == b'{"b":1,"a":2,"b":3}',
        "json_echo keeps key order and duplicates",
    )
    check(
        g.alloc_call("json_echo", b"[1E2,-0,1.50,1e-7]") == b"[100.0,-0.0,1.5,1e-7]",
        "json_echo writes numbers in serde_json's form",
    )

    rng = np.random.default_rng(12345)
    big = [
        ("1,000,000 numbers < 1e9", rng.integers(0, 10**9, size=1_000_000).tolist()),
        ("5,000,000 zeros", [0] * 5_000_000),
        ("1,000,000 small objects", [{"a": i} for i in range(1_000_000)]),
        ("one string", "x" * 10_000_000),
    ]
    for what, value in big:
        doc = json.dumps(value, separators=(",", ":")).encode()
        g = Guest(engine, module)
        t = time.perf_counter()
        out = g.alloc_call("json_echo", doc)
        elapsed = time.perf_counter() - t
        mb = len(doc) / 1e6
        check(out == doc, f"json_echo {what} ({mb:.1f} MB) byte-identical in {elapsed:.3f}s")
        # Streaming, no tree: memory is the input, the output and ~1 MiB of stack.
        peak = g.pages()
        check(peak * PAGE < 2 * len(doc) + (2 << 20), f"json_echo {what}: peak {peak} pages")
        g = Guest(engine, module)
        got = json.loads(g.alloc_call("json_stats", doc))
        peak = g.pages()
        check(
            got["bytes"] == len(doc) and peak * PAGE < len(doc) + (2 << 20),
            f"json_stats {what}: {got}, peak {peak} pages",
        )

    floats = rng.standard_normal(200_000).tolist()
    doc = json.dumps(floats, separators=(",", ":")).encode()
    out = Guest(engine, module).alloc_call("json_echo", doc)
    check(json.loads(out) == floats, f"json_echo {len(floats)} random floats keep their values")

    # json_stats.
    g = Guest(engine, module)

    def stats(doc: bytes) -> Any:
        return json.loads(g.alloc_call("json_stats", doc))

    check(stats(b"[1,[2]]") == {"bytes": 7, "values": 4, "max_depth": 3}, "json_stats [1,[2]]")
    check(stats(b"7") == {"bytes": 1, "values": 1, "max_depth": 1}, "json_stats scalar")
    check(stats(b"[]") == {"bytes": 2, "values": 1, "max_depth": 1}, "json_stats empty array")
    check(
        stats(b'{"a":{"b":[]},"c":1}') == {"bytes": 20, "values": 4, "max_depth": 3},
        "json_stats object",
    )
    check(
        stats(b'[{"k":[null,"s"]},{},1.5]') == {"bytes": 25, "values": 7, "max_depth": 4},
        "json_stats mixed",
    )
    deep = b"[" * 127 + b"]" * 127
    check(stats(deep) == {"bytes": 254, "values": 127, "max_depth": 127}, "json_stats 127 levels")
    check(Guest(engine, module).alloc_call("json_echo", deep) == deep, "json_echo 127 levels")
    for f in ("json_stats", "json_echo"):
        check(
            traps(engine, module, f, b"[" * 128 + b"]" * 128),
            f"{f} traps on 128 levels (serde_json's recursion limit)",
        )
    for bad in (b"", b"[1] x", b"[1,]", b'"\xff"', b"1e400"):
        check(
            traps(engine, module, "json_stats", bad),
            f"json_stats traps on {bad!r}",
        )

    # image_stats on a random 4K frame against numpy.
    width, height = 3840, 2160
    pixels = rng.integers(0, 256, size=width * height * 3, dtype=np.uint8).tobytes()
    g = Guest(engine, module)
    t = time.perf_counter()
    got = json.loads(g.alloc_call("image_stats", pixels, width, height))
    elapsed = time.perf_counter() - t
    check(
        got == image_reference(pixels, width, height),
        f"image_stats 4K equals numpy in {elapsed:.3f}s",
    )
    peak = g.pages()
    check(
        peak * PAGE < len(pixels) + (2 << 20), f"image_stats 4K: peak {peak} pages, no pixel copy"
    )
    checksum = json.loads(g.alloc_call("image_checksum", pixels, width, height))
    check(
        checksum
        == {"width": width, "height": height, "sum": int(np.frombuffer(pixels, np.uint8).sum())},
        "image_checksum 4K equals numpy",
    )
    small = bytes([10, 20, 30, 255, 255, 255])
    check(
        json.loads(g.alloc_call("image_checksum", small, 2, 1))["sum"] == sum(small),
        "image_checksum 2x1",
    )
    check(
        traps(engine, module, "image_checksum", small, 3, 1),
        "image_checksum traps on len mismatch",
    )
    check(
        image_reference(small, 2, 1) == json.loads(g.alloc_call("image_stats", small, 2, 1)),
        "image_stats 2x1",
    )
    check(
        json.loads(g.alloc_call("image_stats", b"", 0, 5))["mean"] == [None, None, None],
        "image_stats empty image: mean null",
    )
    check(
        traps(engine, module, "image_stats", small, 3, 1),
        "image_stats traps on len mismatch",
    )
    check(
        traps(engine, module, "image_stats", small, 65536, 65536),
        "image_stats traps on width*height*3 overflow",
    )

    # No leak: 1,000 alloc/call/free cycles on one instance keep memory still.
    g = Guest(engine, module)
    doc = json.dumps(list(range(20000))).encode()
    frame = bytes(range(256)) * 3 * 64  # 256x64 pixels
    for i in range(1003):
        if i == 3:  # the allocator's free lists are warm now
            before = g.pages()
        g.alloc_call("json_echo", doc)
        g.alloc_call("json_stats", doc)
        g.alloc_call("image_stats", frame, 256, 64)
    check(g.pages() == before, f"1,000 x 3 alloc/call/free cycles: memory stays at {before} pages")
    print("all checks passed")


if __name__ == "__main__":
    main()
