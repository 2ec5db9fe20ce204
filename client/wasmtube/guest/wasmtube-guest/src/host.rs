//! The functions the daemon offers guests, imported from the wasm module
//! `wasmtube`, behind safe wrappers.
//!
//! Each import appears in the built module only if something calls it (the
//! linker drops unused ones), so a guest imports only what it uses and loads
//! in any daemon that offers those.
//!
//! Off wasm32 (`cargo test` of a guest's functions on the build machine)
//! there is no host: log lines go to stderr, failures and image declarations
//! are dropped, and the config is `{}`.

use crate::error::Code;
use crate::image::PixelFormat;

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "wasmtube")]
    extern "C" {
        pub fn fail(code: i32, ptr: i32, len: i32);
        pub fn log(level: i32, ptr: i32, len: i32);
        pub fn config(ptr: i32, capacity: i32) -> i32;
        pub fn output_image(width: i32, height: i32, format: i32);
    }
}

/// Pointers and lengths cross the boundary as i32s holding wasm32 addresses
/// (u32). A `usize` is 32 bits on wasm32, so the casts keep every bit.
#[cfg(target_arch = "wasm32")]
fn raw(bytes: &[u8]) -> (i32, i32) {
    (bytes.as_ptr() as usize as i32, bytes.len() as i32)
}

/// `wasmtube.fail`: the current call fails with `code` and `message` once
/// the exported function returns.
pub(crate) fn fail(code: Code, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        let (ptr, len) = raw(message.as_bytes());
        // Safety: the host only reads [ptr, ptr + len), a live borrow of `message`.
        unsafe { imports::fail(code.number(), ptr, len) }
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (code, message);
}

/// `wasmtube.log` at `level` (0 debug, 1 info, 2 warning, 3 error).
pub(crate) fn log(level: i32, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        let (ptr, len) = raw(message.as_bytes());
        // Safety: the host only reads [ptr, ptr + len), a live borrow of `message`.
        unsafe { imports::log(level, ptr, len) }
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[wasmtube log {}] {}", level, message);
}

/// `wasmtube.config`: copies the start of the module's config JSON into
/// `buf` and returns its full length, which may exceed `buf.len()`.
pub(crate) fn config(buf: &mut [u8]) -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        let (ptr, capacity) = raw(buf);
        // Safety: the host writes at most `capacity` bytes at `ptr`, all
        // inside `buf`, which this function borrows mutably.
        let n = unsafe { imports::config(ptr, capacity) };
        // -1 means the buffer lies outside linear memory: a slice of ours
        // never does, so this is a host bug, not something to recover from.
        assert!(n >= 0, "wasmtube.config refused a buffer inside linear memory");
        n as usize
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let json = b"{}";
        let n = json.len().min(buf.len());
        buf[..n].copy_from_slice(&json[..n]);
        json.len()
    }
}

/// `wasmtube.output_image`: the output this call returns is an image.
pub(crate) fn output_image(width: u32, height: u32, format: PixelFormat) {
    #[cfg(target_arch = "wasm32")]
    // Safety: plain integers; the host only records them for this call.
    unsafe {
        imports::output_image(width as i32, height as i32, format.code())
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (width, height, format);
}
