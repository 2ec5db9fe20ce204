//! Test guest for wasmtube, speaking the seed ABI (see README.md).
//!
//! The host writes the input bytes into linear memory at `offset` (42 by
//! default) and calls a function with `(offset, len, ...)`. The function
//! writes its JSON output at the same offset, over its input, and returns
//! the output's length in bytes. Any error (bad UTF-8/JSON, missing field,
//! bad image size) panics, and with `panic = "abort"` on wasm32 that is an
//! `unreachable` trap: the seed ABI has no error convention, so a trap is
//! the only honest way to fail.

use serde::{Deserialize, Serialize};

/// `echo` input and output: only `args` survives; other fields are dropped.
#[derive(Deserialize, Serialize)]
struct EchoArgs {
    args: String,
}

/// `hello` input.
#[derive(Deserialize)]
struct HelloArgs {
    arg: String,
}

/// `hello` output.
#[derive(Serialize)]
struct Greeting {
    message: String,
}

/// `image_size` output.
#[derive(Serialize)]
struct ImageInfo {
    width: u32,
    height: u32,
}

/// An i32 from the host as an unsigned wasm32 address or length.
fn addr(x: i32) -> usize {
    x as u32 as usize
}

/// Borrow `len` bytes of linear memory starting at `offset`.
///
/// Safety: the host guarantees it wrote `len` bytes at `offset`. The
/// returned slice must not be used after `write_output` overwrites it, which
/// is why every caller parses into owned values first.
unsafe fn input<'a>(offset: i32, len: usize) -> &'a [u8] {
    core::slice::from_raw_parts(addr(offset) as *const u8, len)
}

/// Serialize `value` as compact JSON, copy it to `offset` (over the input,
/// as the seed ABI requires) and return its length for the host to read.
///
/// Safety: the input at `offset` must no longer be borrowed, and the memory
/// from `offset` must have room for the output (the host's responsibility,
/// as in the seed).
unsafe fn write_output<T: Serialize>(offset: i32, value: &T) -> i32 {
    // Serialize to a heap buffer first: serde_json needs a growable writer,
    // and only then do we know the length to return.
    let json = serde_json::to_vec(value).expect("serialize output");
    let len = i32::try_from(json.len()).expect("output length fits in i32");
    core::ptr::copy_nonoverlapping(json.as_ptr(), addr(offset) as *mut u8, json.len());
    len
}

/// `{"args": String}` -> the same object as compact JSON.
#[no_mangle]
pub unsafe extern "C" fn echo(offset: i32, len: i32) -> i32 {
    let args: EchoArgs = serde_json::from_slice(input(offset, addr(len))).expect("echo: bad input");
    write_output(offset, &args)
}

/// Raw RGB8 pixels (`width*height*3` bytes, row-major) -> `{"width","height"}`.
/// `len` is ignored, as in the seed: the size comes from width and height.
#[no_mangle]
pub unsafe extern "C" fn image_size(offset: i32, _len: i32, width: i32, height: i32) -> i32 {
    let (w, h) = (width as u32, height as u32);
    // Checked, unlike the seed whose u32 product wraps: an impossible size
    // traps here instead of silently reading the wrong number of bytes.
    let n = addr(width)
        .checked_mul(addr(height))
        .and_then(|p| p.checked_mul(3))
        .expect("image_size: width*height*3 overflows");
    let pixels = input(offset, n).to_vec();
    let img = image::RgbImage::from_raw(w, h, pixels).expect("image_size: bad buffer");
    write_output(offset, &ImageInfo { width: img.width(), height: img.height() })
}

/// `{"arg": String}` -> `{"message": "Hello, <arg>!"}`.
#[no_mangle]
pub unsafe extern "C" fn hello(offset: i32, len: i32) -> i32 {
    let args: HelloArgs = serde_json::from_slice(input(offset, addr(len))).expect("hello: bad input");
    write_output(offset, &Greeting { message: format!("Hello, {}!", args.arg) })
}
