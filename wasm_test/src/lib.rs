//! Test guest for wasmtube, speaking two calling conventions (see README.md).
//!
//! Seed ABI (`echo`, `hello`, `image_size`, `busy`): the host writes the
//! input bytes into linear memory at `offset` (42 by default) and calls a
//! function with `(offset, len, ...)`. The function writes its JSON output at
//! the same offset, over its input, and returns the output's length in bytes.
//!
//! Alloc ABI (`json_echo`, `json_stats`, `image_stats`), for large payloads:
//! the host gets an input buffer from `wasmtube_alloc`, calls
//! `f(ptr, len, ...) -> i64`, and receives `(out_ptr << 32) | out_len`, a JSON
//! buffer it frees with `wasmtube_free` once read. It frees the input the same
//! way: the function only borrows it.
//!
//! In both ABIs any error (bad UTF-8/JSON, missing field, bad image size)
//! panics, and with `panic = "abort"` on wasm32 that is an `unreachable`
//! trap: neither ABI has an error convention, so a trap is the only honest
//! way to fail.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::alloc::Layout;
use std::fmt;

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
#[no_mangle]
pub unsafe extern "C" fn busy(offset: i32, len: i32) -> i32 {
    let args: BusyArgs = serde_json::from_slice(input(offset, addr(len))).expect("busy: bad input");
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
    write_output(offset, &BusyResult { value: x })
}

// ---------------------------------------------------------------------------
// Alloc ABI plumbing. Every buffer that crosses the boundary, in either
// direction, is a plain allocation of `len` bytes with alignment 1, so one
// `wasmtube_free(ptr, len)` can release both kinds with the same Layout.
// Pointers and lengths are 32-bit unsigned values carried in i32s.
// ---------------------------------------------------------------------------

/// The one layout of every alloc-ABI buffer: `len` bytes, alignment 1.
/// `None` only for a size no allocation can have (over isize::MAX).
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
        // Null (allocator out of memory) becomes 0 by the cast.
        Some(layout) => unsafe { std::alloc::alloc(layout) as usize as i32 },
        None => 0,
    }
}

/// Free `len` bytes at `ptr` that came from `wasmtube_alloc` or that a
/// function returned as its output. `ptr == 0` or `len == 0` is a no-op
/// (nothing was allocated: a failed or empty allocation).
///
/// Safety: the host must pass back exactly a pointer and length it got from
/// this module, once. Outputs are `Box<[u8]>`, whose layout is also
/// `(len, 1)`, so this matches how they were allocated.
#[no_mangle]
pub unsafe extern "C" fn wasmtube_free(ptr: i32, len: i32) {
    if ptr == 0 || len == 0 {
        return;
    }
    if let Some(layout) = buffer_layout(addr(len)) {
        std::alloc::dealloc(addr(ptr) as *mut u8, layout);
    }
}

/// Borrow the host's `len`-byte input at `ptr`. The function does not own it:
/// the host frees it with `wasmtube_free` after the call.
///
/// Safety: the host guarantees it wrote `len` bytes at `ptr`.
unsafe fn borrowed_input<'a>(ptr: i32, len: i32) -> &'a [u8] {
    let len = addr(len);
    if len == 0 {
        // `wasmtube_alloc(0)` returns 0, and a slice may not start at null,
        // even an empty one.
        return &[];
    }
    addr(ptr).checked_add(len).expect("input runs past the address space");
    core::slice::from_raw_parts(addr(ptr) as *const u8, len)
}

/// Hand `bytes` to the host as `(ptr << 32) | len`. The Vec becomes a
/// `Box<[u8]>` first: that drops any spare capacity, so the allocation is
/// exactly `len` bytes with alignment 1 and `wasmtube_free(ptr, len)` can
/// release it. It is leaked here; the host owns it now.
fn pack_output(bytes: Vec<u8>) -> i64 {
    let len = bytes.len() as u64;
    let ptr = Box::into_raw(bytes.into_boxed_slice()) as *mut u8 as usize as u64;
    ((ptr << 32) | len) as i64
}

/// Serialize `value` as compact JSON and hand it to the host.
fn json_output<T: Serialize>(value: &T) -> i64 {
    pack_output(serde_json::to_vec(value).expect("serialize output"))
}

