//! The calling conventions: what the wrappers that `export!` generates do.
//!
//! Every wrapper borrows its input, turns it into the function's argument
//! (JSON, raw bytes or an image), calls the function and hands its output to
//! the host the way the ABI says. An `Err` goes to `wasmtube.fail` and the
//! wrapper returns an empty output, which the host ignores.
//!
//! Alloc ABI: the host puts the input in a buffer from [`wasmtube_alloc`]
//! and the function returns `(out_ptr << 32) | out_len`, a buffer the host
//! frees with [`wasmtube_free`]. Seed ABI: input at a fixed offset of linear
//! memory, output written over it, its length returned.

use std::alloc::Layout;
use std::sync::Once;

use serde::de::{Deserialize, DeserializeSeed};

use crate::error::Error;
use crate::host;
use crate::image::{check_size, ImageRef, PixelFormat};
use crate::output::Output;

/// An i32 from the host as the unsigned wasm32 address or length it carries.
fn addr(x: i32) -> usize {
    x as u32 as usize
}

// ---------------------------------------------------------------------------
// The allocator every module built with the kit exports. Each buffer that
// crosses the boundary, either way, is one allocation of `len` bytes with
// alignment 1, so `wasmtube_free(ptr, len)` frees inputs and outputs alike.
// ---------------------------------------------------------------------------

/// The one layout of every alloc-ABI buffer: `len` bytes, alignment 1.
/// `None` only for a size no allocation can have (over `isize::MAX`).
fn buffer_layout(len: usize) -> Option<Layout> {
    Layout::from_size_align(len, 1).ok()
}

/// Allocate `len` writable bytes for the host to put an input in; returns
/// their address, or 0 if `len <= 0` or memory cannot grow. A failed
/// allocation returns 0 instead of trapping (no `handle_alloc_error`), so the
/// host can tell "too big for this instance" from a guest bug.
#[no_mangle]
pub extern "C" fn wasmtube_alloc(len: i32) -> i32 {
    if len <= 0 {
        return 0;
    }
    match buffer_layout(len as usize) {
        // Safety: the layout has a non-zero size. Null (out of memory)
        // becomes 0 by the cast, which is the ABI's "cannot".
        Some(layout) => unsafe { std::alloc::alloc(layout) as usize as i32 },
        None => 0,
    }
}

/// Free `len` bytes at `ptr` that came from [`wasmtube_alloc`] or that a
/// function returned as its output. `ptr == 0` or `len == 0` is a no-op
/// (nothing was allocated: a failed allocation or an empty output).
///
/// # Safety
/// The host must pass back exactly a pointer and length it got from this
/// module, once. Outputs are `Box<[u8]>`, whose layout is also `(len, 1)`.
#[no_mangle]
pub unsafe extern "C" fn wasmtube_free(ptr: i32, len: i32) {
    if ptr == 0 || len == 0 {
        return;
    }
    if let Some(layout) = buffer_layout(addr(len)) {
        // Safety: by the contract above, [ptr, ptr + len) is a live
        // allocation of this module with exactly this layout.
        unsafe { std::alloc::dealloc(addr(ptr) as *mut u8, layout) }
    }
}

/// Borrow the host's `len` bytes at `ptr`, for as long as the call runs.
///
/// # Safety
/// The host guarantees it wrote `len` bytes at `ptr` and leaves them alone
/// until the function returns.
unsafe fn borrow<'a>(ptr: usize, len: usize) -> Result<&'a [u8], Error> {
    if len == 0 {
        // `wasmtube_alloc(0)` returns 0, and a slice may not start at null,
        // even an empty one.
        return Ok(&[]);
    }
    if ptr == 0 || ptr.checked_add(len).is_none() {
        return Err(Error::internal(format!(
            "the host passed an input of {} bytes at address {}, past the address space",
            len, ptr
        )));
    }
    // Safety: non-null, inside the address space, and the host wrote `len`
    // bytes there (the caller's contract). u8 needs no alignment.
    Ok(unsafe { std::slice::from_raw_parts(ptr as *const u8, len) })
}

/// Hand `bytes` to the host as `(ptr << 32) | len`. The Vec becomes a
/// `Box<[u8]>` first: that drops any spare capacity, so the allocation is
/// exactly `len` bytes with alignment 1 and `wasmtube_free(ptr, len)` can
/// release it. It is leaked here; the host owns it now.
fn pack(bytes: Vec<u8>) -> i64 {
    let len = bytes.len() as u64;
    let ptr = Box::into_raw(bytes.into_boxed_slice()) as *mut u8 as usize as u64;
    ((ptr << 32) | len) as i64
}

