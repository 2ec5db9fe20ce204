//! Errors a guest function returns on purpose, with the gRPC status the caller gets.

use std::fmt;

/// A gRPC status code other than OK: what the caller of a failed function sees.
///
/// The discriminants are the gRPC numbers, which is what `wasmtube.fail` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    /// 1: the operation was cancelled.
    Cancelled = 1,
    /// 2: an error that fits no other code.
    Unknown = 2,
    /// 3: the input is wrong, whatever the state: a missing field, a bad value.
    InvalidArgument = 3,
    /// 4: the deadline passed (the host also reports this itself on timeouts).
    DeadlineExceeded = 4,
    /// 5: something the input names does not exist.
    NotFound = 5,
    /// 6: something the input would create exists already.
    AlreadyExists = 6,
    /// 7: the caller may not do this.
    PermissionDenied = 7,
    /// 8: a quota or limit would be exceeded.
    ResourceExhausted = 8,
    /// 9: the input is fine but the state is not (e.g. the module's config).
    FailedPrecondition = 9,
    /// 10: aborted, typically a concurrency conflict.
    Aborted = 10,
    /// 11: a value is past the valid range (an index, an overflow).
    OutOfRange = 11,
    /// 12: this function does not implement what was asked.
    Unimplemented = 12,
    /// 13: a bug: an invariant of the guest broke.
    Internal = 13,
    /// 14: transiently unavailable; the caller may retry.
    Unavailable = 14,
    /// 15: unrecoverable data loss or corruption.
    DataLoss = 15,
    /// 16: the caller is not authenticated.
    Unauthenticated = 16,
}

impl Code {
    /// The gRPC number, 1 to 16.
    pub const fn number(self) -> i32 {
        self as i32
    }
}

/// A failure of a guest function: a status code and a message for the caller.
///
/// Returning `Err(error)` from an exported function makes the call fail with
/// exactly this code and message (through `wasmtube.fail`); it is not a trap,
/// so the instance stays usable. The host keeps the message's first 1 KiB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: Code,
    message: String,
}

impl Error {
    /// An error with any code.
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error { code, message: message.into() }
    }

    /// `INVALID_ARGUMENT`: the input is wrong (bad JSON, a missing field,
    /// a bad value or image size). Input the kit cannot parse gets this code.
    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::new(Code::InvalidArgument, message)
    }

    /// `NOT_FOUND`: something the input names does not exist.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(Code::NotFound, message)
    }

    /// `ALREADY_EXISTS`.
    pub fn already_exists(message: impl Into<String>) -> Error {
        Error::new(Code::AlreadyExists, message)
    }

    /// `PERMISSION_DENIED`.
    pub fn permission_denied(message: impl Into<String>) -> Error {
        Error::new(Code::PermissionDenied, message)
    }

    /// `RESOURCE_EXHAUSTED`: the input would need more than the guest allows.
    pub fn resource_exhausted(message: impl Into<String>) -> Error {
        Error::new(Code::ResourceExhausted, message)
    }

    /// `FAILED_PRECONDITION`: the input is fine but the state is not, such as
    /// a module config that does not fit what the guest expects.
    pub fn failed_precondition(message: impl Into<String>) -> Error {
        Error::new(Code::FailedPrecondition, message)
    }

    /// `OUT_OF_RANGE`: a value past the valid range, such as an overflow.
    pub fn out_of_range(message: impl Into<String>) -> Error {
        Error::new(Code::OutOfRange, message)
    }

    /// `UNIMPLEMENTED`: the function does not do what was asked (yet).
    pub fn unimplemented(message: impl Into<String>) -> Error {
        Error::new(Code::Unimplemented, message)
    }

    /// `INTERNAL`: a bug in the guest. Output the kit cannot serialize, or an
    /// `Image` whose size does not match its pixels, gets this code.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(Code::Internal, message)
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}
