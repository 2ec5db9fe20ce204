"""WAT helpers the hostile tests' guests share: reading a decimal input and
writing decimal output, so one function can be called with many arguments.

Not a test module; the tests import it as they import conftest.
"""

from __future__ import annotations

# $parse(p, n) -> i32: the decimal digits at [p, p+n), wrapping modulo 2^32
# (so 4294967295 is -1).
PARSE = """
  (func $parse (param $p i32) (param $n i32) (result i32) (local $v i32) (local $end i32)
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $v (i32.add (i32.mul (local.get $v) (i32.const 10))
                             (i32.sub (i32.load8_u (local.get $p)) (i32.const 48))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $l)))
    (local.get $v))
"""

# $print(p, v) -> i32: signed $v in decimal at $p, returning its length
# (scratch at [p, p+64)).
PRINT = """
  (func $print (param $p i32) (param $v i32) (result i32) (local $q i32) (local $neg i32)
    (local.set $neg (i32.lt_s (local.get $v) (i32.const 0)))
    (if (local.get $neg) (then (local.set $v (i32.sub (i32.const 0) (local.get $v)))))
    (local.set $q (i32.add (local.get $p) (i32.const 64)))
    (loop $l
      (local.set $q (i32.sub (local.get $q) (i32.const 1)))
      (i32.store8 (local.get $q) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $l (local.get $v)))
    (if (local.get $neg) (then
      (local.set $q (i32.sub (local.get $q) (i32.const 1)))
      (i32.store8 (local.get $q) (i32.const 45))))
    (memory.copy (local.get $p) (local.get $q)
      (i32.sub (i32.add (local.get $p) (i32.const 64)) (local.get $q)))
    (i32.sub (i32.add (local.get $p) (i32.const 64)) (local.get $q)))
"""

# An output cursor: $begin(p) starts output at p, $put(byte) and $num(u64)
# append, $end() -> i32 returns the length written since $begin. $num uses
# [SCRATCH - 20, SCRATCH) as scratch.
SCRATCH = 16000
EMIT = f"""
  (global $start (mut i32) (i32.const 0))
  (global $out (mut i32) (i32.const 0))
  (func $begin (param $p i32) (global.set $start (local.get $p)) (global.set $out (local.get $p)))
  (func $end (result i32) (i32.sub (global.get $out) (global.get $start)))
  (func $put (param $byte i32)
    (i32.store8 (global.get $out) (local.get $byte))
    (global.set $out (i32.add (global.get $out) (i32.const 1))))
  (func $num (param $v i64) (local $q i32) (local $len i32)
    (local.set $q (i32.const {SCRATCH}))
    (loop $l
      (local.set $q (i32.sub (local.get $q) (i32.const 1)))
      (i32.store8 (local.get $q)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $l (i64.ne (local.get $v) (i64.const 0))))
    (local.set $len (i32.sub (i32.const {SCRATCH}) (local.get $q)))
    (memory.copy (global.get $out) (local.get $q) (local.get $len))
    (global.set $out (i32.add (global.get $out) (local.get $len))))
"""