/// The output's bytes after declaring an image output, or `None` after
/// reporting the error with `wasmtube.fail`.
fn finish<O: Output>(result: Result<O, Error>) -> Option<Vec<u8>> {
    match result.and_then(Output::into_payload) {
        Ok(payload) => {
            if let Some((width, height, format)) = payload.image {
                host::output_image(width, height, format);
            }
            Some(payload.bytes)
        }
        Err(error) => {
            host::fail(error.code(), error.message());
            None
        }
    }
}

/// Alloc ABI: the output buffer, or 0 (no output) after a failure.
fn alloc_output<O: Output>(result: Result<O, Error>) -> i64 {
    finish(result).map_or(0, pack)
}

/// Seed ABI: the host's offset, unless it is 0. Address 0 is valid wasm
/// memory, but a Rust pointer there is null, and reading or writing through
/// it is undefined behaviour: a module whose `NAME.toml` says
/// `seed_offset = 0` fails every call plainly instead.
fn seed_offset(offset: i32) -> Result<usize, Error> {
    match addr(offset) {
        0 => Err(Error::failed_precondition(
            "the seed-ABI input is at address 0, which Rust cannot address: \
             give this module a seed_offset above 0 (the default is 42)",
        )),
        offset => Ok(offset),
    }
}

/// Seed ABI: copy the output to `offset`, over the input, and return its
/// length; 0 after a failure.
///
/// # Safety
/// Nothing may borrow the input any more, and memory from `offset` must have
/// room for the output (the host checks the length it gets back; the seed
/// ABI has no way to ask for room). If `result` is `Ok`, `offset` passed
/// `seed_offset`, so it is not 0.
unsafe fn seed_output<O: Output>(offset: usize, result: Result<O, Error>) -> i32 {
    let bytes = match finish(result) {
        Some(bytes) => bytes,
        None => return 0,
    };
    match i32::try_from(bytes.len()) {
        Ok(len) => {
            // Safety: the caller's contract. `copy`, not
            // `copy_nonoverlapping`: the seed offset normally lies in the
            // stack region, away from the heap buffer, but a module's
            // seed_offset may put it anywhere.
            unsafe { std::ptr::copy(bytes.as_ptr(), offset as *mut u8, bytes.len()) };
            len
        }
        Err(_) => {
            let message = format!("output of {} bytes is too long for the seed ABI", bytes.len());
            host::fail(crate::error::Code::Internal, &message);
            0
        }
    }
}

/// Parse one JSON document into `T`, which may borrow from `input`. Anything
/// the parser rejects, trailing characters included, fails with
/// `INVALID_ARGUMENT` "invalid input: <serde_json's message>".
pub fn from_json<'a, T: Deserialize<'a>>(input: &'a [u8]) -> Result<T, Error> {
    serde_json::from_slice(input).map_err(invalid_input)
}

/// Run `seed` over one JSON document as it is parsed (for streaming: no
/// value tree), with the same end check and errors as [`from_json`].
pub fn from_json_seed<'a, S: DeserializeSeed<'a>>(
    input: &'a [u8],
    seed: S,
) -> Result<S::Value, Error> {
    let mut de = serde_json::Deserializer::from_slice(input);
    let value = seed.deserialize(&mut de).map_err(invalid_input)?;
    de.end().map_err(invalid_input)?;
    Ok(value)
}

fn invalid_input(e: serde_json::Error) -> Error {
    Error::invalid_argument(format!("invalid input: {}", e))
}

/// The image at `ptr`, whose `len` bytes must be `width*height*channels`.
///
/// # Safety
/// As for `borrow`.
unsafe fn image_input<'a>(
    ptr: usize,
    len: usize,
    width: u32,
    height: u32,
    format: PixelFormat,
) -> Result<ImageRef<'a>, Error> {
    check_size(len, width, height, format).map_err(Error::invalid_argument)?;
    // Safety: the caller's contract.
    let pixels = unsafe { borrow(ptr, len) }?;
    Ok(ImageRef { pixels, width, height, format })
}

/// Send panic messages to the daemon's log: with `panic = "abort"` a panic
/// is a bare `unreachable` trap, and the message would otherwise be lost.
/// Every wrapper calls this first; only the first call installs the hook.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // "panicked at 'message', src/lib.rs:12:5", then the trap.
        std::panic::set_hook(Box::new(|info| crate::log::error(&info.to_string())));
    });
}

// ---------------------------------------------------------------------------
// The wrappers' bodies, one per `export!` kind. Public only for the macro.
// Each is `unsafe` because it trusts the host's pointers and lengths.
// ---------------------------------------------------------------------------

