#!/usr/bin/env node
// Calls the wasmtube daemon from Node.js: lists its modules, calls a JSON
// function and an image function, gets an image back, streams frames through
// one CallStream, and shows what a failed call looks like.
//
//   npm ci && node client.js [TARGET]      # TARGET defaults to $WASMTUBE_TARGET or 127.0.0.1:50051
//
// Every result is printed to stdout as one JSON object per line. A call that
// fails unexpectedly prints its gRPC status code name and details to stderr
// and the script exits with status 1.
'use strict';

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const TARGET = process.argv[2] || process.env.WASMTUBE_TARGET || '127.0.0.1:50051';
// How long each call may take; the daemon also stops the guest at this deadline.
const DEADLINE_MS = Number(process.env.WASMTUBE_DEADLINE_MS ?? 5000);

// Load the API from the .proto at runtime: no generated code to keep in sync.
// The proto imports google/protobuf/timestamp.proto; proto-loader (through
// protobufjs) serves google/protobuf/* from its bundled well-known types, so
// only the directory of our own protos is needed as an include path.
const PROTO_ROOT = path.join(__dirname, '..', '..', 'proto');
const packageDefinition = protoLoader.loadSync('wasmtube/v1/wasmtube.proto', {
  includeDirs: [PROTO_ROOT],
  keepCase: true, // field names as in the .proto: module_sha256, not moduleSha256
  longs: String, // uint64 (generation, size_bytes) as decimal strings: no precision loss
  enums: String, // enum values by name: "CALLING_CONVENTION_SEED_JSON"
  defaults: true, // unset scalars as their defaults ("" and "0"), unset messages as null
  oneofs: true, // CallRequest.input and CallResponse.output say which of json / image is set
});
const { Wasmtube } = grpc.loadPackageDefinition(packageDefinition).wasmtube.v1;

// The daemon accepts messages up to 64 MiB by default (--max-message-size);
// grpc-js receives at most 4 MiB unless told otherwise.
const client = new Wasmtube(TARGET, grpc.credentials.createInsecure(), {
  'grpc.max_send_message_length': 64 << 20,
  'grpc.max_receive_message_length': 64 << 20,
});

/** Calls one unary method with a deadline; resolves with its response. */
function unary(method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + DEADLINE_MS);
    client[method](request, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

/** A google.protobuf.Timestamp ({seconds: "…", nanos}) as an ISO 8601 string, or null if unset. */
function isoTime(timestamp) {
  if (!timestamp) return null;
  return new Date(Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1e6)).toISOString();
}

/** The gRPC status of a failed call, e.g. {code: "NOT_FOUND", details: "module 'x' is not loaded; …"}. */
function statusOf(err) {
  return { code: grpc.status[err.code] ?? String(err.code), details: err.details };
}

function print(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

/** A response's output: the parsed JSON, or a summary of the image it carries. */
function outputOf(response) {
  if (response.output === 'image') {
    const { data, width, height, format } = response.image;
    return { image: { width, height, format, bytes: data.length, first: [...data.subarray(0, 4)] } };
  }
  return { result: JSON.parse(response.json) };
}

/** Calls module.function with a JSON document or an image; prints and returns the output. */
async function call(module, fn, input) {
  const response = await unary('Call', { module, function: fn, ...input });
  const output = outputOf(response);
  print({
    rpc: 'Call',
    module,
    function: fn,
    ...output,
    module_sha256: response.module_sha256,
    generation: response.generation,
  });
  return output;
}

/**
 * Sends every frame over one CallStream and resolves with the outputs, in
 * order. The daemon runs the whole stream on one warm instance; only the first
 * message names the module and function.
 */
function stream(module, fn, frames) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + DEADLINE_MS);
    const call = client.CallStream({ deadline });
    const outputs = [];
    call.on('data', (response) => outputs.push(outputOf(response)));
    call.on('error', reject);
    call.on('end', () => resolve(outputs));
    frames.forEach((image, index) => {
      call.write(index === 0 ? { module, function: fn, image } : { image });
    });
    call.end();
  });
}

async function main() {
  // 1. Which modules are loaded, and what can be called?
  const { modules } = await unary('ListModules', {});
  print({
    rpc: 'ListModules',
    modules: modules.map((m) => ({
      name: m.name,
      sha256: m.sha256,
      generation: m.generation,
      size_bytes: m.size_bytes,
      loaded_at: isoTime(m.loaded_at),
      functions: m.functions.map((f) => ({
        name: f.name,
        calling_convention: f.calling_convention,
        signature: f.signature,
      })),
      last_error: m.last_error,
      last_error_at: isoTime(m.last_error_at),
    })),
  });

  // 2. A JSON call: `json` is a string holding a JSON document.
  await call('wasm_test', 'echo', { json: JSON.stringify({ args: 'Hello from Node' }) });

  // 3. An image call: raw RGB8 pixels, row-major, width*height*3 bytes.
  const width = 4;
  const height = 3;
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i += 3) {
    pixels[i] = (i / 3) * 20; // a red gradient; any pixels do for image_size
  }
  await call('wasm_test', 'image_size', { image: { data: pixels, width, height } });

  // 4. An image back: an RGBA8 image in (format set), a GRAY8 image out.
  const rgba = Buffer.alloc(width * height * 4, 200);
  await call('wasm_test', 'grayscale', {
    image: { data: rgba, width, height, format: 'PIXEL_FORMAT_RGBA8' },
  });

  // 5. Frames through one CallStream, answered in order.
  const frames = [0, 100, 255].map((value) => ({
    data: Buffer.alloc(width * height * 3, value),
    width,
    height,
  }));
  print({
    rpc: 'CallStream',
    module: 'wasm_test',
    function: 'grayscale',
    outputs: await stream('wasm_test', 'grayscale', frames),
  });

  // 6. A call that fails on purpose: each failure is a gRPC status, here
  //    NOT_FOUND. Expected errors are handled by their code; anything else
  //    propagates to the handler below.
  try {
    await call('no_such_module', 'echo', { json: '{}' });
    throw new Error('calling a missing module succeeded; expected NOT_FOUND');
  } catch (err) {
    if (err.code !== grpc.status.NOT_FOUND) throw err;
    print({ rpc: 'Call', module: 'no_such_module', function: 'echo', error: statusOf(err) });
  }
}

main()
  .catch((err) => {
    if (typeof err.code === 'number') {
      // A gRPC error: its status code name and the daemon's message.
      const { code, details } = statusOf(err);
      console.error(`wasmtube call to ${TARGET} failed: ${code}: ${details}`);
    } else {
      console.error(err);
    }
    process.exitCode = 1;
  })
  .finally(() => client.close());
