//! Write wasmtube guest functions as plain Rust functions.
//!
//! A guest function takes its input (a `Deserialize` type, the raw bytes, or
//! an [`ImageRef`]) and returns `Result<O, Error>`, where `O` is any
//! `Serialize` type (sent as JSON), [`RawJson`] or an [`Image`]. One
//! [`export!`] line makes it a WebAssembly export of the same name that
//! speaks wasmtube's guest ABI:
//!
//! ```ignore
//! use serde::{Deserialize, Serialize};
//! use wasmtube_guest::{export, Error};
//!
//! #[derive(Deserialize)]
//! struct Args { name: String }
//!
//! #[derive(Serialize)]
//! struct Greeting { message: String }
//!
//! fn hello(args: Args) -> Result<Greeting, Error> {
//!     if args.name.is_empty() {
//!         return Err(Error::invalid_argument("name must not be empty"));
//!     }
//!     Ok(Greeting { message: format!("Hello, {}!", args.name) })
//! }
//!
//! export!(json hello);
//! ```
//!
//! The kit also exports the alloc ABI's `wasmtube_alloc` and `wasmtube_free`
//! from every module that uses it, and sends panic messages to the daemon's
//! log before the trap. See the wasmtube guest guide, `GUIDE.md` in a project
//! made by `wasmtube new`.

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod abi;
mod config;
mod error;
mod host;
mod image;
pub mod log;
mod output;

pub use crate::abi::{from_json, from_json_seed, wasmtube_alloc, wasmtube_free};
pub use crate::config::{config, config_json};
pub use crate::error::{Code, Error};
pub use crate::image::{Image, ImageRef, PixelFormat};
pub use crate::output::{Output, RawJson};

/// What the code `export!` generates calls. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::abi::{
        alloc_bytes, alloc_image, alloc_image_any, alloc_json, seed_image, seed_json,
    };
}

/// Export functions under their own names, in one calling convention.
///
/// `export!(KIND f);` or `export!(KIND f, g, h);`. Each function must return
/// `Result<O, Error>` where `O` is a `Serialize` type (JSON out), [`RawJson`]
/// or [`Image`] (an image out). The kinds, and what each function takes:
///
/// | kind         | wasm export                                    | function's argument |
/// |--------------|------------------------------------------------|---------------------|
/// | `json`       | `f(ptr, len) -> i64` (alloc ABI)               | any `Deserialize` type |
/// | `bytes`      | `f(ptr, len) -> i64` (alloc ABI)               | `&[u8]`: the input as sent |
/// | `image`      | `f(ptr, len, width, height) -> i64` (alloc ABI) | [`ImageRef`], always RGB8 |
/// | `image_any`  | `f(ptr, len, width, height, format) -> i64` (alloc ABI) | [`ImageRef`] in any [`PixelFormat`] |
/// | `seed_json`  | `f(offset, len) -> i32` (seed ABI)             | any `Deserialize` type |
/// | `seed_image` | `f(offset, len, width, height) -> i32` (seed ABI) | [`ImageRef`], RGB8 |
///
/// JSON the function's type rejects fails the call with `INVALID_ARGUMENT`
/// "invalid input: ...", as does an image whose size does not match its
/// bytes; `Err(e)` fails it with `e`'s code and message. Neither is a trap.
///
/// The generated wrapper lives in an anonymous `const` block, so the Rust
/// function keeps its name and the export gets the same one. The wrapper is
/// not an `unsafe fn` although it trusts the host's pointers: nothing in Rust
/// can name it, so only the host ever calls it.
#[macro_export]
macro_rules! export {
    ($kind:ident $($function:ident),+ $(,)?) => {
        $( $crate::__export_one!($kind $function); )+
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_one {
    (json $f:ident) => {
        const _: () = {
            #[export_name = ::core::stringify!($f)]
            extern "C" fn export(ptr: i32, len: i32) -> i64 {
                // Safety: only the host calls exports, with its input buffer.
                unsafe { $crate::__private::alloc_json(ptr, len, $f) }
            }
        };
    };
    (bytes $f:ident) => {
        const _: () = {
            #[export_name = ::core::stringify!($f)]
            extern "C" fn export(ptr: i32, len: i32) -> i64 {
                // Safety: only the host calls exports, with its input buffer.
                unsafe { $crate::__private::alloc_bytes(ptr, len, $f) }
            }
        };
    };
    (image $f:ident) => {
        const _: () = {
            #[export_name = ::core::stringify!($f)]
            extern "C" fn export(ptr: i32, len: i32, width: i32, height: i32) -> i64 {
                // Safety: only the host calls exports, with its input buffer.
                unsafe { $crate::__private::alloc_image(ptr, len, width, height, $f) }
            }
        };
    };
    (image_any $f:ident) => {
        const _: () = {
            #[export_name = ::core::stringify!($f)]
            extern "C" fn export(ptr: i32, len: i32, width: i32, height: i32, format: i32) -> i64 {
                // Safety: only the host calls exports, with its input buffer.
                unsafe { $crate::__private::alloc_image_any(ptr, len, width, height, format, $f) }
            }
        };
    };
    (seed_json $f:ident) => {
        const _: () = {
            #[export_name = ::core::stringify!($f)]
            extern "C" fn export(offset: i32, len: i32) -> i32 {
                // Safety: only the host calls exports, with the input at offset.
                unsafe { $crate::__private::seed_json(offset, len, $f) }
            }
        };
    };
    (seed_image $f:ident) => {
        const _: () = {
            #[export_name = ::core::stringify!($f)]
            extern "C" fn export(offset: i32, len: i32, width: i32, height: i32) -> i32 {
                // Safety: only the host calls exports, with the input at offset.
                unsafe { $crate::__private::seed_image(offset, len, width, height, $f) }
            }
        };
    };
    ($other:ident $f:ident) => {
        ::core::compile_error!(::core::concat!(
            "unknown export kind `",
            ::core::stringify!($other),
            "`: use json, bytes, image, image_any, seed_json or seed_image"
        ));
    };
}
