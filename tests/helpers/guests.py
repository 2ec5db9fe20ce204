"""Test guests several test files call, as WAT."""

from __future__ import annotations

from conftest import wat

__all__ = ["CHATTY", "FAILING", "IMAGES"]

# Seed ABI functions, plus one alloc-ABI function. `calls` counts every call
# of this instance, so a test can tell whether the instance was kept.
FAILING = wat("""
(module
  (import "wasmtube" "fail" (func $fail (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 2048) "width must be even")
  (func $count (global.set $calls (i32.add (global.get $calls) (i32.const 1))))
  (func (export "invalid") (param i32 i32) (result i32)
    (call $count)
    (call $fail (i32.const 3) (i32.const 2048) (i32.const 18))
    (i32.const 0))
  (func (export "code_zero") (param i32 i32) (result i32)
    (call $fail (i32.const 0) (i32.const 2048) (i32.const 18)) (i32.const 0))
  (func (export "code_99") (param i32 i32) (result i32)
    (call $fail (i32.const 99) (i32.const 2048) (i32.const 18)) (i32.const 0))
  (func (export "message_outside") (param i32 i32) (result i32)
    (call $fail (i32.const 9) (i32.const 0x7ffffff0) (i32.const 100)) (i32.const 0))
  (func (export "fail_then_trap") (param i32 i32) (result i32)
    (call $fail (i32.const 5) (i32.const 2048) (i32.const 5)) unreachable)
  (func (export "calls") (param $p i32) (param i32) (result i32)
    (call $count)
    (i32.store8 (local.get $p) (i32.add (i32.const 0x30) (global.get $calls)))
    (i32.const 1))
  (func (export "wasmtube_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "not_found") (param i32 i32) (result i64)
    (call $fail (i32.const 5) (i32.const 2048) (i32.const 5)) (i64.const 0)))
""")

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

# Alloc-ABI functions take their input at 4096 (the allocator hands out one
# fixed buffer); seed-ABI ones at the daemon's offset.
IMAGES = wat("""
(module
  (import "wasmtube" "output_image" (func $output_image (param i32 i32 i32)))
  (import "wasmtube" "fail" (func $fail (param i32 i32 i32)))
  (memory (export "memory") 4)
  (data (i32.const 64) "no")
  (func (export "wasmtube_alloc") (param i32) (result i32) (i32.const 4096))
  (func $packed (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
  (func $invert (param $ptr i32) (param $len i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (i32.store8 (i32.add (local.get $ptr) (local.get $i))
          (i32.sub (i32.const 255) (i32.load8_u (i32.add (local.get $ptr) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
  ;; Any format in, the same format out, every byte inverted, in place.
  (func (export "invert") (param $p i32) (param $n i32) (param $w i32) (param $h i32)
                          (param $f i32) (result i64)
    (call $invert (local.get $p) (local.get $n))
    (call $output_image (local.get $w) (local.get $h) (local.get $f))
    (call $packed (local.get $p) (local.get $n)))
  ;; RGB8 only: the image back unchanged.
  (func (export "same_rgb") (param $p i32) (param $n i32) (param $w i32) (param $h i32)
                            (result i64)
    (call $output_image (local.get $w) (local.get $h) (i32.const 1))
    (call $packed (local.get $p) (local.get $n)))
  ;; The format it was given, as a JSON number.
  (func (export "format_of") (param $p i32) (param i32) (param i32) (param i32)
                             (param $f i32) (result i64)
    (i32.store8 (local.get $p) (i32.add (i32.const 0x30) (local.get $f)))
    (call $packed (local.get $p) (i32.const 1)))
  ;; Seed ABI: the image back inverted, at the offset it came in.
  (func (export "seed_invert") (param $o i32) (param $n i32) (param $w i32) (param $h i32)
                               (result i32)
    (call $invert (local.get $o) (local.get $n))
    (call $output_image (local.get $w) (local.get $h) (i32.const 1))
    (local.get $n))
  ;; JSON in, a 2x1 GRAY8 image out.
  (func (export "render") (param $p i32) (param i32) (result i64)
    (i32.store16 (local.get $p) (i32.const 0xff00))
    (call $output_image (i32.const 2) (i32.const 1) (i32.const 3))
    (call $packed (local.get $p) (i32.const 2)))
  (func (export "short") (param $p i32) (param i32) (result i64)
    (call $output_image (i32.const 2) (i32.const 2) (i32.const 1))
    (call $packed (local.get $p) (i32.const 5)))
  (func (export "bad_format") (param $p i32) (param i32) (result i64)
    (call $output_image (i32.const 1) (i32.const 1) (i32.const 9))
    (call $packed (local.get $p) (i32.const 1)))
  (func (export "empty") (param $p i32) (param i32) (result i64)
    (call $output_image (i32.const 0) (i32.const 5) (i32.const 1))
    (call $packed (local.get $p) (i32.const 0)))
  ;; Declares an image, then fails on purpose: the next call must be JSON again.
  (func (export "declare_then_fail") (param i32) (param i32) (result i64)
    (call $output_image (i32.const 1) (i32.const 1) (i32.const 1))
    (call $fail (i32.const 3) (i32.const 64) (i32.const 2))
    (i64.const 0))
  (func (export "json") (param $p i32) (param i32) (result i64)
    (i32.store8 (local.get $p) (i32.const 0x37))
    (call $packed (local.get $p) (i32.const 1))))
""")
