//! Test guest for wasmtube, built on the guest kit (`wasmtube-guest`, in
//! `client/wasmtube/guest/`). Each function is a plain Rust function; the
//! `export!` lines at the end give each one its calling convention:
//!
//! - seed ABI (`echo`, `hello`, `busy`, `image_size`): input at a fixed offset
//!   of linear memory, JSON output written over it, its length returned; the
//!   seed's own test guest answered exactly like this;
//! - alloc ABI (everything else): input in a buffer from `wasmtube_alloc`,
//!   output returned as `(ptr << 32) | len`, JSON or an image.
//!
//! Bad input fails the call with INVALID_ARGUMENT through `wasmtube.fail`
//! (the kit does that for input it cannot parse); only `panic` traps, on
//! purpose, for tests of traps.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use wasmtube_guest::{export, from_json_seed, info, Error, Image, ImageRef, PixelFormat, RawJson};

export!(seed_json echo, hello, busy);
export!(seed_image image_size);
export!(bytes json_echo, json_stats, show_config);
export!(image image_stats, image_checksum, box_blur);
export!(image_any grayscale);
export!(json divide, panic);

// ---------------------------------------------------------------------------
// Seed ABI functions: the seed's test guest, answer for answer.
// ---------------------------------------------------------------------------

/// `echo` input and output: only `args` survives; other fields are dropped.
#[derive(Deserialize, Serialize)]
struct EchoArgs {
    args: String,
}

