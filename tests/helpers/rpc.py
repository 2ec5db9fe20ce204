"""Calls that must fail."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

__all__ = ["rpc_error"]


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    """The error `call` ends with; fails the test if it returns."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value
