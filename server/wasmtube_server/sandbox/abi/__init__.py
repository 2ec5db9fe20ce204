"""Calling conventions: how the host passes a call's input to a guest
function and reads its output back.

conventions.py decides each export's convention from its signature at load
time; seed.py (input at a fixed offset, as the Elixir seed did) and
alloc.py (input in a buffer the guest allocates) run a call; common.py is
what both share; dispatch.py picks the convention of a call.
"""
