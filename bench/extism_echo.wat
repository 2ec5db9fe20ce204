;; An Extism echo plug-in: its output is its input, with no copy in the guest.
;;
;; Extism keeps a call's input in the memory of its kernel, a wasm module the
;; runtime links to every plug-in as the import module "extism:host/env".
;; input_offset and input_length say where that input is; output_set names a
;; block of kernel memory as the output, so pointing it at the input echoes.
;; The kernel of extism-sys 1.41 exports these as
;;   input_offset () -> i64, input_length () -> i64, output_set (i64, i64)
;; An exported function takes nothing and returns an i32 status, 0 for success.
;;
;; Used by bench/echo_inprocess.py, which assembles it with wasmtime.wat2wasm.
(module
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "echo") (result i32)
    (call $output_set (call $input_offset) (call $input_length))
    (i32.const 0)))
