"""The daemon as a sidecar: sockets, TLS, tokens, graceful shutdown, config, logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from certs import CertificateAuthority
from grpc_health.v1 import health_pb2, health_pb2_grpc

import wasmtube
from conftest import GUEST_WASM, RunningDaemon, deploy, is_serving, json_module, wait_until, wat
from wasmtube_server.cli import serve

SERVICE = "wasmtube.v1.Wasmtube"


@pytest.fixture
def echo_dir(modules_dir: Path) -> Path:
    deploy(modules_dir, "wasm_test", GUEST_WASM.read_bytes())
    return modules_dir


def test_tcp_and_unix_socket_at_once(start_daemon, echo_dir: Path, tmp_path: Path) -> None:
    socket = tmp_path / "run" / "wasmtube.sock"
    daemon = start_daemon(echo_dir, listen=("127.0.0.1:0", f"unix://{socket}"))
    assert daemon.daemon.addresses[1] == f"unix://{socket}"
    for target in daemon.daemon.addresses:
        with wasmtube.Client(target, timeout=5) as client:
            assert client.call("wasm_test", "echo", {"args": target}) == {"args": target}


def test_a_stale_socket_file_is_replaced(start_daemon, echo_dir: Path, tmp_path: Path) -> None:
    import socket as sockets

    path = tmp_path / "w.sock"
    stale = sockets.socket(sockets.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, as after a crash
    daemon = start_daemon(echo_dir, listen=f"unix://{path}")
    with wasmtube.Client(f"unix://{path}", timeout=5) as client:
        assert client.list_modules()[0].name == "wasm_test"
    assert daemon.daemon.port == 0


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


def test_tls(start_daemon, echo_dir: Path, ca: CertificateAuthority) -> None:
    server = ca.issue("server", server=True)
    daemon = start_daemon(echo_dir, tls_cert=server.cert, tls_key=server.key)
    trusted = grpc.ssl_channel_credentials(root_certificates=ca.pem.cert.read_bytes())
    with wasmtube.Client(daemon.address, timeout=5, credentials=trusted) as client:
        assert client.call("wasm_test", "echo", {"args": "tls"}) == {"args": "tls"}
    # Plaintext cannot talk to a TLS listener.
    with wasmtube.Client(daemon.address, timeout=2) as client, pytest.raises(wasmtube.Unavailable):
        client.list_modules()


def test_mutual_tls(start_daemon, echo_dir: Path, ca: CertificateAuthority) -> None:
    server, client_pem = ca.issue("server", server=True), ca.issue("client", server=False)
    daemon = start_daemon(
        echo_dir, tls_cert=server.cert, tls_key=server.key, tls_client_ca=ca.pem.cert
    )
    with_cert = grpc.ssl_channel_credentials(
        root_certificates=ca.pem.cert.read_bytes(),
        private_key=client_pem.key.read_bytes(),
        certificate_chain=client_pem.cert.read_bytes(),
    )
    with wasmtube.Client(daemon.address, timeout=5, credentials=with_cert) as client:
        assert client.call("wasm_test", "echo", {"args": "mtls"}) == {"args": "mtls"}
    without_cert = grpc.ssl_channel_credentials(root_certificates=ca.pem.cert.read_bytes())
    with (
        wasmtube.Client(daemon.address, timeout=2, credentials=without_cert) as client,
        pytest.raises(wasmtube.Unavailable),
    ):
        client.list_modules()


def test_shared_token(start_daemon, echo_dir: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    daemon = start_daemon(echo_dir, auth_token_file=token_file)
    with wasmtube.Client(daemon.address, timeout=5, token="s3cret-token") as client:
        assert client.call("wasm_test", "echo", {"args": "ok"}) == {"args": "ok"}
    for token, words in [(None, "missing authorization"), ("wrong", "not the one")]:
        with wasmtube.Client(daemon.address, timeout=5, token=token) as client:
            with pytest.raises(wasmtube.Unauthenticated, match=words):
                client.call("wasm_test", "echo", {"args": "x"})
            with pytest.raises(wasmtube.Unauthenticated):
                client.list_modules()
    # Refused calls never reached a guest: only the one good call was counted.
    assert (
        daemon.metric("wasmtube_calls_total", module="wasm_test", function="echo", code="OK") == 1
    )
    assert daemon.metric("wasmtube_calls_total", code="UNAUTHENTICATED") is None
    # Probes carry no token, and health needs none.
    health = health_pb2_grpc.HealthStub(daemon.channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING


SLOW = wat("""
(module
  (memory (export "memory") 1)
  (func (export "slow") (param i32 i32) (result i32) (local $i i64)
    (local.set $i (i64.const 400000000))
    (loop $spin
      (local.set $i (i64.sub (local.get $i) (i64.const 1)))
      (br_if $spin (i64.ne (local.get $i) (i64.const 0))))
    (i32.store16 (local.get 0) (i32.const 0x7d7b))
    (i32.const 2)))
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_drains_every_accepted_call_then_exits_0(
    modules_dir: Path, signum: signal.Signals
) -> None:
    deploy(modules_dir, "slow", SLOW)
    socket = modules_dir.parent / "w.sock"
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wasmtube_server",
            "--modules",
            str(modules_dir),
            "--listen",
            f"unix://{socket}",
            "--metrics-listen",
            "off",
            "--grace",
            "20",
            "--module-concurrency",
            "4",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    target = f"unix://{socket}"
    outcomes: list[tuple[str, float, float]] = []
    stop = threading.Event()

    def caller() -> None:
        # Calls until refused, then goes elsewhere, as a client told
        # UNAVAILABLE does.
        with wasmtube.Client(target, timeout=30) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    client.call("slow", "slow")
                    outcomes.append(("ok", started, time.monotonic()))
                except wasmtube.WasmtubeError as e:
                    refused = isinstance(e, wasmtube.Unavailable) and "shutting down" in str(e)
                    outcomes.append(("refused" if refused else repr(e), started, time.monotonic()))
                    return

    try:
        wait_until(lambda: is_serving(target), timeout=20, what="the daemon")
        callers = [threading.Thread(target=caller) for _ in range(3)]
        for thread in callers:
            thread.start()
        # Under way: every caller has had an answer, so calls are in guests.
        wait_until(lambda: len(outcomes) >= len(callers), what="the first answers")
        signalled = time.monotonic()
        daemon.send_signal(signum)

        # While draining (calls still running), health says NOT_SERVING.
        channel = grpc.insecure_channel(target)
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service=SERVICE)
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        wait_until(lambda: health.Check(check, timeout=5).status == not_serving, timeout=5)
        assert daemon.poll() is None, "the daemon exited before its running calls could end"
        channel.close()

        assert daemon.wait(timeout=30) == 0
        stop.set()
        for thread in callers:
            thread.join(timeout=30)
    finally:
        daemon.kill()
        log = daemon.communicate()[1]
    # Calls were running in guests when the signal came, and finished with
    # their answers; later calls were refused by the drain ("shutting down"),
    # which happens before a guest is reached. No call failed any other way:
    # none was cancelled or cut off.
    assert any(kind == "ok" and ended > signalled for kind, _, ended in outcomes), outcomes
    assert any(kind == "refused" for kind, _, _ in outcomes)
    assert {kind for kind, _, _ in outcomes} <= {"ok", "refused"}, outcomes
    # The daemon's side: the drain ended with no call left in a guest, so the
    # server's final stop cut none (it would log "still running").
    assert "still running" not in log
    assert "draining" in log


