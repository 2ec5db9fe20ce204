"""The caps bound the whole instance: every table and memory, and how many of
them there are. A guest asking for more gets -1 from table.grow, a module
that starts beyond a cap fails to load naming the flag, and a module needing
a proposal wasmtube turns off fails to load naming it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from helpers.rpc import rpc_error
from wat_text import PARSE, PRINT

from conftest import RunningDaemon, deploy, wat

MIB = 1024 * 1024
DEFAULT_TABLE_CAP = 65536

# Seed-ABI functions that grow a table by the decimal number they get as
# input (4294967295 is -1 as an i32, which table.grow reads as 2^32 - 1).
# `table` is exported, so the host can see its size; `hidden` is not.
TABLES = wat(f"""
(module
  (memory (export "memory") 1)
  (table $t (export "table") 1 funcref)
  (table $hidden 1 funcref)
  {PARSE}
  {PRINT}
  (func (export "grow") (param $p i32) (param $n i32) (result i32)
    (call $print (local.get $p)
      (table.grow $t (ref.null func) (call $parse (local.get $p) (local.get $n)))))
  (func (export "grow_hidden") (param $p i32) (param $n i32) (result i32)
    (call $print (local.get $p)
      (table.grow $hidden (ref.null func) (call $parse (local.get $p) (local.get $n)))))
  (func (export "grow_or_trap") (param $p i32) (param $n i32) (result i32)
    (if (i32.eq (table.grow $t (ref.null func) (call $parse (local.get $p) (local.get $n)))
                (i32.const -1))
      (then unreachable))
    (call $print (local.get $p) (table.size $t)))
  (func (export "grow_in_steps_then_trap") (param $p i32) (param $n i32) (result i32)
    ;; Like a guest whose table allocator fails: grow until refused, then abort.
    (loop $l (br_if $l (i32.ne (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1))))
    unreachable)
  (func (export "grow_hidden_in_steps_then_trap") (param $p i32) (param $n i32) (result i32)
    (loop $l
      (br_if $l (i32.ne (table.grow $hidden (ref.null func) (i32.const 1000)) (i32.const -1))))
    unreachable)
  (func (export "size") (param $p i32) (param $n i32) (result i32)
    (call $print (local.get $p) (table.size $t))))
""")


@pytest.fixture
def start_tables(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path
) -> Callable[..., RunningDaemon]:
    def start(**options: object) -> RunningDaemon:
        deploy(modules_dir, "tables", TABLES)
        # One instance, so consecutive calls land on the same one unless it is dropped.
        options.setdefault("module_concurrency", 1)
        options.setdefault("max_idle_instances", 1)
        return start_daemon(modules_dir, **options)

    return start


def load_error(daemon: RunningDaemon, name: str) -> str:
    """ListModules' last_error for `name`, without the path of its file."""
    error = daemon.modules()[name].last_error
    return error.partition(f"{name}.wasm: ")[2] if error else ""


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.parametrize(
    "elements", [100_000_000, DEFAULT_TABLE_CAP, 2**31 - 1, 4294967295], ids=str
)
def test_a_table_grow_past_the_cap_is_refused_and_the_table_stays(
    start_tables: Callable[..., RunningDaemon], elements: int
) -> None:
    daemon = start_tables()
    before = _rss()
    # The table has 1 element: growing by `elements` would pass the cap.
    assert daemon.call("tables", "grow", str(elements)).json == "-1"
    assert daemon.call("tables", "grow_hidden", str(elements)).json == "-1"
    # The same (kept) instance: its table is as it was, and no memory was taken.
    assert daemon.call("tables", "size").json == "1"
    assert _rss() - before < 64 * MIB


