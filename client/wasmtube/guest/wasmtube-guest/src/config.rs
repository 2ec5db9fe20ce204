//! The module's static configuration: the `[config]` table of the module's
//! `NAME.toml` beside `NAME.wasm`, as JSON (`{}` when there is none).

use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::host;

/// Most configs are small: one call of `wasmtube.config` with a buffer this
/// size usually gets all of it, and a larger one costs a second call.
const FIRST_TRY: usize = 256;

/// The module's config as the JSON text the host gives (an object).
///
/// Panics (a trap) only if the host breaks its contract by answering with
/// text that is not UTF-8.
pub fn config_json() -> String {
    let mut buf = vec![0u8; FIRST_TRY];
    let mut n = host::config(&mut buf);
    if n > buf.len() {
        buf.resize(n, 0);
        n = host::config(&mut buf);
    }
    // The config is fixed for the life of an instance, so the second answer
    // has the length of the first; min() keeps a misbehaving host in bounds.
    buf.truncate(n.min(buf.len()));
    String::from_utf8(buf).expect("wasmtube.config returned text that is not UTF-8")
}

/// The module's config parsed into `T`, typically a struct with
/// `#[derive(Deserialize)]` whose fields have `#[serde(default)]`.
///
/// A config that does not fit `T` fails with `FAILED_PRECONDITION`: the
/// request is fine, the deployment is not.
pub fn config<T: DeserializeOwned>() -> Result<T, Error> {
    serde_json::from_str(&config_json()).map_err(|e| {
        Error::failed_precondition(format!("the module's config does not fit this guest: {}", e))
    })
}
