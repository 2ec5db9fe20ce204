"""The `wasmtube` command, run as a real process against the real daemon."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import WASMTUBE, run
from PIL import Image

import wasmtube
from conftest import RunningDaemon, free_ports, is_serving, wait_until


def test_call_prints_the_result(guest_daemon: RunningDaemon) -> None:
    done = run("call", "wasm_test", "echo", '{"args":"Hi"}', "--target", guest_daemon.address)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"args": "Hi"}


def test_target_from_the_environment(guest_daemon: RunningDaemon) -> None:
    done = run(
        "call", "wasm_test", "hello", '{"arg":"CLI"}', env={"WASMTUBE_TARGET": guest_daemon.address}
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"message": "Hello, CLI!"}


def test_call_with_an_image_file(guest_daemon: RunningDaemon, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(photo)
    done = run(
        "call", "wasm_test", "image_size", "--image", str(photo), "--target", guest_daemon.address
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"width": 40, "height": 30}


def test_modules_lists_the_guest(guest_daemon: RunningDaemon) -> None:
    done = run("modules", "--target", guest_daemon.address)
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "GENERATION", "SHA256"]
    assert row.split()[0:2] == ["wasm_test", "1"]
    assert "echo" in row

    done = run("modules", "--json", "--target", guest_daemon.address)
    (module,) = json.loads(done.stdout)
    assert module["name"] == "wasm_test"


def test_failures_exit_1_with_the_status(guest_daemon: RunningDaemon) -> None:
    done = run("call", "ghost", "echo", "{}", "--target", guest_daemon.address)
    assert done.returncode == 1
    assert "NOT_FOUND" in done.stderr and "ghost" in done.stderr


def test_invalid_json_argument_is_a_usage_error(guest_daemon: RunningDaemon) -> None:
    done = run("call", "wasm_test", "echo", "{oops", "--target", guest_daemon.address)
    assert done.returncode == 2
    assert "JSON" in done.stderr


def test_serve_runs_the_daemon_and_stops_on_sigterm(modules_dir: Path) -> None:
    from conftest import GUEST_WASM

    (modules_dir / "echoer.wasm").write_bytes(GUEST_WASM.read_bytes())
    port, metrics_port = free_ports(2)
    daemon = subprocess.Popen(
        [
            *WASMTUBE,
            "serve",
            "--modules",
            str(modules_dir),
            "--listen",
            f"127.0.0.1:{port}",
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with wasmtube.Client(f"127.0.0.1:{port}", timeout=5) as client:
            wait_until(lambda: is_serving(client.target), timeout=20, what="the daemon to serve")
            assert client.call("echoer", "echo", {"args": "up"}) == {"args": "up"}
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
    finally:
        daemon.kill()
        output = daemon.communicate()[0]
    assert "module echoer loaded" in output
    # The start-up line says where the API and the metrics are.
    assert f"on 127.0.0.1:{port}, metrics on http://127.0.0.1:{metrics_port}/metrics" in output


def test_serve_with_no_arguments_serves_the_bundled_examples() -> None:
    # The README's first command: defaults only, callable at once. It listens
    # on the default ports, so another process on them would answer in its
    # place: refuse to run rather than pass against someone else's daemon.
    for port in (50051, 9464):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(
                    f"another process listens on 127.0.0.1:{port}, a default port of "
                    f"`wasmtube serve`: stop it to run this test",
                    pytrace=False,
                )
    daemon = subprocess.Popen(
        [*WASMTUBE, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        with wasmtube.Client(timeout=5) as client:
            wait_until(lambda: is_serving(client.target) or daemon.poll() is not None, timeout=20)
            assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
            assert client.call("wasm_test", "echo", {"args": "Hello World!"}) == {
                "args": "Hello World!"
            }
        import urllib.request

        with urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5) as page:
            assert b"wasmtube_calls_total" in page.read()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
    # The daemon that answered was this one: it drained and exited cleanly.
    assert daemon.returncode == 0, daemon.stderr.read() if daemon.stderr else ""


def test_serve_refuses_a_bad_option() -> None:
    done = run("serve", "--listen", "nonsense")
    assert done.returncode == 2
    assert "listen must be host:port" in done.stderr


def test_serve_reports_a_missing_directory(tmp_path: Path) -> None:
    done = run(
        "serve",
        "--modules",
        str(tmp_path / "absent"),
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
    )
    assert done.returncode == 1
    assert "does not exist" in done.stderr


@pytest.mark.parametrize(
    "blocked", [("wasmtime", "watchdog", "prometheus_client", "numpy", "PIL", "wasmtube_server")]
)
def test_client_imports_without_the_daemon_dependencies(blocked: tuple[str, ...]) -> None:
    # `pip install wasmtube` brings none of these: the client must not need them.
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import wasmtube, wasmtube.cli, wasmtube.v1.wasmtube_pb2_grpc\n"
        "print(wasmtube.Client.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Client"


def test_client_dependencies_exclude_the_daemon() -> None:
    import tomllib

    from conftest import ROOT

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    for heavy in ("wasmtime", "watchdog", "prometheus", "numpy", "pillow"):
        assert heavy not in base.lower()
    assert any("wasmtime" in d for d in project["optional-dependencies"]["server"])


def test_a_taken_metrics_port_names_the_address_and_the_option(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(
            "serve",
            "--modules",
            str(tmp_path),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            f"127.0.0.1:{port}",
        )
    assert done.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "--metrics-listen" in done.stderr
    assert "Traceback" not in done.stderr


def test_nothing_listening_says_to_start_a_daemon() -> None:
    (closed,) = free_ports(1)
    done = run("call", "wasm_test", "echo", "{}", "--target", f"127.0.0.1:{closed}")
    assert done.returncode == 1
    assert "UNAVAILABLE" in done.stderr
    assert "start one with `wasmtube serve`" in done.stderr