/// `{"args": String}` -> the same object as compact JSON.
fn echo(args: EchoArgs) -> Result<EchoArgs, Error> {
    Ok(args)
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

/// `{"arg": String}` -> `{"message": "Hello, <arg>!"}`.
fn hello(args: HelloArgs) -> Result<Greeting, Error> {
    Ok(Greeting { message: format!("Hello, {}!", args.arg) })
}

/// `busy` input.
#[derive(Deserialize)]
struct BusyArgs {
    n: u64,
}

/// `busy` output.
#[derive(Serialize)]
struct BusyResult {
    value: u64,
}

/// `{"n": u64}` -> `{"value": u64}` after `n` rounds of xorshift64: a CPU
/// benchmark for parallel calls (~1e8 rounds take a noticeable fraction of a
/// second). Each round depends on the previous one and the count is only
/// known at run time, so the compiler can neither fold nor vectorise it.
fn busy(args: BusyArgs) -> Result<BusyResult, Error> {
    // xorshift64 never leaves the all-zero state, so seed it away from zero.
    let mut x = args.n ^ 0x9E37_79B9_7F4A_7C15;
    if x == 0 {
        x = 1;
    }
    for _ in 0..args.n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    Ok(BusyResult { value: x })
}

/// `image_size` output.
#[derive(Serialize)]
struct ImageInfo {
    width: u32,
    height: u32,
}

/// Raw RGB8 pixels -> `{"width","height"}`. Like the seed it ignores `len`
/// (the kit's `seed_image` reads `width*height*3` bytes) and wraps the pixels
/// in an `image::RgbImage`, as the seed's guest did.
fn image_size(img: ImageRef) -> Result<ImageInfo, Error> {
    let rgb = image::RgbImage::from_raw(img.width, img.height, img.pixels.to_vec())
        .ok_or_else(|| Error::invalid_argument("image_size: pixels do not fill the image"))?;
    Ok(ImageInfo { width: rgb.width(), height: rgb.height() })
}

// ---------------------------------------------------------------------------
// Alloc ABI functions: JSON.
// ---------------------------------------------------------------------------

/// Any JSON -> the same value, compact. Built to carry documents of many MB.
fn json_echo(input: &[u8]) -> Result<RawJson, Error> {
    // Compact output is usually no longer than the input: reserving that much
    // avoids the doubling reallocations (and their peak) of a growing Vec.
    let mut out = Vec::with_capacity(input.len());
    from_json_seed(input, Echo { out: &mut out, sep: None })?;
    Ok(RawJson(out))
}

/// `json_stats` output.
#[derive(Serialize)]
struct JsonStats {
    bytes: u64,
    values: u64,
    max_depth: u64,
}

/// Any JSON -> `{"bytes","values","max_depth"}`: input length, number of
/// values counted recursively (object keys are not values), and nesting depth
/// (scalar or empty container 1, container 1 + deepest child).
fn json_stats(input: &[u8]) -> Result<JsonStats, Error> {
    let mut values = 0;
    let max_depth = from_json_seed(input, Count { values: &mut values })?;
    Ok(JsonStats { bytes: input.len() as u64, values, max_depth })
}

/// Ignores its input and returns the module's config object: what
/// `wasmtube.config` gives, the `[config]` table of `wasm_test.toml`.
fn show_config(_input: &[u8]) -> Result<serde_json::Value, Error> {
    wasmtube_guest::config()
}

/// `divide` input.
#[derive(Deserialize)]
struct DivideArgs {
    a: i64,
    b: i64,
}

/// `divide` output.
#[derive(Serialize)]
struct Quotient {
    quotient: i64,
}

/// `{"a": i64, "b": i64}` -> `{"quotient": a / b}`, rounded toward zero.
/// Logs one info line per call; `b == 0` fails with INVALID_ARGUMENT.
fn divide(args: DivideArgs) -> Result<Quotient, Error> {
    let DivideArgs { a, b } = args;
    info!("divide {} by {}", a, b);
    if b == 0 {
        return Err(Error::invalid_argument("b must not be 0"));
    }
    // The one quotient that does not fit: i64::MIN / -1.
    let quotient =
        a.checked_div(b).ok_or_else(|| Error::out_of_range(format!("{} / {} overflows", a, b)))?;
    Ok(Quotient { quotient })
}

/// `panic` input.
#[derive(Deserialize)]
struct PanicArgs {
    #[serde(default)]
    message: Option<String>,
}

/// Panics on purpose, with `message` if given: a trap (INTERNAL for the
/// caller, the instance dropped) for the tests of traps. The kit's panic
/// hook logs the message at error level first.
fn panic(args: PanicArgs) -> Result<(), Error> {
    panic!("{}", args.message.as_deref().unwrap_or("panic requested"));
}

// ---------------------------------------------------------------------------
// Streaming JSON visitors. json_echo and json_stats do not build a
// serde_json::Value: a tree costs ~24 bytes per value plus Vec doubling, and
// 10 MB of small numbers (5 million values) then needs more than 256 MiB.
// These visitors act on each value as serde_json parses it, so memory is the
// input plus the output. Recursion follows the parser's, which serde_json
// limits to 128 levels of nesting (deeper input is an error: INVALID_ARGUMENT).
// ---------------------------------------------------------------------------

/// Copies one JSON value to `out` as compact JSON while it is parsed.
/// Scalars go through serde_json's own writer, so numbers and string escapes
/// come out exactly as `serde_json::to_vec(&Value)` would write them; object
/// keys keep their order (and duplicates), unlike a `Value` map.
struct Echo<'a> {
    out: &'a mut Vec<u8>,
    /// Written just before the value, once the parser has found one:
    /// `,` between items, `:` between a key and its value.
    sep: Option<u8>,
}

