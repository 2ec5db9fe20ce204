"""The gRPC face of the daemon: requests in, responses and statuses out.

service.py is the Wasmtube servicer; requests.py and responses.py turn
protobuf messages into calls and back (wire.py parses large images in
place); health.py, interceptors.py and listeners.py are the server's other
parts.
"""
