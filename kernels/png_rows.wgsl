// PNG scanlines of the VAE's image, on the GPU: x [1, 3, H, W] (values in [-1, 1]) → per image row
// its filter-type byte 1 (Sub), then the row's 3·W RGB8 bytes, each minus the same channel of the
// pixel to its left (mod 256) — the bytes src/png.ts's `pixelScanlines(chwToHwc01(x))` makes on
// the CPU (SCANLINE_FILTER there owns the choice of filter). Only these H·(1 + 3W) bytes and one
// word of status come back to the CPU (0.79 MB at 512×512 instead of the 3.1 MB f32 image).
//
// Variants (name = pipeline-cache key and profiler label): png_rows_<T>, T = f32 or f16.
//
// Work decomposition: one invocation per output u32 word (4 bytes; a row of 1 + 3W bytes is not a
// multiple of 4, so a word may span two rows): each invocation works out, for its 4 byte
// offsets, the row, the pixel and the channel, and loads the pixel and its left neighbour (reads
// are cached: at most 8 loads a word, 3 channel planes apart). 256 invocations a workgroup, on
// the 1-D grid of common/grid1d.wgsl. The words are little-endian (byte k at bits 8k), as WGSL
// stores u32 in host-shareable memory.
//
// Precision, matching the CPU path bit for bit:
//   v = clamp(x·0.5 + 0.5, 0, 1) in f32 — x·0.5 is exact (x/2 would be a 2.5-ULP division in
//       WGSL), so the sum is rounded once, as the CPU's Float32Array store of `x / 2 + 0.5` is
//       (double rounding through f64 is innocuous for a sum of two f32s);
//   byte = round(v·255) — the product rounded to f32 (WGSL's f32 multiply is correctly rounded,
//       as Math.fround is), then WGSL's round(), which rounds halves to even like numpy and
//       ECMAScript's ToUint8Clamp.
//   f16 input is read as u32 pairs and widened by bit manipulation (exact, subnormals included:
//       a GPU that flushes f16 subnormals in its conversion would turn −3e-5 into 0 and the byte
//       127 into 128), so the kernel needs no shader-f16.
// NaN/Inf: detected by bits (exponent all ones; `x != x` may be folded away by a compiler); the
// smallest CHW index of such a value is kept with atomicMin in `out.first_bad` (initialised to
// 0xffffffff by the host), so the host reports the same index as a CPU scan of the CHW image. The
// bytes of such an image are not used.

struct Params {
  words: u32,   // output words, ⌈bytes / 4⌉
  bytes: u32,   // output bytes, H·(1 + 3W)
  width: u32,   // W, pixels
  plane: u32,   // H·W, elements of one channel plane
}

struct Out {
  first_bad: atomic<u32>,  // smallest CHW index of a NaN/Inf, else 0xffffffff
  rows: array<u32>,        // the scanlines, 4 bytes a word
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;  // f32 bits, or two f16 a word
@group(0) @binding(2) var<storage, read_write> out: Out;

#include "grid1d.wgsl"

// Element e of x (CHW index) as f32; a NaN/Inf is recorded and read as 0.
fn load(e: u32) -> f32 {
#if F16
  let h = (x[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu;
  let exponent = (h >> 10u) & 0x1fu;
  let mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) {
    atomicMin(&out.first_bad, e);
    return 0.0;
  }
  if (exponent == 0u) {  // zero or subnormal: mantissa · 2^-24, exact in f32
    let m = ldexp(f32(mantissa), -24);
    return select(m, -m, (h & 0x8000u) != 0u);
  }
  return bitcast<f32>(((h & 0x8000u) << 16u) | ((exponent + 112u) << 23u) | (mantissa << 13u));
#else
  let bits = x[e];
  if ((bits & 0x7f800000u) == 0x7f800000u) {
    atomicMin(&out.first_bad, e);
    return 0.0;
  }
  return bitcast<f32>(bits);
#endif
}

// The RGB8 byte of element e: round(clamp(x/2 + 0.5, 0, 1)·255).
fn rgb8(e: u32) -> u32 {
  let v = clamp(load(e) * 0.5 + 0.5, 0.0, 1.0);
  return u32(round(v * 255.0));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = grid1d_index(gid, nwg, 256u);
  if (i >= p.words) { return; }
  let stride = 1u + 3u * p.width;  // bytes a row
  var word = 0u;
  for (var k = 0u; k < 4u; k++) {
    let b = 4u * i + k;
    if (b >= p.bytes) { break; }
    let y = b / stride;
    let c = b - y * stride;
    var v = 1u;  // c = 0: the row's filter type, 1 (Sub)
    if (c > 0u) {
      let px = (c - 1u) / 3u;
      let ch = c - 1u - 3u * px;
      let e = ch * p.plane + y * p.width + px;
      v = rgb8(e);
      if (px > 0u) { v = (v - rgb8(e - 1u)) & 0xffu; }
    }
    word |= v << (8u * k);
  }
  out.rows[i] = word;
}