impl Echo<'_> {
    fn scalar<T: Serialize, E>(self, value: T) -> Result<(), E> {
        serde_json::to_writer(&mut *self.out, &value).expect("serialize output");
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Echo<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        if let Some(sep) = self.sep {
            self.out.push(sep);
        }
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Echo<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.scalar(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.scalar(v)
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.scalar(v)
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.scalar(v)
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.scalar(v)
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.scalar(v)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut sep = None;
        while seq.next_element_seed(Echo { out: &mut *self.out, sep })?.is_some() {
            sep = Some(b',');
        }
        self.out.push(b']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.out.push(b'{');
        let mut sep = None;
        while map.next_key_seed(Echo { out: &mut *self.out, sep })?.is_some() {
            map.next_value_seed(Echo { out: &mut *self.out, sep: Some(b':') })?;
            sep = Some(b',');
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// Counts one JSON value and every value inside it into `values` while it
/// is parsed, and returns its depth (scalar or empty container 1, container
/// 1 + deepest child). Object keys are not values.
struct Count<'a> {
    values: &'a mut u64,
}

impl Count<'_> {
    fn scalar<E>(self) -> Result<u64, E> {
        *self.values += 1;
        Ok(1)
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<u64, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<u64, E> {
        self.scalar()
    }
    fn visit_bool<E>(self, _: bool) -> Result<u64, E> {
        self.scalar()
    }
    fn visit_i64<E>(self, _: i64) -> Result<u64, E> {
        self.scalar()
    }
    fn visit_u64<E>(self, _: u64) -> Result<u64, E> {
        self.scalar()
    }
    fn visit_f64<E>(self, _: f64) -> Result<u64, E> {
        self.scalar()
    }
    fn visit_str<E>(self, _: &str) -> Result<u64, E> {
        self.scalar()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        *self.values += 1;
        let mut deepest = 0;
        while let Some(depth) = seq.next_element_seed(Count { values: &mut *self.values })? {
            deepest = deepest.max(depth);
        }
        Ok(1 + deepest)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        *self.values += 1;
        let mut deepest = 0;
        while map.next_key::<IgnoredAny>()?.is_some() {
            deepest = deepest.max(map.next_value_seed(Count { values: &mut *self.values })?);
        }
        Ok(1 + deepest)
    }
}

// ---------------------------------------------------------------------------
// Alloc ABI functions: images. The kit has checked that `pixels` holds
// exactly width*height*channels bytes before any of these runs.
// ---------------------------------------------------------------------------

/// `image_stats` output. `mean` is `null` per channel for an empty image.
#[derive(Serialize)]
struct ImageStats {
    width: u32,
    height: u32,
    mean: [Option<f64>; 3],
    // A Vec, not [u64; 256]: serde serializes arrays of at most 32 items.
    histogram: Vec<u64>,
}

/// RGB8 pixels -> per-channel mean and a 256-bin histogram of the integer
/// luma `(77r + 150g + 29b) >> 8`. Reads the borrowed pixels in place: no
/// copy, so a 4K frame needs no extra memory.
fn image_stats(img: ImageRef) -> Result<ImageStats, Error> {
    let pixel_count = img.pixel_count();
    let mut sums = [0u64; 3];
    let mut histogram = vec![0u64; 256];
    for px in img.pixels.chunks_exact(3) {
        let (r, g, b) = (px[0] as u32, px[1] as u32, px[2] as u32);
        sums[0] += r as u64;
        sums[1] += g as u64;
        sums[2] += b as u64;
        // At most (77 + 150 + 29) * 255 >> 8 = 255: always a valid bin.
        histogram[((77 * r + 150 * g + 29 * b) >> 8) as usize] += 1;
    }
    let mean =
        sums.map(|s| if pixel_count == 0 { None } else { Some(s as f64 / pixel_count as f64) });
    Ok(ImageStats { width: img.width, height: img.height, mean, histogram })
}

/// `image_checksum` output.
#[derive(Serialize)]
struct ImageChecksum {
    width: u32,
    height: u32,
    sum: u64,
}

/// 16-byte vectors added into 16-bit lanes before they are widened: each
/// vector adds at most 2 * 255 per lane, and 128 * 510 = 65,280 fits.
const VECTORS_PER_WIDEN: usize = 128;

/// The sum of all bytes, 16 at a time with wasm SIMD (simd128, which every
/// wasmtime supports): pairs of bytes are added into eight 16-bit lanes, which
/// are widened into four 32-bit lanes every 128 vectors and into the u64 sum
/// every 128 widenings (128 * 128 * 4 * 255 < 2^32).
#[target_feature(enable = "simd128")]
unsafe fn byte_sum(bytes: &[u8]) -> u64 {
    use core::arch::wasm32::*;
    let mut vectors = bytes.chunks_exact(16);
    let (mut sum, mut wide, mut narrow) = (0u64, u32x4_splat(0), u16x8_splat(0));
    let (mut narrow_count, mut wide_count) = (0usize, 0usize);
    for vector in &mut vectors {
        let v = v128_load(vector.as_ptr() as *const v128);
        narrow = u16x8_add(narrow, u16x8_extadd_pairwise_u8x16(v));
        narrow_count += 1;
        if narrow_count == VECTORS_PER_WIDEN {
            wide = u32x4_add(wide, u32x4_extadd_pairwise_u16x8(narrow));
            narrow = u16x8_splat(0);
            narrow_count = 0;
            wide_count += 1;
            if wide_count == VECTORS_PER_WIDEN {
                sum += lanes_sum(wide);
                wide = u32x4_splat(0);
                wide_count = 0;
            }
        }
    }
    wide = u32x4_add(wide, u32x4_extadd_pairwise_u16x8(narrow));
    sum += lanes_sum(wide);
    sum + vectors.remainder().iter().map(|&b| b as u64).sum::<u64>()
}

#[target_feature(enable = "simd128")]
unsafe fn lanes_sum(v: core::arch::wasm32::v128) -> u64 {
    use core::arch::wasm32::u32x4_extract_lane;
    u32x4_extract_lane::<0>(v) as u64
        + u32x4_extract_lane::<1>(v) as u64
        + u32x4_extract_lane::<2>(v) as u64
        + u32x4_extract_lane::<3>(v) as u64
}

/// RGB8 pixels -> the sum of all their bytes: the least work that still reads
/// every pixel, to measure how fast images reach a guest (bench/images_grpc.py).
fn image_checksum(img: ImageRef) -> Result<ImageChecksum, Error> {
    // Safety: byte_sum only needs simd128, which wasmtime always supports; an
    // engine without it would refuse to load the module, not run it.
    let sum = unsafe { byte_sum(img.pixels) };
    Ok(ImageChecksum { width: img.width, height: img.height, sum })
}

/// Any format -> GRAY8 of the same size: `(77r + 150g + 29b + 128) >> 8`
/// (rounded; alpha ignored), or the pixels unchanged if they are GRAY8.
fn grayscale(img: ImageRef) -> Result<Image, Error> {
    let gray = match img.format {
        PixelFormat::Gray8 => img.pixels.to_vec(),
        PixelFormat::Rgb8 | PixelFormat::Rgba8 => img
            .pixels
            .chunks_exact(img.channels())
            .map(|px| {
                let (r, g, b) = (px[0] as u32, px[1] as u32, px[2] as u32);
                // At most (256 * 255 + 128) >> 8 = 255: always fits a u8.
                ((77 * r + 150 * g + 29 * b + 128) >> 8) as u8
            })
            .collect(),
    };
    Image::new(gray, img.width, img.height, PixelFormat::Gray8)
}

/// RGB8 -> RGB8: a 3x3 box blur per channel, edges clamped (a pixel outside
/// the image is its nearest edge pixel), `out = (sum of 9 samples + 4) / 9`.
///
/// Separable: each row's horizontal 3-sums are computed once and kept in a
/// ring of three rows, so memory is the output plus three rows of u16
/// (9 * 255 + 4 = 2,299 fits).
fn box_blur(img: ImageRef) -> Result<Image, Error> {
    let (width, height) = (img.width as usize, img.height as usize);
    let stride = width * 3;
    let mut out = vec![0u8; img.pixels.len()];
    if width > 0 && height > 0 {
        let row_sums = |y: usize, sums: &mut [u16]| {
            let row = &img.pixels[y * stride..(y + 1) * stride];
            for x in 0..width {
                let (left, right) = (x.saturating_sub(1), (x + 1).min(width - 1));
                for c in 0..3 {
                    sums[x * 3 + c] = row[left * 3 + c] as u16
                        + row[x * 3 + c] as u16
                        + row[right * 3 + c] as u16;
                }
            }
        };
        let (mut above, mut middle, mut below) =
            (vec![0u16; stride], vec![0u16; stride], vec![0u16; stride]);
        row_sums(0, &mut middle);
        above.copy_from_slice(&middle); // row -1 clamps to row 0
        for (y, out_row) in out.chunks_exact_mut(stride).enumerate() {
            row_sums((y + 1).min(height - 1), &mut below);
            for (i, value) in out_row.iter_mut().enumerate() {
                *value = ((above[i] + middle[i] + below[i] + 4) / 9) as u8;
            }
            // Move the window down a row: above <- middle <- below.
            std::mem::swap(&mut above, &mut middle);
            std::mem::swap(&mut middle, &mut below);
        }
    }
    Image::new(out, img.width, img.height, PixelFormat::Rgb8)
}
