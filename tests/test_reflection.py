"""Server reflection: a generic tool, knowing nothing of wasmtube, can list the
services, fetch the schema, and call Call with messages it builds itself."""

from __future__ import annotations

import json

from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from conftest import RunningDaemon


def test_reflection_lists_and_describes_the_service(guest_daemon: RunningDaemon) -> None:
    database = ProtoReflectionDescriptorDatabase(guest_daemon.channel)
    services = set(database.get_services())
    assert {"wasmtube.v1.Wasmtube", "grpc.health.v1.Health"} <= services

    # Build the request type from the server's own description, as grpcurl does.
    pool = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName("wasmtube.v1.Wasmtube")
    call = service.methods_by_name["Call"]
    request_class = message_factory.GetMessageClass(call.input_type)
    response_class = message_factory.GetMessageClass(call.output_type)
    request = request_class(module="wasm_test", function="echo", json='{"args":"reflected"}')

    invoke = guest_daemon.channel.unary_unary(
        f"/{service.full_name}/{call.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    response = invoke(request, timeout=5)
    assert json.loads(response.json) == {"args": "reflected"}
    assert set(service.methods_by_name) >= {"Call", "ListModules"}
