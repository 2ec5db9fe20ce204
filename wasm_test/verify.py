"""Smoke-test the committed wasm_test.wasm with wasmtime-py (no daemon needed).

    python wasm_test/verify.py [path/to/wasm_test.wasm]

Needs wasmtime and numpy. Defines the `wasmtube` host imports itself (Python
callbacks that record fail, log and output_image calls, and a config that
returns a fixed JSON object), then checks the exports and imports, the
seed-ABI functions, and the alloc ABI: json_echo on a 10 MB document,
json_stats, image_stats on a 4K frame against a numpy reference, grayscale
and box_blur pixels against numpy, show_config, divide's failure and log
line, the failures the kit reports for bad input, the trap of `panic`, and
that 1,000 alloc/call/free cycles do not grow memory. Every store runs under
a 256 MiB memory cap. Exits non-zero on the first failure.
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
U32 = 0xFFFFFFFF
INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE = 3, 9, 11
RGB8, RGBA8, GRAY8 = 1, 2, 3
CHANNELS = {RGB8: 3, RGBA8: 4, GRAY8: 1}
# What this script's `wasmtube.config` hands the guest unless a test says otherwise.
CONFIG = {"greeting": "hi", "limits": {"max": 3}, "list": [1, 2.5, None, "é"]}

EXPECTED_EXPORTS = {
    # Seed ABI.
    "echo": (["i32", "i32"], ["i32"]),
    "hello": (["i32", "i32"], ["i32"]),
    "image_size": (["i32", "i32", "i32", "i32"], ["i32"]),
    "busy": (["i32", "i32"], ["i32"]),
    # Alloc ABI.
    "wasmtube_alloc": (["i32"], ["i32"]),
    "wasmtube_free": (["i32", "i32"], []),
    "json_echo": (["i32", "i32"], ["i64"]),
    "json_stats": (["i32", "i32"], ["i64"]),
    "show_config": (["i32", "i32"], ["i64"]),
    "divide": (["i32", "i32"], ["i64"]),
    "panic": (["i32", "i32"], ["i64"]),
    "image_stats": (["i32", "i32", "i32", "i32"], ["i64"]),
    "image_checksum": (["i32", "i32", "i32", "i32"], ["i64"]),
    "box_blur": (["i32", "i32", "i32", "i32"], ["i64"]),
    "grayscale": (["i32", "i32", "i32", "i32", "i32"], ["i64"]),
}
# Exactly the host functions the guest uses (the linker drops the others).
EXPECTED_IMPORTS = {
    ("wasmtube", "fail"): (["i32", "i32", "i32"], []),
    ("wasmtube", "log"): (["i32", "i32", "i32"], []),
    ("wasmtube", "config"): (["i32", "i32"], ["i32"]),
    ("wasmtube", "output_image"): (["i32", "i32", "i32"], []),
}


def as_i32(x: int) -> int:
    """An unsigned 32-bit address or length as the signed i32 wasmtime-py takes."""
    return x - (1 << 32) if x >= 1 << 31 else x


def signature(func_type: wasmtime.FuncType) -> tuple[list[str], list[str]]:
    return [str(t) for t in func_type.params], [str(t) for t in func_type.results]


class Failed(Exception):
    """The guest called wasmtube.fail during the call, as the daemon would report it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Guest:
    """One instance in its own store, capped at MEMORY_CAP bytes of memory,
    with the `wasmtube` imports defined by callbacks that record each call."""

    def __init__(
        self, engine: wasmtime.Engine, module: wasmtime.Module, config: Any = CONFIG
    ) -> None:
        self.config = json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode()
        self.failures: list[tuple[int, str]] = []
        self.logs: list[tuple[int, str]] = []
        self.images: list[tuple[int, int, int]] = []
        self.config_calls = 0
        self.store = wasmtime.Store(engine)
        self.store.set_limits(memory_size=MEMORY_CAP)
        linker = wasmtime.Linker(engine)
        i32 = wasmtime.ValType.i32()
        line = wasmtime.FuncType([i32, i32, i32], [])
        linker.define_func("wasmtube", "fail", line, self._fail, access_caller=True)
        linker.define_func("wasmtube", "log", line, self._log, access_caller=True)
        linker.define_func(
            "wasmtube", "config", wasmtime.FuncType([i32, i32], [i32]), self._config, True
        )
        linker.define_func("wasmtube", "output_image", line, self._output_image)
        self.instance = linker.instantiate(self.store, module)
        self.exports = self.instance.exports(self.store)
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory

    # The host functions. Like the daemon's, they read the guest's memory
    # through the caller and never raise into the guest.
    def _text(self, caller: wasmtime.Caller, ptr: int, length: int) -> str:
        ptr, length = ptr & U32, length & U32
        return bytes(self.memory.read(caller, ptr, ptr + length)).decode()

    def _fail(self, caller: wasmtime.Caller, code: int, ptr: int, length: int) -> None:
        self.failures.append((code, self._text(caller, ptr, length)))

    def _log(self, caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
        self.logs.append((level, self._text(caller, ptr, length)))

    def _config(self, caller: wasmtime.Caller, ptr: int, capacity: int) -> int:
        self.config_calls += 1
        ptr, capacity = ptr & U32, capacity & U32
        shown = self.config[: min(capacity, len(self.config))]
        if ptr + len(shown) > self.memory.data_len(caller):
            return -1
        self.memory.write(caller, shown, ptr)
        return len(self.config)

    def _output_image(self, width: int, height: int, fmt: int) -> None:
        self.images.append((width & U32, height & U32, fmt))

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

    def _start(self) -> None:
        self.failures.clear()
        self.images.clear()

    def _check_failure(self, result: int) -> None:
        """Raise Failed if the guest called wasmtube.fail; it must have called it
        once, declared no image, and returned an empty output (the kit's way)."""
        if self.failures:
            assert len(self.failures) == 1 and not self.images, (self.failures, self.images)
            assert result == 0, f"a failed call returned {result}, not 0"
            raise Failed(*self.failures[0])

    def seed(self, name: str, data: bytes, *extra: int) -> bytes:
        """Seed ABI: input at offset 42, output over it, returns its length."""
        self._start()
        self.write(SEED_OFFSET, data)
        n = self.call(name, SEED_OFFSET, len(data), *extra)
        self._check_failure(n)
        return self.read(SEED_OFFSET, n)

    def alloc_call(self, name: str, data: bytes, *extra: int) -> bytes:
        """Alloc ABI: alloc + write input, call, unpack, read output, free both."""
        self._start()
        ptr = self.call("wasmtube_alloc", len(data)) & U32 if data else 0
        assert data == b"" or ptr != 0, "wasmtube_alloc failed"
        self.write(ptr, data)
        try:
            # wasmtime-py returns the i64 signed: reinterpret it as unsigned.
            packed = self.call(name, as_i32(ptr), len(data), *extra) & 0xFFFFFFFFFFFFFFFF
            self._check_failure(packed)
            out_ptr, out_len = packed >> 32, packed & U32
            out = self.read(out_ptr, out_len)
            self.call("wasmtube_free", as_i32(out_ptr), as_i32(out_len))
        finally:
            if ptr:
                self.call("wasmtube_free", as_i32(ptr), len(data))
        return out

    def image_call(
        self, name: str, pixels: bytes, width: int, height: int, *extra: int
    ) -> tuple[bytes, tuple[int, int, int]]:
        """An alloc-ABI call that must return an image: its pixels and what the
        guest declared with wasmtube.output_image, checked as the daemon does."""
        out = self.alloc_call(name, pixels, width, height, *extra)
        assert len(self.images) == 1, f"{name} declared {self.images}, not one output image"
        w, h, fmt = self.images[0]
        assert len(out) == w * h * CHANNELS[fmt], f"{name}: {len(out)} bytes for {w}x{h} {fmt}"
        return out, self.images[0]


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
) -> Guest | None:
    """The fresh instance on which an alloc-ABI call trapped with
    `unreachable`, or None if it did not."""
    guest = Guest(engine, module)
    try:
        guest.alloc_call(name, data, *extra)
    except wasmtime.Trap as e:
        return guest if "unreachable" in str(e) else None
    return None


