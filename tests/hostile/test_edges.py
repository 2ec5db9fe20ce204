"""Hostile text and callers at the daemon's edges: log lines that try to forge
records, authorization headers, and who may connect to its Unix socket."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

import wasmtube
from conftest import GUEST_WASM, RunningDaemon, deploy, free_port, is_serving, wait_until, wat
from wasmtube.v1 import wasmtube_pb2 as pb
from wasmtube.v1 import wasmtube_pb2_grpc as pb_grpc
from wasmtube_server import Config
from wasmtube_server.api.interceptors import token_matches
from wasmtube_server.api.listeners import bind_listeners
from wasmtube_server.logs import JsonFormatter, PlainFormatter

# A guest's line that, written as it is, would be three records; ESC [1A moves
# a terminal's cursor up a line, U+2028 ends a line for some log viewers.
FORGED_LINE = (
    "a\nFAKE ERROR line\r2026-01-01 00:00:00,000 ERROR wasmtube_server.app: forged\x1b[1A\u2028end"
)
FORGED_NAME = "evil\n2026-01-01 00:00:00,000 ERROR wasmtube_server.registry: forged\x1b[1A"
PLAIN_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


def logging_guest(line: str) -> bytes:
    """A module whose `say` logs `line` with wasmtube.log at INFO."""
    data = line.encode()
    escaped = "".join(f"\\{byte:02x}" for byte in data)
    return wat(f"""
        (module
          (import "wasmtube" "log" (func $log (param i32 i32 i32)))
          (memory (export "memory") 1)
          (data (i32.const 2048) "{escaped}")
          (func (export "say") (param $p i32) (param i32) (result i32)
            (call $log (i32.const 1) (i32.const 2048) (i32.const {len(data)}))
            (i32.store16 (local.get $p) (i32.const 0x7d7b))
            (i32.const 2)))
    """)


def daemon_stderr(modules_dir: Path, log_format: str) -> list[str]:
    """Run the daemon as `python -m wasmtube_server`, have the guest log its
    line, stop it, and return what it wrote to stderr, line by line."""
    target = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "wasmtube_server", "--modules", str(modules_dir)]
    command += ["--listen", target, "--metrics-listen", "off", "--log-format", log_format]
    daemon = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, encoding="utf-8"
    )
    try:
        wait_until(lambda: daemon.poll() is not None or is_serving(target), 30, "the daemon")
        assert daemon.poll() is None, daemon.communicate()[1]
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.WasmtubeStub(channel)
            stub.Call(pb.CallRequest(module="chatty", function="say", json="{}"), timeout=10)
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    return stderr.splitlines()


@pytest.fixture
def forging_dir(modules_dir: Path) -> Path:
    deploy(modules_dir, "chatty", logging_guest(FORGED_LINE))
    (modules_dir / f"{FORGED_NAME}.wasm").write_bytes(GUEST_WASM.read_bytes())
    return modules_dir


def test_plain_logs_keep_every_record_on_one_line(forging_dir: Path) -> None:
    lines = daemon_stderr(forging_dir, "plain")
    assert lines
    for line in lines:
        assert PLAIN_RECORD.match(line), f"not a record of its own: {line!r}\nin {lines}"
    (guest,) = [line for line in lines if " wasmtube_server.guest: " in line]
    assert guest.endswith(
        r"a\nFAKE ERROR line\r2026-01-01 00:00:00,000 ERROR wasmtube_server.app: forged"
        r"\x1b[1A\u2028end"
    )
    (ignored,) = [line for line in lines if " ignoring " in line]
    assert r"evil\n2026-01-01 00:00:00,000 ERROR wasmtube_server.registry: forged\x1b[1A" in ignored


def test_json_logs_keep_every_record_on_one_line(forging_dir: Path) -> None:
    lines = daemon_stderr(forging_dir, "json")
    records = [json.loads(line) for line in lines]
    assert any(FORGED_LINE in r["message"] for r in records if r["logger"].endswith("guest"))
    assert any(FORGED_NAME in r["message"] for r in records if r["logger"].endswith("loader"))
    assert all(line.isascii() for line in lines)


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(
        "wasmtube_server.test", logging.ERROR, __file__, 1, message, args, None
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\n", r"\n"),
        ("\r", r"\r"),
        ("\t", r"\t"),
        ("\x1b", r"\x1b"),
        ("\x00", r"\x00"),
        ("\x0b\x0c", r"\x0b\x0c"),
        ("\x1c\x1d\x1e", r"\x1c\x1d\x1e"),
        ("\x7f", r"\x7f"),
        ("\x85", r"\x85"),
        ("\x9b", r"\x9b"),
        ("\u2028", r"\u2028"),
        ("\u2029", r"\u2029"),
    ],
    ids=["LF", "CR", "TAB", "ESC", "NUL", "VT-FF", "FS-GS-RS", "DEL", "NEL", "CSI", "LS", "PS"],
)
def test_the_plain_format_escapes_what_could_break_a_line(text: str, shown: str) -> None:
    # In the message itself and in what is formatted into it.
    for message, args in [(f"x{text}y", ()), ("x%sy", (text,))]:
        line = PlainFormatter().format(record(message, *args))
        assert line.endswith(f"x{shown}y")
        assert len(line.splitlines()) == 1


def test_the_plain_format_leaves_ordinary_text_alone() -> None:
    text = 'módulo "ß" \\n 模块 /tmp/a b.wasm 🙂'
    assert PlainFormatter().format(record("%s", text)).endswith(f": {text}")


def test_a_traceback_follows_its_one_line_message() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        entry = record("failed on %s", "a\nb")
        entry.exc_info = sys.exc_info()
    first, *rest = PlainFormatter().format(entry).splitlines()
    assert first.endswith(r"failed on a\nb")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: boom"


def test_the_json_format_is_one_line_whatever_the_message() -> None:
    text = "".join(map(chr, range(0x20))) + "\x7f\x85\u2028\u2029"
    line = JsonFormatter().format(record("%s", text))
    assert len(line.splitlines()) == 1
    assert line.isascii()
    assert json.loads(line)["message"] == text


# The shared token: `authorization: Bearer <token>`, the scheme in any case
# (RFC 7235), one or more spaces before the token.

TOKEN = "s3cret-token"


@pytest.fixture
def guarded(start_daemon: Callable[..., RunningDaemon], modules_dir: Path, tmp_path: Path):
    deploy(modules_dir, "guest", GUEST_WASM.read_bytes())
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    return start_daemon(modules_dir, auth_token_file=token_file)


def list_with(daemon: RunningDaemon, authorization: str) -> grpc.StatusCode:
    """The status of ListModules sent with that authorization header."""
    try:
        daemon.stub.ListModules(
            pb.ListModulesRequest(), metadata=(("authorization", authorization),), timeout=5
        )
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


ACCEPTED = [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"bEaReR {TOKEN}",
            f"Bearer   {TOKEN}", f"bearer  {TOKEN}"]  # fmt: skip
REFUSED = [f"Bearer {TOKEN}x", f"bearer {TOKEN[:-1]}", "BEARER wrong", "bearer", "Bearer ",
           f"Basic {TOKEN}", f"Bearer{TOKEN}", f"Bearers {TOKEN}", TOKEN,
           f"Bearer {TOKEN.upper()}"]  # fmt: skip


def test_the_bearer_scheme_is_case_insensitive(guarded: RunningDaemon) -> None:
    for authorization in ACCEPTED:
        assert list_with(guarded, authorization) == grpc.StatusCode.OK, authorization
    response = guarded.stub.Call(
        pb.CallRequest(module="guest", function="echo", json='{"args":"x"}'),
        metadata=(("authorization", f"bearer {TOKEN}"),),
        timeout=5,
    )
    assert response.json == '{"args":"x"}'


def test_a_wrong_token_is_refused_whatever_the_scheme_case(guarded: RunningDaemon) -> None:
    for authorization in REFUSED:
        assert list_with(guarded, authorization) == grpc.StatusCode.UNAUTHENTICATED, authorization


@pytest.mark.parametrize("header", ACCEPTED)
def test_token_matches_accepts(header: str) -> None:
    assert token_matches(header, TOKEN)


@pytest.mark.parametrize("header", [*REFUSED, None, b"Bearer " + TOKEN.encode(), ""])
def test_token_matches_refuses(header: str | bytes | None) -> None:
    assert not token_matches(header, TOKEN)


# The Unix socket's mode is --socket-mode (0660 by default), whatever the umask.


@pytest.fixture
def umask_000() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


def socket_mode(path: Path) -> int:
    status = path.stat()
    assert stat.S_ISSOCK(status.st_mode)
    return stat.S_IMODE(status.st_mode)


@pytest.mark.parametrize(
    ("options", "mode"),
    [({}, 0o660), ({"socket_mode": 0o600}, 0o600), ({"socket_mode": 0o666}, 0o666)],
    ids=["default", "600", "666"],
)
def test_the_socket_has_the_mode_asked_for_under_umask_000(
    start_daemon: Callable[..., RunningDaemon],
    modules_dir: Path,
    tmp_path: Path,
    umask_000: None,
    options: dict[str, int],
    mode: int,
) -> None:
    deploy(modules_dir, "guest", GUEST_WASM.read_bytes())
    path = tmp_path / "run" / "wasmtube.sock"
    start_daemon(modules_dir, listen=f"unix://{path}", **options)
    assert socket_mode(path) == mode
    assert os.umask(0) == 0, "the daemon must give the umask back"
    with wasmtube.Client(f"unix://{path}", timeout=5) as client:
        assert client.call("guest", "echo", {"args": "unix"}) == {"args": "unix"}


@pytest.mark.parametrize(
    ("flags", "mode"), [([], 0o660), (["--socket-mode", "600"], 0o600)], ids=["default", "600"]
)
def test_the_daemon_started_under_umask_000_makes_its_socket_private(
    modules_dir: Path, tmp_path: Path, flags: list[str], mode: int
) -> None:
    path = tmp_path / "w.sock"
    command = [sys.executable, "-m", "wasmtube_server", "--modules", str(modules_dir)]
    command += ["--listen", f"unix://{path}", "--metrics-listen", "off", *flags]
    daemon = subprocess.Popen(command, stderr=subprocess.PIPE, encoding="utf-8", umask=0)
    try:
        wait_until(lambda: daemon.poll() is not None or is_serving(f"unix://{path}"), 30)
        assert daemon.poll() is None, daemon.communicate()[1]
        assert socket_mode(path) == mode
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)


class RecordingServer:
    """Stands in for a gRPC server: binds the socket as gRPC does, and records
    the mode the socket file had the moment it was created."""

    def __init__(self) -> None:
        self.modes: list[int] = []
        self._sockets: list[socket.socket] = []

    def add_insecure_port(self, address: str) -> int:
        path = address.removeprefix("unix://")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        self._sockets.append(listener)
        self.modes.append(socket_mode(Path(path)))
        return 1

    def close(self) -> None:
        for listener in self._sockets:
            listener.close()


def test_the_socket_is_never_more_open_than_asked_for(tmp_path: Path, umask_000: None) -> None:
    path = tmp_path / "w.sock"
    server = RecordingServer()
    try:
        config = Config(listen=f"unix://{path}", socket_mode=0o640)
        assert bind_listeners(server, config) == [f"unix://{path}"]  # type: ignore[arg-type]
    finally:
        server.close()
    assert server.modes == [0]
    assert socket_mode(path) == 0o640
