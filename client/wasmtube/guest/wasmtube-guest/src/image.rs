//! Images in (borrowed from the host's buffer) and out (owned, declared to the host).

use std::fmt;

use crate::error::Error;

/// How an image's bytes encode its pixels: 8 bits per channel, row-major,
/// no padding between rows. The discriminants are the codes of the ABI (and
/// of `wasmtube.v1.PixelFormat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum PixelFormat {
    /// Red, green, blue: 3 bytes a pixel.
    Rgb8 = 1,
    /// Red, green, blue, alpha: 4 bytes a pixel.
    Rgba8 = 2,
    /// One luma channel: 1 byte a pixel.
    Gray8 = 3,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub const fn channels(self) -> usize {
        match self {
            PixelFormat::Rgb8 => 3,
            PixelFormat::Rgba8 => 4,
            PixelFormat::Gray8 => 1,
        }
    }

    /// The ABI's code for this format.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The format with this ABI code, if there is one.
    pub const fn from_code(code: i32) -> Option<PixelFormat> {
        match code {
            1 => Some(PixelFormat::Rgb8),
            2 => Some(PixelFormat::Rgba8),
            3 => Some(PixelFormat::Gray8),
            _ => None,
        }
    }

    /// `width * height * channels`, or `None` if it overflows `usize`
    /// (on wasm32 a 65536x65536 RGB8 image does).
    pub fn byte_len(self, width: u32, height: u32) -> Option<usize> {
        (width as usize).checked_mul(height as usize)?.checked_mul(self.channels())
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Rgb8 => "RGB8",
            PixelFormat::Rgba8 => "RGBA8",
            PixelFormat::Gray8 => "GRAY8",
        })
    }
}

/// `len` must be `width * height * channels`: the one size check both
/// directions share, so their messages read alike.
pub(crate) fn check_size(
    len: usize,
    width: u32,
    height: u32,
    format: PixelFormat,
) -> Result<(), String> {
    match format.byte_len(width, height) {
        Some(n) if n == len => Ok(()),
        Some(n) => {
            Err(format!("a {}x{} {} image needs {} bytes, got {}", width, height, format, n, len))
        }
        None => Err(format!("a {}x{} {} image is too large to address", width, height, format)),
    }
}

/// An input image: the caller's pixels, borrowed for the duration of the call.
///
/// The kit has already checked that `pixels.len() == width * height *
/// format.channels()`. Functions exported with `image` (or `seed_image`) only
/// ever see [`PixelFormat::Rgb8`]; those exported with `image_any` see
/// whatever the caller sent.
#[derive(Clone, Copy, Debug)]
pub struct ImageRef<'a> {
    /// Row-major pixels, `width * format.channels()` bytes a row.
    pub pixels: &'a [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// How the bytes encode pixels.
    pub format: PixelFormat,
}

impl<'a> ImageRef<'a> {
    /// Fail with `INVALID_ARGUMENT` unless the image is in `format`: for an
    /// `image_any` function that handles only some formats.
    pub fn require_format(&self, format: PixelFormat) -> Result<(), Error> {
        if self.format == format {
            Ok(())
        } else {
            Err(Error::invalid_argument(format!(
                "this function takes {} images, not {}",
                format, self.format
            )))
        }
    }

    /// Bytes per pixel.
    pub fn channels(&self) -> usize {
        self.format.channels()
    }

    /// `width * height`.
    pub fn pixel_count(&self) -> usize {
        self.pixels.len() / self.channels()
    }

    /// The rows, top to bottom, each `width * channels` bytes.
    pub fn rows(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (pixels, row_len) = (self.pixels, self.width as usize * self.channels());
        // Not chunks_exact: it cannot give the empty rows of a zero-width image.
        (0..self.height as usize).map(move |y| &pixels[y * row_len..(y + 1) * row_len])
    }

    /// The pixel at column `x` of row `y`: `channels` bytes.
    ///
    /// Panics (a trap) if `x >= width` or `y >= height`.
    pub fn pixel(&self, x: u32, y: u32) -> &'a [u8] {
        assert!(x < self.width && y < self.height, "pixel ({}, {}) is outside the image", x, y);
        let channels = self.channels();
        let start = (y as usize * self.width as usize + x as usize) * channels;
        &self.pixels[start..start + channels]
    }
}

/// An output image. Returning one from an exported function sends the caller
/// an image instead of JSON: the kit calls `wasmtube.output_image(width,
/// height, format)` and hands the pixels over as the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pixels: Vec<u8>,
    width: u32,
    height: u32,
    format: PixelFormat,
}

impl Image {
    /// An image of `width x height` pixels in `format`. Fails with `INTERNAL`
    /// (a bug in the guest) unless `pixels.len() == width * height *
    /// format.channels()`: the host would refuse the output anyway.
    pub fn new(
        pixels: Vec<u8>,
        width: u32,
        height: u32,
        format: PixelFormat,
    ) -> Result<Image, Error> {
        check_size(pixels.len(), width, height, format)
            .map_err(|e| Error::internal(format!("output image: {}", e)))?;
        Ok(Image { pixels, width, height, format })
    }

    /// The pixels.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// How the bytes encode pixels.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// The pixels, giving up the image.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }
}