@pytest.mark.parametrize("cap", [0, 1, 1000, DEFAULT_TABLE_CAP, 1_000_000], ids=str)
def test_a_table_grows_up_to_the_cap_and_no_further(
    start_tables: Callable[..., RunningDaemon], modules_dir: Path, cap: int
) -> None:
    if cap == 0:
        # No table may have an element: a module with one cannot start.
        daemon = start_tables(max_table_elements=0)
        error = load_error(daemon, "tables")
        assert "a table starts with 1 element, more than the 0 a table may hold" in error
        assert "(--max-table-elements)" in error
        return
    daemon = start_tables(max_table_elements=cap)
    # table.grow answers the old size; growing to exactly the cap works.
    assert daemon.call("tables", "grow", str(cap - 1)).json == "1"
    assert daemon.call("tables", "size").json == str(cap)
    assert daemon.call("tables", "grow", "1").json == "-1"
    assert daemon.call("tables", "grow_hidden", str(cap)).json == "-1"
    assert daemon.call("tables", "grow_hidden", str(cap - 1)).json == "1"


def test_growth_adds_up_against_the_cap(start_tables: Callable[..., RunningDaemon]) -> None:
    daemon = start_tables()
    assert daemon.call("tables", "grow", "40000").json == "1"
    assert daemon.call("tables", "grow", "40000").json == "-1"
    assert daemon.call("tables", "grow", "25535").json == "40001"
    assert daemon.call("tables", "size").json == str(DEFAULT_TABLE_CAP)


def test_a_table_grow_to_the_cap_ends_well_before_the_deadline(
    start_tables: Callable[..., RunningDaemon],
) -> None:
    # One table.grow is one instruction, which no epoch check can interrupt:
    # the cap is what keeps it short.
    daemon = start_tables(call_timeout=3)
    started = time.monotonic()
    assert daemon.call("tables", "grow", str(DEFAULT_TABLE_CAP - 1)).json == "1"
    assert daemon.call("tables", "grow", "100000000").json == "-1"
    assert time.monotonic() - started < 3


def test_a_trap_after_an_exported_table_grew_to_the_cap_is_out_of_memory(
    start_tables: Callable[..., RunningDaemon],
) -> None:
    daemon = start_tables()
    error = rpc_error(lambda: daemon.call("tables", "grow_in_steps_then_trap"))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "'grow_in_steps_then_trap' ran out of table space" in error.details()
    assert f"grew to 65001 elements of the {DEFAULT_TABLE_CAP} cap" in error.details()
    assert "(--max-table-elements)" in error.details()
    assert (
        daemon.metric(
            "wasmtube_traps_total",
            module="tables",
            function="grow_in_steps_then_trap",
            reason="table",
        )
        == 1
    )
    # The instance was dropped: a new one has a table of 1 element.
    assert daemon.call("tables", "size").json == "1"


def test_a_trap_after_a_refused_grow_the_host_cannot_see_is_the_trap(
    start_tables: Callable[..., RunningDaemon],
) -> None:
    """The host sees the sizes of exported tables only, and a table that one
    huge grow left unchanged says nothing: those traps are reported as what
    they are."""
    daemon = start_tables()
    for function, argument in [
        ("grow_hidden_in_steps_then_trap", "{}"),
        ("grow_or_trap", "100000000"),
    ]:
        error = rpc_error(lambda: daemon.call("tables", function, argument))  # noqa: B023
        assert error.code() == grpc.StatusCode.INTERNAL
        assert f"function {function!r} trapped (unreachable)" in error.details()
        assert (
            daemon.metric(
                "wasmtube_traps_total", module="tables", function=function, reason="unreachable"
            )
            == 1
        )
    assert daemon.call("tables", "grow_or_trap", "9").json == "10"


@pytest.mark.parametrize(
    ("cap", "initial"), [(DEFAULT_TABLE_CAP, DEFAULT_TABLE_CAP + 1), (1000, 1001), (1000, 10**8)]
)
def test_a_table_that_starts_above_the_cap_fails_to_load(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, cap: int, initial: int
) -> None:
    deploy(
        modules_dir,
        "big_table",
        wat(f'(module (memory (export "memory") 1) (table {initial} funcref))'),
    )
    deploy(
        modules_dir, "at_cap", wat(f'(module (memory (export "memory") 1) (table {cap} funcref))')
    )
    daemon = start_daemon(modules_dir, max_table_elements=cap)
    assert load_error(daemon, "big_table") == (
        f"cannot be instantiated: a table starts with {initial} elements, "
        f"more than the {cap} a table may hold (--max-table-elements)"
    )
    assert load_error(daemon, "at_cap") == ""