/// `export!(json f)`: `f(ptr, len) -> i64`, JSON in.
///
/// # Safety
/// Called only by the host, with an input buffer of `len` bytes at `ptr`.
pub unsafe fn alloc_json<'a, I, O, F>(ptr: i32, len: i32, f: F) -> i64
where
    I: Deserialize<'a>,
    O: Output,
    F: FnOnce(I) -> Result<O, Error>,
{
    install_panic_hook();
    // Safety: the caller's contract.
    let input = unsafe { borrow(addr(ptr), addr(len)) };
    alloc_output(input.and_then(from_json).and_then(f))
}

/// `export!(bytes f)`: `f(ptr, len) -> i64`, the input's bytes as they are.
///
/// # Safety
/// As for [`alloc_json`].
pub unsafe fn alloc_bytes<'a, O, F>(ptr: i32, len: i32, f: F) -> i64
where
    O: Output,
    F: FnOnce(&'a [u8]) -> Result<O, Error>,
{
    install_panic_hook();
    // Safety: the caller's contract.
    let input = unsafe { borrow(addr(ptr), addr(len)) };
    alloc_output(input.and_then(f))
}

/// `export!(image f)`: `f(ptr, len, width, height) -> i64`, RGB8 in.
///
/// # Safety
/// As for [`alloc_json`].
pub unsafe fn alloc_image<'a, O, F>(ptr: i32, len: i32, width: i32, height: i32, f: F) -> i64
where
    O: Output,
    F: FnOnce(ImageRef<'a>) -> Result<O, Error>,
{
    install_panic_hook();
    // Safety: the caller's contract.
    let image = unsafe {
        image_input(addr(ptr), addr(len), width as u32, height as u32, PixelFormat::Rgb8)
    };
    alloc_output(image.and_then(f))
}

/// `export!(image_any f)`: `f(ptr, len, width, height, format) -> i64`, any
/// pixel format in.
///
/// # Safety
/// As for [`alloc_json`].
pub unsafe fn alloc_image_any<'a, O, F>(
    ptr: i32,
    len: i32,
    width: i32,
    height: i32,
    format: i32,
    f: F,
) -> i64
where
    O: Output,
    F: FnOnce(ImageRef<'a>) -> Result<O, Error>,
{
    install_panic_hook();
    let image = match PixelFormat::from_code(format) {
        // Safety: the caller's contract.
        Some(format) => unsafe {
            image_input(addr(ptr), addr(len), width as u32, height as u32, format)
        },
        None => Err(Error::invalid_argument(format!("unknown pixel format code {}", format))),
    };
    alloc_output(image.and_then(f))
}

/// `export!(seed_json f)`: `f(offset, len) -> i32`, JSON in at `offset`,
/// output written over it.
///
/// # Safety
/// Called only by the host, with `len` input bytes at `offset` and room
/// there for the output.
pub unsafe fn seed_json<'a, I, O, F>(offset: i32, len: i32, f: F) -> i32
where
    I: Deserialize<'a>,
    O: Output,
    F: FnOnce(I) -> Result<O, Error>,
{
    install_panic_hook();
    // Safety: the caller's contract. The output may borrow the input, but
    // `seed_output` serializes it into a buffer of its own before writing
    // over the input.
    let input = seed_offset(offset).and_then(|offset| unsafe { borrow(offset, addr(len)) });
    let result = input.and_then(from_json).and_then(f);
    // Safety: the caller's contract; the input is no longer read.
    unsafe { seed_output(addr(offset), result) }
}

/// `export!(seed_image f)`: `f(offset, len, width, height) -> i32`, RGB8 in
/// at `offset`. Like the seed, it ignores `len` and reads `width*height*3`
/// bytes (the daemon checks that they match).
///
/// # Safety
/// As for [`seed_json`], with `width*height*3` bytes at `offset`.
pub unsafe fn seed_image<'a, O, F>(offset: i32, _len: i32, width: i32, height: i32, f: F) -> i32
where
    O: Output,
    F: FnOnce(ImageRef<'a>) -> Result<O, Error>,
{
    install_panic_hook();
    let (w, h) = (width as u32, height as u32);
    let image = seed_offset(offset).and_then(|at| match PixelFormat::Rgb8.byte_len(w, h) {
        // Safety: the caller's contract.
        Some(n) => unsafe { image_input(at, n, w, h, PixelFormat::Rgb8) },
        None => Err(Error::invalid_argument(format!(
            "a {}x{} RGB8 image is too large to address",
            w, h
        ))),
    });
    // Safety: the caller's contract; the input is no longer read.
    unsafe { seed_output(addr(offset), image.and_then(f)) }
}