def _resolve(args: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    """The options `wasmtube serve ARGS` would run with, without running it."""
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        return serve.make_context("serve", args).params
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_options_come_from_flags_then_environment_then_toml(tmp_path: Path) -> None:
    toml = tmp_path / "wasmtube.toml"
    toml.write_text(
        'listen = ["127.0.0.1:7001", "unix:///tmp/x.sock"]\n'
        'call-timeout = 3\nmax-memory = "64MiB"\nmodule-queue = 5\nwasi = true\n'
    )
    params = _resolve(["--config", str(toml)])
    assert params["listen"] == ("127.0.0.1:7001", "unix:///tmp/x.sock")
    assert (params["call_timeout"], params["max_memory"], params["wasi"]) == (3.0, 64 << 20, True)
    params = _resolve(["--config", str(toml)], {"WASMTUBE_MODULE_QUEUE": "9"})
    assert params["module_queue"] == 9
    params = _resolve(
        ["--config", str(toml), "--module-queue", "11"], {"WASMTUBE_MODULE_QUEUE": "9"}
    )
    assert params["module_queue"] == 11
    assert _resolve([])["call_timeout"] == 10.0


def test_flag_pairs_and_new_options_resolve_to_config_defaults() -> None:
    defaults = _resolve([])
    assert (defaults["wasi"], defaults["check_output"]) == (False, False)
    assert defaults["cache_max_entries"] == 4096
    params = _resolve(["--check-output", "--cache-max-entries", "50"])
    assert (params["check_output"], params["cache_max_entries"]) == (True, 50)
    assert _resolve([], {"WASMTUBE_CHECK_OUTPUT": "1"})["check_output"] is True


def test_every_option_has_an_environment_variable_and_help() -> None:
    for param in serve.params:
        assert param.envvar == f"WASMTUBE_{param.name.upper()}" or param.name in {"modules_dir"}, (
            param.name
        )
        assert isinstance(param, __import__("click").Option) and param.help


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ("bogus = 1\n", "unknown option 'bogus'"),
        ('call-timeout = "soon"\n', "--call-timeout"),
        ('max-memory = "12XB"\n', "--max-memory"),
        ('instance-policy = "warm"\n', "--instance-policy"),
        ("this is not toml", "--config"),
    ],
)
def test_a_bad_option_fails_at_start_naming_it(tmp_path: Path, toml: str, words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    done = subprocess.run(
        [sys.executable, "-m", "wasmtube_server", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert words in done.stderr


def test_json_logs_carry_call_records(echo_dir: Path, tmp_path: Path) -> None:
    socket = tmp_path / "w.sock"
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wasmtube_server",
            "--modules",
            str(echo_dir),
            "--listen",
            f"unix://{socket}",
            "--metrics-listen",
            "off",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with wasmtube.Client(f"unix://{socket}", timeout=2) as client:
            wait_until(lambda: is_serving(f"unix://{socket}"), timeout=20)
            client.call("wasm_test", "echo", {"args": "logged"})
            with pytest.raises(wasmtube.NotFound):
                client.call("wasm_test", "nope")
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
    finally:
        daemon.kill()
    lines = [json.loads(line) for line in daemon.communicate()[1].splitlines()]
    calls = [line["call"] for line in lines if "call" in line]
    assert {"module": "wasm_test", "function": "echo", "status": "OK"}.items() <= calls[0].items()
    assert calls[0]["duration_ms"] > 0
    assert calls[1]["status"] == "NOT_FOUND"
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)


def test_async_client_has_the_clients_surface(guest_daemon: RunningDaemon) -> None:
    import asyncio

    import numpy as np

    async def main() -> None:
        async with wasmtube.AsyncClient(guest_daemon.address, timeout=5) as client:
            assert await client.call("wasm_test", "echo", {"args": "aio"}) == {"args": "aio"}
            raw = await client.call_raw("wasm_test", "echo", '{"args":"raw"}')
            assert raw.generation == 1 and raw.json == '{"args":"raw"}'
            image = np.zeros((3, 4, 3), dtype=np.uint8)
            assert await client.call_image("wasm_test", "image_size", image) == {
                "width": 4,
                "height": 3,
            }
            assert [m.name for m in await client.list_modules()] == ["wasm_test"]
            with pytest.raises(wasmtube.NotFound):
                await client.call("ghost", "echo")
            results = await asyncio.gather(
                *(client.call("wasm_test", "echo", {"args": str(i)}) for i in range(50))
            )
            assert [r["args"] for r in results] == [str(i) for i in range(50)]
            gray = await client.call_image("wasm_test", "grayscale", np.full((2, 3), 9, np.uint8))
            assert gray.tolist() == [[9, 9, 9], [9, 9, 9]]
            frames = [np.full((2, 2, 3), v, np.uint8) for v in (0, 255)]
            streamed = [
                g.tolist() async for g in client.call_stream("wasm_test", "grayscale", frames)
            ]
            assert streamed == [[[0, 0], [0, 0]], [[255, 255], [255, 255]]]
            with pytest.raises(wasmtube.InvalidArgument, match="message 1 of the stream"):
                async for _ in client.call_stream(
                    "wasm_test", "divide", [{"a": 1, "b": 1}, {"a": 1, "b": 0}]
                ):
                    pass

    asyncio.run(main())
    public = {n for n in dir(wasmtube.Client) if not n.startswith("_")}
    assert public <= {n for n in dir(wasmtube.AsyncClient) if not n.startswith("_")}


def test_modules_cli_through_token_and_unix_socket(
    start_daemon: Callable[..., RunningDaemon], echo_dir: Path, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("t0k3n")
    socket = tmp_path / "c.sock"
    start_daemon(echo_dir, listen=f"unix://{socket}", auth_token_file=token_file)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wasmtube.cli",
            "call",
            "wasm_test",
            "echo",
            '{"args":"cli"}',
            "--target",
            f"unix://{socket}",
            "--token-file",
            str(token_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"args": "cli"}
    deploy(echo_dir, "x", json_module("{}"))
