"""`python -m wasmtube_server`: the same as `wasmtube serve`."""

from .cli import serve

serve(prog_name="wasmtube-server")