@pytest.mark.parametrize(("tables", "loads"), [(8, True), (9, False), (50, False)])
def test_an_instance_has_at_most_eight_tables(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, tables: int, loads: bool
) -> None:
    deploy(
        modules_dir,
        "many",
        wat('(module (memory (export "memory") 1) ' + "(table 1 funcref) " * tables + ")"),
    )
    error = load_error(start_daemon(modules_dir), "many")
    if loads:
        assert error == ""
    else:
        assert "cannot be instantiated: it has more than the 8 tables an instance may have" in error
        assert "table count too high" in error


@pytest.mark.parametrize(
    ("pages", "cap", "words"),
    [
        (200, 4 * MIB, "starts at 200 pages (12.5 MiB), more than the 4.0 MiB cap"),
        (4097, 256 * MIB, "starts at 4097 pages (256.1 MiB), more than the 256.0 MiB cap"),
    ],
)
def test_a_memory_that_starts_above_the_cap_fails_to_load_naming_the_flag(
    start_daemon: Callable[..., RunningDaemon], modules_dir: Path, pages: int, cap: int, words: str
) -> None:
    deploy(modules_dir, "huge", wat(f'(module (memory (export "memory") {pages}))'))
    error = load_error(start_daemon(modules_dir, max_memory=cap), "huge")
    assert error.startswith("cannot be instantiated: its linear memory " + words)
    assert "(--max-memory, or max_memory in its settings file)" in error


@pytest.mark.parametrize(
    ("module", "cause", "why"),
    [
        (
            '(module (memory (export "memory") 1) (memory 1))',
            "multiple memories (at offset",
            "wasmtube gives an instance one linear memory, the one it exports as 'memory'; "
            "the multi-memory proposal is off",
        ),
        (
            '(module (memory (export "memory") 1) ' + "(memory 1) " * 100 + ")",
            "multiple memories (at offset",
            "the multi-memory proposal is off",
        ),
        (
            '(module (memory (export "memory") i64 1))',
            "memory64 must be enabled for 64-bit memories",
            "the calling conventions pass 32-bit pointers; the memory64 proposal is off",
        ),
        (
            '(module (memory (export "memory") 1 1 shared))',
            "threads must be enabled for shared memories",
            "shared memories and atomics are off (the threads proposal)",
        ),
        (
            '(module (memory (export "memory") 1)'
            " (func (result i32) (i32.atomic.rmw.add (i32.const 0) (i32.const 1))))",
            "threads support is not enabled",
            "shared memories and atomics are off (the threads proposal)",
        ),
        (
            '(module (memory (export "memory") 1) (type (struct (field i32))))',
            "struct indexed types not supported without the gc feature",
            "the GC proposal is off",
        ),
        (
            '(module (memory (export "memory") 1)'
            " (func (result i32) (i31.get_s (ref.i31 (i32.const 1)))))",
            "gc support is not enabled",
            "the GC proposal is off",
        ),
    ],
    ids=["two-memories", "101-memories", "memory64", "shared-memory", "atomics", "gc", "i31"],
)
def test_a_module_needing_a_proposal_that_is_off_fails_to_load_saying_so(
    start_daemon: Callable[..., RunningDaemon],
    modules_dir: Path,
    module: str,
    cause: str,
    why: str,
) -> None:
    deploy(modules_dir, "m", wat(module))
    deploy(modules_dir, "ok", wat('(module (memory (export "memory") 1))'))
    daemon = start_daemon(modules_dir)
    error = load_error(daemon, "m")
    assert error.startswith("does not compile: ")
    assert cause in error
    assert why in error
    assert daemon.modules()["ok"].last_error == ""
