;; Module `hello`: the example that deploy/base ships in its ConfigMap.
;; Seed ABI (see the README): the host writes the JSON input at `offset`,
;; calls the function, and reads `return value` bytes of JSON from `offset`.
;;
;; Rebuild hello.wasm after editing (tests/test_manifests.py checks it):
;;   python -c "import wasmtime, pathlib; p = pathlib.Path('deploy/base/modules');
;;   (p / 'hello.wasm').write_bytes(wasmtime.wat2wasm((p / 'hello.wat').read_text()))"
(module
  (memory (export "memory") 1)
  ;; A passive segment lives outside linear memory, so no input can overwrite it.
  (data $greeting "{\"hello\":\"wasmtube\"}")

  ;; hello: answers {"hello":"wasmtube"} whatever the input.
  (func (export "hello") (param $offset i32) (param $length i32) (result i32)
    (memory.init $greeting (local.get $offset) (i32.const 0) (i32.const 20))
    (i32.const 20))

  ;; echo: answers its input unchanged.
  (func (export "echo") (param $offset i32) (param $length i32) (result i32)
    (local.get $length)))
