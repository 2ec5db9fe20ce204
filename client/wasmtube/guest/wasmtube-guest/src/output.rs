//! What an exported function may return: JSON (any `Serialize`), JSON text
//! it wrote itself (`RawJson`), or an image (`Image`).

use serde::Serialize;

use crate::error::Error;
use crate::image::{Image, PixelFormat};

/// The output of an exported function, as bytes for the host.
///
/// Implemented for every `Serialize` type (sent as compact JSON), for
/// [`RawJson`] and for [`Image`]. The blanket impl and the two others do not
/// overlap because `RawJson` and `Image` are this crate's types and do not
/// implement `Serialize`; for the same reason a guest cannot add impls, and
/// need not.
pub trait Output {
    #[doc(hidden)]
    fn into_payload(self) -> Result<Payload, Error>;
}

/// Output bytes and, for an image, what to tell `wasmtube.output_image`.
/// Its fields are private, so only this crate can make one.
#[doc(hidden)]
pub struct Payload {
    pub(crate) bytes: Vec<u8>,
    pub(crate) image: Option<(u32, u32, PixelFormat)>,
}

impl<T: Serialize> Output for T {
    fn into_payload(self) -> Result<Payload, Error> {
        // Only a guest bug fails here (a map with non-string keys, a
        // Serialize impl that errors): the caller's input was fine.
        let bytes = serde_json::to_vec(&self)
            .map_err(|e| Error::internal(format!("cannot serialize the output: {}", e)))?;
        Ok(Payload { bytes, image: None })
    }
}

/// JSON text the function produced itself, sent as it is: for output written
/// while streaming, without building a value to serialize.
///
/// The host decodes it as JSON, so it must be valid UTF-8 JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawJson(pub Vec<u8>);

impl Output for RawJson {
    fn into_payload(self) -> Result<Payload, Error> {
        Ok(Payload { bytes: self.0, image: None })
    }
}

impl Output for Image {
    fn into_payload(self) -> Result<Payload, Error> {
        let (width, height, format) = (self.width(), self.height(), self.format());
        Ok(Payload { bytes: self.into_pixels(), image: Some((width, height, format)) })
    }
}