def fails(guest: Guest, name: str, data: bytes, *extra: int, seed: bool = False) -> tuple:
    """(code, message) of a call (alloc ABI, or seed ABI if `seed`) that must
    fail through wasmtube.fail; (None, output) if it did not."""
    try:
        out = (guest.seed if seed else guest.alloc_call)(name, data, *extra)
    except Failed as e:
        return e.code, e.message
    return None, out


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


def grayscale_reference(pixels: bytes, fmt: int) -> bytes:
    """numpy reference for grayscale: rounded luma, alpha ignored; GRAY8 as is."""
    if fmt == GRAY8:
        return pixels
    px = np.frombuffer(pixels, dtype=np.uint8).reshape(-1, CHANNELS[fmt]).astype(np.uint32)
    gray = (77 * px[:, 0] + 150 * px[:, 1] + 29 * px[:, 2] + 128) >> 8
    return gray.astype(np.uint8).tobytes()


def box_blur_reference(pixels: bytes, width: int, height: int) -> bytes:
    """numpy reference for box_blur: 3x3 sums over edge-padded pixels, (s + 4) // 9."""
    if width == 0 or height == 0:
        return b""
    img = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, 3).astype(np.uint32)
    padded = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    total = np.zeros_like(img)
    for dy in range(3):
        for dx in range(3):
            total += padded[dy : dy + height, dx : dx + width]
    return ((total + 4) // 9).astype(np.uint8).tobytes()


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, path)
    print(f"{path}: {os.path.getsize(path)} bytes")

    # Exports and imports.
    funcs = {
        e.name: signature(e.type) for e in module.exports if isinstance(e.type, wasmtime.FuncType)
    }
    check(funcs == EXPECTED_EXPORTS, f"function exports and signatures {sorted(funcs)}")
    imports = {
        (i.module, i.name): signature(i.type)
        for i in module.imports
        if isinstance(i.type, wasmtime.FuncType)
    }
    check(
        imports == EXPECTED_IMPORTS and len(module.imports) == len(imports),
        f"imports: exactly the wasmtube functions it uses {sorted(imports)}",
    )

    # Seed ABI.
    g = Guest(engine, module)
    check(g.seed("echo", b'{"args":"Hello World!"}') == b'{"args":"Hello World!"}', "echo")
    check(g.seed("echo", b'{"args":"x","extra":1}') == b'{"args":"x"}', "echo drops extra fields")
    check(g.seed("hello", b'{"arg":"World"}') == b'{"message":"Hello, World!"}', "hello")
    check(
        g.seed("image_size", bytes(256 * 256 * 3), 256, 256) == b'{"width":256,"height":256}',
        "image_size 256x256",
    )
    g.write(SEED_OFFSET, bytes(17 * 5 * 3))
    n = g.call("image_size", SEED_OFFSET, 0, 17, 5)  # len 0: only width and height count
    check(
        g.read(SEED_OFFSET, n) == b'{"width":17,"height":5}',
        "image_size ignores len, like the seed",
    )
    check(
        fails(g, "echo", b"{}", seed=True)
        == (INVALID_ARGUMENT, "invalid input: missing field `args` at line 1 column 2"),
        "echo fails with INVALID_ARGUMENT on a missing field",
    )
    check(
        fails(g, "hello", b"{", seed=True)
        == (INVALID_ARGUMENT, "invalid input: EOF while parsing an object at line 1 column 1"),
        "hello fails with INVALID_ARGUMENT on bad JSON",
    )
    check(g.seed("echo", b'{"args":"again"}') == b'{"args":"again"}', "echo after a failure")
    # A seed_offset of 0 (a module's NAME.toml may say so) is a null pointer to Rust.
    g.failures.clear()
    g.write(0, b'{"args":"x"}')
    check(
        g.call("echo", 0, 12) == 0 and g.failures[0][0] == FAILED_PRECONDITION,
        f"echo at offset 0 fails with FAILED_PRECONDITION: {g.failures[0][1]}",
    )
    check(not g.images and not g.logs, "JSON functions declare no image and log nothing")

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
    check(
        fails(g, "json_echo", b"[1,")
        == (INVALID_ARGUMENT, "invalid input: EOF while parsing a value at line 1 column 3"),
        "json_echo fails with INVALID_ARGUMENT on bad JSON",
    )
    check(
        fails(g, "json_echo", b"[1] x")
        == (INVALID_ARGUMENT, "invalid input: trailing characters at line 1 column 5"),
        "json_echo fails with INVALID_ARGUMENT on trailing data",
    )
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
            fails(g, f, b"[" * 128 + b"]" * 128)
            == (INVALID_ARGUMENT, "invalid input: recursion limit exceeded at line 1 column 128"),
            f"{f} fails with INVALID_ARGUMENT on 128 levels (serde_json's recursion limit)",
        )
    for bad in (b"", b"[1] x", b"[1,]", b'"\xff"', b"1e400"):
        code, message = fails(g, "json_stats", bad)
        check(
            code == INVALID_ARGUMENT and message.startswith("invalid input: "),
            f"json_stats fails on {bad!r}: {message}",
        )
    check(stats(b"[1]") == {"bytes": 3, "values": 2, "max_depth": 2}, "json_stats after failures")

    # image_stats and image_checksum on a random 4K frame against numpy.
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
        fails(g, "image_checksum", small, 3, 1)
        == (INVALID_ARGUMENT, "a 3x1 RGB8 image needs 9 bytes, got 6"),
        "image_checksum fails with INVALID_ARGUMENT on a len mismatch",
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
        fails(g, "image_stats", small, 3, 1)
        == (INVALID_ARGUMENT, "a 3x1 RGB8 image needs 9 bytes, got 6"),
        "image_stats fails with INVALID_ARGUMENT on a len mismatch",
    )
    check(
        fails(g, "image_stats", small, 65536, 65536)
        == (INVALID_ARGUMENT, "a 65536x65536 RGB8 image is too large to address"),
        "image_stats fails with INVALID_ARGUMENT on a width*height*3 overflow",
    )

    # grayscale: any format in (5 parameters), GRAY8 out, declared as an image.
    g = Guest(engine, module)
    for fmt, name in ((RGB8, "RGB8"), (RGBA8, "RGBA8"), (GRAY8, "GRAY8")):
        for w, h in ((1, 1), (7, 5), (640, 480)):
            px = rng.integers(0, 256, size=w * h * CHANNELS[fmt], dtype=np.uint8).tobytes()
            out, declared = g.image_call("grayscale", px, w, h, fmt)
            check(
                out == grayscale_reference(px, fmt) and declared == (w, h, GRAY8),
                f"grayscale {name} {w}x{h} equals numpy, declared GRAY8 {w}x{h}",
            )
    extremes = bytes([0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    check(
        g.image_call("grayscale", extremes, 5, 1, RGB8)[0] == bytes([0, 255, 77, 149, 29]),
        "grayscale black, white, red, green, blue",
    )
    check(
        g.image_call("grayscale", b"", 0, 3, RGBA8) == (b"", (0, 3, GRAY8)),
        "grayscale of an empty image",
    )
    check(
        fails(g, "grayscale", bytes(8), 2, 1, 7)
        == (INVALID_ARGUMENT, "unknown pixel format code 7"),
        "grayscale fails with INVALID_ARGUMENT on an unknown format",
    )
    check(
        fails(g, "grayscale", bytes(6), 2, 1, RGBA8)
        == (INVALID_ARGUMENT, "a 2x1 RGBA8 image needs 8 bytes, got 6"),
        "grayscale fails with INVALID_ARGUMENT on a len mismatch",
    )

    # box_blur: RGB8 only (4 parameters), RGB8 out, declared as an image.
    for w, h in ((1, 1), (2, 3), (3, 2), (5, 7), (64, 48), (1920, 1080)):
        px = rng.integers(0, 256, size=w * h * 3, dtype=np.uint8).tobytes()
        t = time.perf_counter()
        out, declared = g.image_call("box_blur", px, w, h)
        elapsed = time.perf_counter() - t
        check(
            out == box_blur_reference(px, w, h) and declared == (w, h, RGB8),
            f"box_blur {w}x{h} equals numpy, declared RGB8 {w}x{h}, in {elapsed:.3f}s",
        )
    flat = bytes([200, 100, 7]) * 12
    check(g.image_call("box_blur", flat, 4, 3)[0] == flat, "box_blur keeps a flat image")
    check(g.image_call("box_blur", b"", 0, 4) == (b"", (0, 4, RGB8)), "box_blur empty image")
    check(
        fails(g, "box_blur", bytes(5), 1, 2)
        == (INVALID_ARGUMENT, "a 1x2 RGB8 image needs 6 bytes, got 5"),
        "box_blur fails with INVALID_ARGUMENT on a len mismatch",
    )

    # show_config: what wasmtube.config gives, whatever the input.
    g = Guest(engine, module)
    check(
        json.loads(g.alloc_call("show_config", b"ignored, not even JSON")) == CONFIG,
        "show_config returns the config object",
    )
    check(json.loads(g.alloc_call("show_config", b"")) == CONFIG, "show_config of no input")
    large = {f"key{i}": "v" * i for i in range(40)}  # ~1 KB: more than the kit's first try
    g = Guest(engine, module, config=large)
    check(
        json.loads(g.alloc_call("show_config", b"{}")) == large and g.config_calls == 2,
        f"show_config of a {len(g.config)}-byte config (two wasmtube.config calls)",
    )
    g = Guest(engine, module, config={})
    check(g.alloc_call("show_config", b"{}") == b"{}", "show_config of an empty config")

    # divide: JSON in and out, a failure of its own, one log line per call.
    g = Guest(engine, module)
    check(g.alloc_call("divide", b'{"a":7,"b":2}') == b'{"quotient":3}', "divide 7 / 2")
    check(g.logs == [(1, "divide 7 by 2")], f"divide logs one info line {g.logs}")
    check(
        json.loads(g.alloc_call("divide", b'{"a":-7,"b":2}')) == {"quotient": -3},
        "divide rounds toward zero",
    )
    g.logs.clear()
    check(
        fails(g, "divide", b'{"a":1,"b":0}') == (INVALID_ARGUMENT, "b must not be 0"),
        "divide by 0 fails with INVALID_ARGUMENT 'b must not be 0'",
    )
    check(g.logs == [(1, "divide 1 by 0")], "divide logs before it fails")
    check(
        fails(g, "divide", json.dumps({"a": -(2**63), "b": -1}).encode())
        == (OUT_OF_RANGE, f"{-(2**63)} / -1 overflows"),
        "divide i64::MIN / -1 fails with OUT_OF_RANGE",
    )
    check(
        fails(g, "divide", b'{"a":1}')
        == (INVALID_ARGUMENT, "invalid input: missing field `b` at line 1 column 7"),
        "divide without b fails with INVALID_ARGUMENT",
    )
    check(g.alloc_call("divide", b'{"a":9,"b":3}') == b'{"quotient":3}', "divide after failures")

    # panic: the one function that traps on purpose, after the kit's panic
    # hook logged the message at error level.
    for data, message in ((b'{"message":"boom"}', "boom"), (b"{}", "panic requested")):
        trapped = traps(engine, module, "panic", data)
        logged = trapped.logs if trapped else []
        check(
            trapped is not None
            and len(logged) == 1
            and logged[0][0] == 3
            and logged[0][1].startswith(f"panicked at '{message}', src/lib.rs:"),
            f"panic {data!r} traps with unreachable and logs {logged}",
        )

    # No leak: 1,000 alloc/call/free cycles on one instance keep memory still,
    # failures included.
    g = Guest(engine, module)
    doc = json.dumps(list(range(20000))).encode()
    frame = bytes(range(256)) * 3 * 64  # 256x64 pixels
    for i in range(1003):
        if i == 3:  # the allocator's free lists are warm now
            before = g.pages()
        g.alloc_call("json_echo", doc)
        g.alloc_call("json_stats", doc)
        g.alloc_call("image_stats", frame, 256, 64)
        g.alloc_call("grayscale", frame, 256, 64, RGB8)
        g.alloc_call("box_blur", frame, 256, 64)
        fails(g, "json_echo", doc[:-1])
        fails(g, "divide", b'{"a":1,"b":0}')
    check(
        g.pages() == before,
        f"1,000 x 7 alloc/call/free cycles, 2 of them failures: memory stays at {before} pages",
    )
    print("all checks passed")


if __name__ == "__main__":
    main()
