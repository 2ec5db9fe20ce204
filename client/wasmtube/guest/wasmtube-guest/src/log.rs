//! Lines for the daemon's log, through `wasmtube.log`.
//!
//! The daemon prefixes each line with the module, function and call id, and
//! rate-limits each module (`--guest-log-rate`), dropping and counting lines
//! past the limit. Lines longer than 1 KiB are cut by the host.
//!
//! ```ignore
//! wasmtube_guest::log::info("starting");
//! wasmtube_guest::info!("dividing {} by {}", a, b);
//! ```

use crate::host;

/// How severe a line is; the discriminants are the ABI's level numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i32)]
pub enum Level {
    /// 0: details for debugging.
    Debug = 0,
    /// 1: normal events.
    Info = 1,
    /// 2: something odd that did not fail the call.
    Warn = 2,
    /// 3: something failed.
    Error = 3,
}

/// Log `message` at `level`.
pub fn write(level: Level, message: &str) {
    host::log(level as i32, message);
}

/// Log `message` at debug level.
pub fn debug(message: &str) {
    write(Level::Debug, message);
}

/// Log `message` at info level.
pub fn info(message: &str) {
    write(Level::Info, message);
}

/// Log `message` at warning level.
pub fn warn(message: &str) {
    write(Level::Warn, message);
}

/// Log `message` at error level.
pub fn error(message: &str) {
    write(Level::Error, message);
}

/// `debug!("x = {}", x)`: format a line and log it at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => {
        $crate::log::debug(&::std::format!($($arg)+))
    };
}

/// `info!("x = {}", x)`: format a line and log it at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => {
        $crate::log::info(&::std::format!($($arg)+))
    };
}

/// `warn!("x = {}", x)`: format a line and log it at warning level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => {
        $crate::log::warn(&::std::format!($($arg)+))
    };
}

/// `error!("x = {}", x)`: format a line and log it at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => {
        $crate::log::error(&::std::format!($($arg)+))
    };
}
