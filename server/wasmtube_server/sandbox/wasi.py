"""The WASI preview 1 functions wasmtube defines itself, over wasmtime's own.

A host function runs to its end whatever the epoch says: no deadline can stop
it. wasmtime's WASI takes time that grows with what the guest asks for in a
few functions: poll_oneoff sleeps as long as a clock subscription says,
random_get fills up to 64 MiB (~0.4 s), and the functions taking an iovec
array or a path walk it before looking at the descriptor (16 Mi iovecs take
~0.12 s, a 60 MiB path ~0.07 s). Those are replaced here by functions whose
time is bounded:

- poll_oneoff honours clock subscriptions but never waits past the call's
  deadline (CallState.deadline), nor once the Runtime interrupts the
  calls running (Interrupts: shutdown, or a drain's grace running out);
- random_get fills in chunks and stops at the deadline or an interrupt;
- fd_read, fd_write, fd_pread and fd_pwrite take at most IOV_MAX iovecs, as
  POSIX readv/writev do, and never copy: nothing is ever read or kept;
- path_open answers EBADF at once: no directory is ever open.

A function that stops at the deadline marks the instance `overran` and
returns EINTR: the call then ends DEADLINE_EXCEEDED whatever the guest does
next (the next epoch check interrupts it, and abi/common.invoke reports a
timeout even if it returns first).

They describe the environment runtime.py configures, as wasmtime's would:
stdin is empty, stdout and stderr discard what they get, and there are no
other descriptors. A pointer outside linear memory gets EFAULT, as from a
POSIX call. During instantiation (a start function) no call is running, so
these answer ENOSYS.

Like every host function, these must never raise: an exception would become
an anonymous trap.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import threading
import time
from collections.abc import Callable

import wasmtime

from .host import Reporting

__all__ = ["IOV_MAX", "MAX_SUBSCRIPTIONS", "Interrupts", "WasiShim"]

log = logging.getLogger(__name__)

WASI_MODULE = "wasi_snapshot_preview1"
# Iovecs one read or write may take, as Linux's IOV_MAX: past it POSIX
# readv/writev fail with EINVAL, and so do these.
IOV_MAX = 1024
# Subscriptions one poll_oneoff may take: each is parsed in Python, so the
# count bounds the time a call takes (~1 ms at this many).
MAX_SUBSCRIPTIONS = 1024
# Bytes random_get fills between deadline checks (~4 ms of os.urandom).
RANDOM_CHUNK = 1 << 20
# The largest count a read or write reports: wasi-libc turns it into a
# 32-bit ssize_t, which must stay positive.
_MAX_COUNT = 0x7FFFFFFF
_U32 = 0xFFFFFFFF

# errno values of wasi_snapshot_preview1.
ERRNO_SUCCESS = 0
ERRNO_BADF = 8
ERRNO_FAULT = 21
ERRNO_INTR = 27
ERRNO_INVAL = 28
ERRNO_IO = 29
ERRNO_NOSYS = 52
ERRNO_SPIPE = 70

_STDIN, _STDOUT, _STDERR = 0, 1, 2
_CLOCK_REALTIME, _CLOCK_MONOTONIC = 0, 1
_SUBSCRIPTION_CLOCK_ABSTIME = 1
_EVENTTYPE_CLOCK, _EVENTTYPE_FD_READ, _EVENTTYPE_FD_WRITE = 0, 1, 2

# subscription (48 bytes): userdata u64 @0, tag u8 @8, then at 16 either
# clock {id u32 @16, timeout u64 @24, precision u64 @32, flags u16 @40} or
# fd_readwrite {fd u32 @16}.
_SUBSCRIPTION = 48
_SUBSCRIPTION_HEAD = struct.Struct("<QB")
_CLOCK = struct.Struct("<I4xQ8xH")
_FD = struct.Struct("<I")
# event (32 bytes): userdata u64 @0, error u16 @8, type u8 @10, then
# fd_readwrite {nbytes u64 @16, flags u16 @24}.
_EVENT = struct.Struct("<QHB5xQH6x")
_IOVEC = struct.Struct("<II")
_U32_FIELD = struct.Struct("<I")


Lookup = Callable[[wasmtime.Caller], Reporting | None]


class Interrupts:
    """When the Runtime last interrupted every running call, and the wake-up
    of host functions waiting meanwhile.

    The epoch stops guest code; this stops the host functions here, which no
    epoch check reaches: a call armed before the last interrupt must not wait
    any longer, whether it was waiting then or starts to wait afterwards.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._last = -math.inf

    def interrupt(self) -> None:
        """End the waits of every call armed until now."""
        with self._changed:
            self._last = time.monotonic()
            self._changed.notify_all()

    def close(self) -> None:
        """End every wait, now and from now on (the Runtime stops)."""
        with self._changed:
            self._last = math.inf
            self._changed.notify_all()

    def interrupted(self, armed_at: float) -> bool:
        """Whether a call armed at `armed_at` was interrupted since."""
        return self._last >= armed_at

    def wait_until(self, until: float, armed_at: float) -> None:
        """Wait until time.monotonic() `until`, or until a call armed at
        `armed_at` is interrupted, whichever comes first."""
        with self._changed:
            while self._last < armed_at and (left := until - time.monotonic()) > 0:
                self._changed.wait(left)


