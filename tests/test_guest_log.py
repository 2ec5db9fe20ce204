"""Guests log with wasmtube.log: lines reach the daemon's log with module,
function and call id, at the guest's level, rate-limited per module."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.guests import CHATTY

from conftest import RunningDaemon, deploy


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


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flooding_guest_is_rate_limited_and_the_drops_are_counted(
    chatty: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FrozenClock()
    chatty.daemon.runtime.host.clock = clock
    with caplog.at_level(logging.INFO, logger="wasmtube_server"):
        chatty.call("chatty", "flood")  # 50 lines at once; 10 a second allowed
        assert len(guest_lines(caplog)) == 10
        assert chatty.metric("wasmtube_guest_log_lines_dropped_total", module="chatty") == 40
        caplog.clear()
        clock.now += 0.3  # at 10 lines a second, room for 3 more
        chatty.call("chatty", "say")
    messages = [r.getMessage() for r in guest_lines(caplog)]
    assert messages == [
        "module chatty logged too fast: 40 lines dropped",
        messages[-1],
    ]
    assert messages[-1].endswith("hello from the guest")


def test_a_message_outside_memory_is_said_so(
    chatty: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="wasmtube_server"):
        assert chatty.call("chatty", "outside").json == "{}"
    (line,) = guest_lines(caplog)
    assert "lies outside linear memory" in line.getMessage()