/// Run `seed` over the borrowed input as one JSON document, as the parser
/// goes, and reject trailing non-whitespace like `serde_json::from_slice`
/// does. `msg` is the panic message for bad input.
unsafe fn parse_with<'de, S: DeserializeSeed<'de>>(
    ptr: i32,
    len: i32,
    seed: S,
    msg: &'static str,
) -> S::Value {
    let mut de = serde_json::Deserializer::from_slice(borrowed_input(ptr, len));
    let result = seed.deserialize(&mut de).expect(msg);
    de.end().expect(msg);
    result
}

// ---------------------------------------------------------------------------
// Streaming JSON visitors. json_echo and json_stats do not build a
// serde_json::Value: a tree costs ~24 bytes per value plus Vec doubling, and
// 10 MB of small numbers (5 million values) then needs more than 256 MiB.
// These visitors act on each value as serde_json parses it, so memory is the
// input plus the output. Recursion follows the parser's, which serde_json
// limits to 128 levels of nesting (deeper input is an error, hence a trap).
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
// Alloc ABI functions.
// ---------------------------------------------------------------------------

/// Any JSON -> the same value, compact. Built to carry documents of many MB.
#[no_mangle]
pub unsafe extern "C" fn json_echo(ptr: i32, len: i32) -> i64 {
    // Compact output is usually no longer than the input: reserving that much
    // avoids the doubling reallocations (and their peak) of a growing Vec.
    let mut out = Vec::with_capacity(addr(len));
    parse_with(ptr, len, Echo { out: &mut out, sep: None }, "json_echo: bad input");
    pack_output(out)
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
#[no_mangle]
pub unsafe extern "C" fn json_stats(ptr: i32, len: i32) -> i64 {
    let mut values = 0;
    let max_depth = parse_with(ptr, len, Count { values: &mut values }, "json_stats: bad input");
    json_output(&JsonStats { bytes: addr(len) as u64, values, max_depth })
}

/// `image_stats` output. `mean` is `null` per channel for an empty image.
#[derive(Serialize)]
struct ImageStats<'a> {
    width: u32,
    height: u32,
    mean: [Option<f64>; 3],
    histogram: &'a [u64],
}

/// RGB8 pixels (`width*height*3` bytes, row-major) -> per-channel mean and a
/// 256-bin histogram of the integer luma `(77r + 150g + 29b) >> 8`. Reads the
/// borrowed pixels in place: no copy, so a 4K frame needs no extra memory.
#[no_mangle]
pub unsafe extern "C" fn image_stats(ptr: i32, len: i32, width: i32, height: i32) -> i64 {
    let pixel_count =
        addr(width).checked_mul(addr(height)).expect("image_stats: width*height overflows");
    let n = pixel_count.checked_mul(3).expect("image_stats: width*height*3 overflows");
    assert!(n == addr(len), "image_stats: len is not width*height*3");
    let mut sums = [0u64; 3];
    let mut histogram = [0u64; 256];
    for px in borrowed_input(ptr, len).chunks_exact(3) {
        let (r, g, b) = (px[0] as u32, px[1] as u32, px[2] as u32);
        sums[0] += r as u64;
        sums[1] += g as u64;
        sums[2] += b as u64;
        // At most (77 + 150 + 29) * 255 >> 8 = 255: always a valid bin.
        histogram[((77 * r + 150 * g + 29 * b) >> 8) as usize] += 1;
    }
    let mean =
        sums.map(|s| if pixel_count == 0 { None } else { Some(s as f64 / pixel_count as f64) });
    json_output(&ImageStats {
        width: width as u32,
        height: height as u32,
        mean,
        histogram: &histogram,
    })
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
#[no_mangle]
pub unsafe extern "C" fn image_checksum(ptr: i32, len: i32, width: i32, height: i32) -> i64 {
    let n = addr(width)
        .checked_mul(addr(height))
        .and_then(|pixels| pixels.checked_mul(3))
        .expect("image_checksum: width*height*3 overflows");
    assert!(n == addr(len), "image_checksum: len is not width*height*3");
    let sum = byte_sum(borrowed_input(ptr, len));
    json_output(&ImageChecksum { width: width as u32, height: height as u32, sum })
}