def _types(*names: str) -> list[wasmtime.ValType]:
    return [wasmtime.ValType.i64() if name == "i64" else wasmtime.ValType.i32() for name in names]


class WasiShim:
    """Bounded replacements of a few wasi_snapshot_preview1 functions,
    defined on a Linker over wasmtime's (define_wasi first)."""

    def __init__(self, lookup: Lookup, interrupts: Interrupts) -> None:
        # The state of the call a caller's instance is running, or None.
        self._lookup = lookup
        self._interrupts = interrupts

    def define(self, linker: wasmtime.Linker) -> None:
        functions: list[tuple[str, list[str], Callable[..., int]]] = [
            ("poll_oneoff", ["i32"] * 4, self._poll_oneoff),
            ("random_get", ["i32"] * 2, self._random_get),
            ("fd_read", ["i32"] * 4, self._fd_read),
            ("fd_write", ["i32"] * 4, self._fd_write),
            ("fd_pread", ["i32", "i32", "i32", "i64", "i32"], self._fd_pread),
            ("fd_pwrite", ["i32", "i32", "i32", "i64", "i32"], self._fd_pwrite),
            (
                "path_open",
                ["i32", "i32", "i32", "i32", "i32", "i64", "i64", "i32", "i32"],
                self._path_open,
            ),
        ]
        linker.allow_shadowing = True
        try:
            for name, params, function in functions:
                func_type = wasmtime.FuncType(_types(*params), _types("i32"))
                linker.define_func(WASI_MODULE, name, func_type, _guarded(name, function), True)
        finally:
            linker.allow_shadowing = False

    def _poll_oneoff(
        self, caller: wasmtime.Caller, subscriptions: int, events: int, count: int, written: int
    ) -> int:
        instance = self._lookup(caller)
        if instance is None:
            return ERRNO_NOSYS
        state = instance.current
        subscriptions, events, count, written = (
            subscriptions & _U32,
            events & _U32,
            count & _U32,
            written & _U32,
        )
        if count == 0 or count > MAX_SUBSCRIPTIONS:
            # Zero would wait forever; wasmtime refuses it too.
            return ERRNO_INVAL
        memory = instance.memory
        if not (
            memory.fits(subscriptions, count * _SUBSCRIPTION)
            and memory.fits(events, count * _EVENT.size)
            and memory.fits(written, 4)
        ):
            return ERRNO_FAULT
        table = bytes(memory.view(subscriptions, count * _SUBSCRIPTION))
        now = time.monotonic()
        # (userdata, event type, time.monotonic() it fires at), in the
        # subscriptions' order, which the events keep.
        waiting: list[tuple[int, int, float]] = []
        for index in range(count):
            at = index * _SUBSCRIPTION
            userdata, tag = _SUBSCRIPTION_HEAD.unpack_from(table, at)
            if tag == _EVENTTYPE_CLOCK:
                clock, timeout, flags = _CLOCK.unpack_from(table, at + 16)
                fires = _fires_at(instance.wasi_clock_origin, clock, timeout, flags, now)
                if fires is None:
                    return ERRNO_INVAL
                waiting.append((userdata, tag, fires))
            elif tag in (_EVENTTYPE_FD_READ, _EVENTTYPE_FD_WRITE):
                (fd,) = _FD.unpack_from(table, at + 16)
                readable = tag == _EVENTTYPE_FD_READ and fd == _STDIN
                writable = tag == _EVENTTYPE_FD_WRITE and fd in (_STDOUT, _STDERR)
                if not (readable or writable):
                    return ERRNO_BADF
                # Empty stdin is at its end and discarded output takes
                # anything: both are ready at once.
                waiting.append((userdata, tag, now))
            else:
                return ERRNO_INVAL
        wake = min(fires for *_, fires in waiting)
        if wake > now:
            self._interrupts.wait_until(min(wake, state.deadline), state.armed_at)
            now = time.monotonic()
            if now < wake:
                # The deadline or an interrupt came first.
                state.overran = True
                return ERRNO_INTR
        view = memory.view(events, count * _EVENT.size)
        ready = 0
        for userdata, kind, fires in waiting:
            if fires <= now:
                nbytes = 0 if kind == _EVENTTYPE_CLOCK else 1
                _EVENT.pack_into(view, ready * _EVENT.size, userdata, 0, kind, nbytes, 0)
                ready += 1
        _U32_FIELD.pack_into(memory.view(written, 4), 0, ready)
        return ERRNO_SUCCESS

    def _random_get(self, caller: wasmtime.Caller, buffer: int, length: int) -> int:
        instance = self._lookup(caller)
        if instance is None:
            return ERRNO_NOSYS
        state = instance.current
        buffer, length = buffer & _U32, length & _U32
        if not instance.memory.fits(buffer, length):
            return ERRNO_FAULT
        view = instance.memory.view(buffer, length)
        for start in range(0, length, RANDOM_CHUNK):
            if time.monotonic() >= state.deadline or self._interrupts.interrupted(state.armed_at):
                state.overran = True
                return ERRNO_INTR
            end = min(start + RANDOM_CHUNK, length)
            view[start:end] = os.urandom(end - start)
        return ERRNO_SUCCESS

    def _fd_read(self, caller: wasmtime.Caller, fd: int, iovecs: int, count: int, done: int) -> int:
        if fd != _STDIN:
            return ERRNO_BADF
        # Empty stdin: every read is at its end and reads 0 bytes.
        return self._transfer(caller, iovecs, count, done, 0)

    def _fd_write(
        self, caller: wasmtime.Caller, fd: int, iovecs: int, count: int, done: int
    ) -> int:
        if fd not in (_STDOUT, _STDERR):
            return ERRNO_BADF
        return self._transfer(caller, iovecs, count, done, _MAX_COUNT)

    def _transfer(
        self, caller: wasmtime.Caller, iovecs: int, count: int, done: int, most: int
    ) -> int:
        """Check the iovecs and report up to `most` of their bytes done."""
        instance = self._lookup(caller)
        if instance is None:
            return ERRNO_NOSYS
        iovecs, count, done = iovecs & _U32, count & _U32, done & _U32
        if count > IOV_MAX:
            return ERRNO_INVAL
        memory = instance.memory
        if not (memory.fits(iovecs, count * _IOVEC.size) and memory.fits(done, 4)):
            return ERRNO_FAULT
        total = 0
        for buffer, length in _IOVEC.iter_unpack(memory.view(iovecs, count * _IOVEC.size)):
            if not memory.fits(buffer, length):
                return ERRNO_FAULT
            total += length
        _U32_FIELD.pack_into(memory.view(done, 4), 0, min(total, most))
        return ERRNO_SUCCESS

    def _fd_pread(
        self, caller: wasmtime.Caller, fd: int, iovecs: int, count: int, offset: int, done: int
    ) -> int:
        # Stdin is a stream, not a file: it has no offsets.
        return ERRNO_SPIPE if fd == _STDIN else ERRNO_BADF

    def _fd_pwrite(
        self, caller: wasmtime.Caller, fd: int, iovecs: int, count: int, offset: int, done: int
    ) -> int:
        return ERRNO_SPIPE if fd in (_STDOUT, _STDERR) else ERRNO_BADF

    def _path_open(self, caller: wasmtime.Caller, *arguments: int) -> int:
        # No directory is preopened, so no descriptor can name one.
        return ERRNO_BADF


def _fires_at(clock_origin: int, clock: int, timeout: int, flags: int, now: float) -> float | None:
    """The time.monotonic() a clock subscription fires at; None for a clock
    poll_oneoff does not offer (process and thread CPU time, as wasmtime)."""
    if not flags & _SUBSCRIPTION_CLOCK_ABSTIME:
        if clock not in (_CLOCK_REALTIME, _CLOCK_MONOTONIC):
            return None
        return now + timeout / 1e9
    if clock == _CLOCK_MONOTONIC:
        # The guest's monotonic clock counts from wasi_clock_origin or a
        # little before, so this never fires before the guest's time.
        left = timeout - (time.monotonic_ns() - clock_origin)
    elif clock == _CLOCK_REALTIME:
        left = timeout - time.time_ns()
    else:
        return None
    return now + max(0, left) / 1e9


def _guarded(name: str, function: Callable[..., int]) -> Callable[..., int]:
    """`function`, answering EIO instead of raising on a bug of ours."""

    def guarded(caller: wasmtime.Caller, *arguments: int) -> int:
        try:
            return function(caller, *arguments)
        except Exception:
            log.exception("WASI %s%s failed", name, arguments)
            return ERRNO_IO

    return guarded
