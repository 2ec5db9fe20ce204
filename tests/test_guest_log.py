"""Guests log with wasmtube.log: lines reach the daemon's log with module,
function and call id, at the guest's level, rate-limited per module."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import RunningDaemon, deploy, wat

CHATTY = wat("""
(module
  (import "wasmtube" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 2048) "hello from the guest")
  (func $answer (param $p i32) (result i32)
    (i32.store16 (local.get $p) (i32.const 0x7d7b)) (i32.const 2))
  (func (export "say") (param $p i32) (param i32) (result i32)
    (call $log (i32.const 1) (i32.const 2048) (i32.const 20))
    (call $answer (local.get $p)))
  (func (export "levels") (param $p i32) (param i32) (result i32)
    (call $log (i32.const 0) (i32.const 2048) (i32.const 5))
    (call $log (i32.const 2) (i32.const 2048) (i32.const 5))
    (call $log (i32.const 3) (i32.const 2048) (i32.const 5))
    (call $log (i32.const 7) (i32.const 2048) (i32.const 5))
    (call $answer (local.get $p)))
  (func (export "flood") (param $p i32) (param i32) (result i32) (local $i i32)
    (loop $more
      (call $log (i32.const 1) (i32.const 2048) (i32.const 5))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 50))))
    (call $answer (local.get $p)))
  (func (export "outside") (param $p i32) (param i32) (result i32)
    (call $log (i32.const 1) (i32.const 0x7ffffff0) (i32.const 30))
    (call $answer (local.get $p))))
""")


@pytest.fixture
def chatty(start_daemon: Callable[..., RunningDaemon], modules_dir: Path) -> RunningDaemon:
    deploy(modules_dir, "chatty", CHATTY)
    return start_daemon(modules_dir, guest_log_rate=10)


def guest_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "wasmtube_server.guest"]


def test_a_guest_line_carries_module_function_and_call_id(
    chatty: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="wasmtube_server"):
        assert chatty.call("chatty", "say").json == "{}"
    (line,) = guest_lines(caplog)
    assert line.levelno == logging.INFO
    assert line.getMessage().startswith("chatty.say [call ")
    assert line.getMessage().endswith("] hello from the guest")
    guest = line.__dict__["guest"]
    assert (guest["module"], guest["function"]) == ("chatty", "say")
    # The same id as the daemon's own line for the call.
    (call,) = [r.__dict__["call"] for r in caplog.records if "call" in r.__dict__]
    assert call["call_id"] == guest["call_id"]


def test_guest_levels_map_to_log_levels(
    chatty: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="wasmtube_server"):
        chatty.call("chatty", "levels")
    levels = [r.levelno for r in guest_lines(caplog)]
    assert levels == [logging.DEBUG, logging.WARNING, logging.ERROR, logging.ERROR]


def test_a_flooding_guest_is_rate_limited_and_the_drops_are_counted(
    chatty: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="wasmtube_server"):
        chatty.call("chatty", "flood")  # 50 lines at once; 10 a second allowed
        kept = len(guest_lines(caplog))
        assert 10 <= kept <= 11
        dropped = chatty.metric("wasmtube_guest_log_lines_dropped_total", module="chatty")
        assert dropped == 50 - kept
        caplog.clear()
        time.sleep(0.3)  # at 10 lines a second, room for 3 more
        chatty.call("chatty", "say")
    messages = [r.getMessage() for r in guest_lines(caplog)]
    assert messages[0] == f"module chatty logged too fast: {50 - kept:.0f} lines dropped"
    assert messages[-1].endswith("hello from the guest")


def test_a_message_outside_memory_is_said_so(
    chatty: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="wasmtube_server"):
        assert chatty.call("chatty", "outside").json == "{}"
    (line,) = guest_lines(caplog)
    assert "lies outside linear memory" in line.getMessage()
