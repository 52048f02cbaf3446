// Winograd F(2×2, 3×3) convolution (Lavin & Gray 2015) for 3×3, stride-1, padding-1 convolutions
// in NCHW: every 2×2 output tile comes from a 4×4 input tile d (rows 2ty − 1 … 2ty + 2, columns
// 2tx − 1 … 2tx + 2, zero outside the image) as
//   Y = Aᵀ [ Σ_c (G g_{o,c} Gᵀ) ⊙ (Bᵀ d_c B) ] A
// with  Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//       Aᵀ = [1 1 1 0; 0 1 −1 −1].
// Indexing the 16 positions of a 4×4 transformed tile by ξ = 4·row + column, the sum over c is 16
// independent GEMMs  M[ξ] [O × P] = U[ξ] [O × C] · V[ξ] [C × P]  over the P tiles of the batch.
//
// Four kernels (one per specialization):
//   WEIGHT_TRANSFORM  (once per weight, at load): U[ξ][c][o] = (G g_{o,c} Gᵀ)[ξ], stored
//                     [16, Cp, Op] with Cp = C rounded up to BK = 16 and Op = O rounded up to 64,
//                     zero padded, so that the GEMM needs no bounds checks. One invocation per
//                     (o, c); grid (Op/64, Cp).
//   INPUT_TRANSFORM   V[ξ][c][p] = (Bᵀ d_{c,p} B)[ξ] for the tiles p0 … p0 + Pp − 1 of one chunk,
//                     stored [16, Cp, Pp] (Pp = chunk width, a multiple of the GEMM's BN; rows
//                     c ≥ C and tiles past the end are written as zeros). One invocation per
//                     (p, c); grid (⌈Pp/64⌉, Cp).
//   GEMM              M[ξ] = U[ξ] · V[ξ], stored [16, Op, Pp]. A workgroup of 256 invocations
//                     (16 × 16) computes a BM × BN tile (BM = 64 output channels, BN = 64 or 128
//                     tiles: TN8) of one ξ = workgroup_id.z; grid (Pp/BN, Op/64, 16). The C loop
//                     walks BK = 16 at a time with vec4 loads (U along o, V along p, both
//                     contiguous: no transposes), the next step's loads issued before this step's
//                     arithmetic, and a 4 × 4 (or 4 × 8) register block per invocation from vec4
//                     reads of workgroup memory: rows ty·4 + 0..3, columns (tx + j·16)·4 + 0..3.
//                     On an H200 (f16 model, f32 arithmetic) 64 × 128 ran the GEMM at 25–30
//                     TFLOP/s (42–51 TFLOP/s in direct-convolution FLOPs for the whole Winograd
//                     convolution at UNet/VAE shapes); 128 × 64 and 128 × 128 were slower.
//   OUTPUT_TRANSFORM  y[b, o, 2ty + r, 2tx + q] = act((Aᵀ m A)[r][q] + bias[o]) + residual, m[ξ] =
//                     M[ξ][o][p]; one invocation per (p, o); grid (⌈Pc/64⌉, O).
//
// Precision: T (f32 | f16) is the storage type of x, w, bias, residual, y and U. U = G g Gᵀ only
// averages weights (|U| ≤ 2.25·max|g|): as safe in f16 as the weights themselves. V (inputs
// amplified up to 4×) and M (sums over C of products, up to 9× a direct conv's partial sums) are
// kept in f32, so f16 activations that are large — the VAE decoder's — cannot overflow in the
// transformed domain; all arithmetic is f32 (the GEMM's products in f16 under ACC16C, below) and
// y is rounded to T once.
//
// ACC16C (GEMM only, f16 models, label _acc16c; src/ops/conv2d.ts `winogradChunked` decides: the
// F(2×2) GEMM under `accumulate: "chunked"`): As and Bs hold f16 — U as stored, V scaled by
// V_SCALE = 1/4 (exact) so that it cannot overflow: F(2×2)'s Bᵀ rows have |entries| summing to 2,
// so |V| ≤ 4·max|x| ≤ 4·65504, and |V|/4 fits f16 for any f16 input. Each step's BK = 16 products
// are summed in f16 (h00, h01: mat4x4<f16>), then scaled back by 4 and added into the f32 block
// (c00, c01): the f16 error is that of a 16-term sum whatever C is. Half the workgroup memory
// (4 or 6 KiB instead of 8 or 12). F(4×4) keeps this GEMM in f32: its Bᵀ rows sum to 10, so V
// reaches 100·|x| (10⁶ at |x| = 10⁴) and a scale that keeps that in range (1/128) would push
// ordinary values into f16's subnormals.
// ACC0 / ACC1 / RANK1 name what the inner loop sums into (c00 / c01 with rank1, or h00 / h01 with
// rank1_f16), WS the workgroup-memory type. Measured error (f16 storage, rel L2 vs f64 at UNet
// shapes; tests/conv2d_test.ts): F(2×2) f32 ≤ 3.5e-4, F(2×2) ACC16C ≤ 9.6e-4 at |x| ≈ 1 to 1e4
// and ≤ 2.0e-3 at |x| ≈ 1e-2 (products in f16's subnormals), F(4×4) f32 ≤ 1.8e-3.
//
// Specializations (pipeline-cache key / profiler label):
//   winograd_weight_transform_<T>, winograd_input_transform_<T>, winograd_gemm_<T>[_acc16c]_64x<BN>,
//   winograd_output_transform_<T>[_bias][_residual][_silu]

struct Params {
  C: u32,    // input channels
  H: u32,    // image height (pixels; input and output)
  W: u32,    // image width (pixels)
  O: u32,    // output channels
  Cp: u32,   // C rounded up to 16 (rows of U[ξ] and V[ξ])
  Op: u32,   // O rounded up to 64 (columns of U[ξ], rows of M[ξ])
  P: u32,    // tiles of the whole batch = B·⌈H/2⌉·⌈W/2⌉
  p0: u32,   // first tile of this chunk
  Pc: u32,   // tiles in this chunk (≤ Pp)
  Pp: u32,   // chunk width of V and M (multiple of 64)
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Used by the input and output transforms (an include is expanded once per file, above the #ifs).
#include "winograd_tile_origin.wgsl"

#if WEIGHT_TRANSFORM
@group(0) @binding(1) var<storage, read> w: array<${T}>;        // [O, C, 3, 3]
@group(0) @binding(2) var<storage, read_write> u: array<${T}>;  // [16, Cp, Op]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o = gid.x;
  let c = gid.y;
  if (o >= p.Op) {
    return;
  }
  var g: array<vec3<f32>, 3>;
  if (o < p.O && c < p.C) {
    let base = (o * p.C + c) * 9u;
    for (var r = 0u; r < 3u; r++) {
      let i = base + 3u * r;
      g[r] = vec3<f32>(f32(w[i]), f32(w[i + 1u]), f32(w[i + 2u]));
    }
  }
  // s = G g (4 × 3), then U = s Gᵀ (4 × 4).
  let s = array<vec3<f32>, 4>(g[0], 0.5 * (g[0] + g[1] + g[2]), 0.5 * (g[0] - g[1] + g[2]), g[2]);
  for (var r = 0u; r < 4u; r++) {
    let v = s[r];
    let row = vec4<f32>(v.x, 0.5 * (v.x + v.y + v.z), 0.5 * (v.x - v.y + v.z), v.z);
    for (var q = 0u; q < 4u; q++) {
      u[((4u * r + q) * p.Cp + c) * p.Op + o] = ${T}(row[q]);
    }
  }
}
#endif

#if INPUT_TRANSFORM
@group(0) @binding(1) var<storage, read> x: array<${T}>;         // [B, C, H, W]
@group(0) @binding(2) var<storage, read_write> v: array<f32>;    // [16, Cp, Pp]

#include "winograd_load_x.wgsl"

// Row iy, columns x0 … x0 + 3 of the channel plane at base, 0 outside the image.
fn load_row(base: u32, iy: i32, x0: i32) -> vec4<f32> {
  if (iy < 0 || iy >= i32(p.H)) {
    return vec4<f32>(0.0);
  }
  let row = base + u32(iy) * p.W;
  return vec4<f32>(load_x(row, x0), load_x(row, x0 + 1), load_x(row, x0 + 2), load_x(row, x0 + 3));
}

// Row r of V = t B for the row e of t = Bᵀ d: V[4r … 4r + 3] at idx, idx + step, … .
fn store_v(e: vec4<f32>, idx: u32, step: u32) {
  v[idx] = e.x - e.z;
  v[idx + step] = e.y + e.z;
  v[idx + 2u * step] = e.z - e.y;
  v[idx + 3u * step] = e.y - e.w;
}

// Written out without loops over function-scope arrays, so that d and t stay in registers.
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let pl = gid.x;  // tile within the chunk
  let c = gid.y;
  if (pl >= p.Pp) {
    return;
  }
  let pg = p.p0 + pl;
  var d0 = vec4<f32>(0.0);
  var d1 = vec4<f32>(0.0);
  var d2 = vec4<f32>(0.0);
  var d3 = vec4<f32>(0.0);
  if (c < p.C && pl < p.Pc && pg < p.P) {
    let t = tile_origin(pg, 2u);
    let b = t.x;
    let y0 = i32(t.y) - 1;
    let x0 = i32(t.z) - 1;
    let base = (b * p.C + c) * p.H * p.W;
    d0 = load_row(base, y0, x0);
    d1 = load_row(base, y0 + 1, x0);
    d2 = load_row(base, y0 + 2, x0);
    d3 = load_row(base, y0 + 3, x0);
  }
  // t = Bᵀ d (rows), then V = t B (columns); ξ = 4·row + column is Cp·Pp elements apart.
  let step = p.Cp * p.Pp;
  let idx = c * p.Pp + pl;
  store_v(d0 - d2, idx, step);
  store_v(d1 + d2, idx + 4u * step, step);
  store_v(d2 - d1, idx + 8u * step, step);
  store_v(d1 - d3, idx + 12u * step, step);
}
#endif

#if GEMM
@group(0) @binding(1) var<storage, read> u: array<vec4<${T}>>;   // [16, Cp, Op]
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;    // [16, Cp, Pp]
@group(0) @binding(3) var<storage, read_write> m: array<vec4<f32>>;  // [16, Op, Pp]

const BM = 64u;           // output channels per workgroup
const BN = 16u * ${TN}u;  // tiles per workgroup (64 or 128)
const BK = 16u;
const AV = BM / 4u;  // vec4 per row of As
const BV = BN / 4u;  // vec4 per row of Bs

var<workgroup> As: array<vec4<${WS}>, BK * AV>;  // As[kk][o]
var<workgroup> Bs: array<vec4<${WS}>, BK * BV>;  // Bs[kk][p]

#include "rank1.wgsl"

#if ACC16C
const V_SCALE = 0.25;  // V in f16 workgroup memory is V · V_SCALE (see ACC16C above)

// rank1 in f16: the chunk's products.
fn rank1_f16(c: mat4x4<f16>, a: vec4<f16>, b: vec4<f16>) -> mat4x4<f16> {
  return mat4x4<f16>(
    fma(vec4<f16>(a.x), b, c[0]),
    fma(vec4<f16>(a.y), b, c[1]),
    fma(vec4<f16>(a.z), b, c[2]),
    fma(vec4<f16>(a.w), b, c[3]),
  );
}

// c + h / V_SCALE: a chunk's f16 sums into the f32 block.
fn add_chunk(c: mat4x4<f32>, h: mat4x4<f16>) -> mat4x4<f32> {
  let s = 1.0 / V_SCALE;
  return mat4x4<f32>(
    fma(vec4<f32>(h[0]), vec4<f32>(s), c[0]),
    fma(vec4<f32>(h[1]), vec4<f32>(s), c[1]),
    fma(vec4<f32>(h[2]), vec4<f32>(s), c[2]),
    fma(vec4<f32>(h[3]), vec4<f32>(s), c[3]),
  );
}
#endif

// Stores the 4 × 4 block c: rows o … o + 3, tile columns as the vec4 at index col of M[ξ][o].
fn store_block(c: mat4x4<f32>, row: u32, col: u32, ppv: u32) {
  m[row * ppv + col] = c[0];
  m[(row + 1u) * ppv + col] = c[1];
  m[(row + 2u) * ppv + col] = c[2];
  m[(row + 3u) * ppv + col] = c[3];
}

// The register block is written out (no loops over function-scope arrays) so that it stays in
// registers whatever the driver's loop unrolling does; TN8 adds the second column half.
@compute @workgroup_size(256)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let xi = wg.z;
  let n0 = wg.x * BN;
  let o0 = wg.y * BM;
  let tx = tid % 16u;
  let ty = tid / 16u;
  let opv = p.Op / 4u;
  let ppv = p.Pp / 4u;
  let ub = xi * p.Cp * opv + o0 / 4u + (tid / AV) * opv + tid % AV;  // U[ξ][kk][o0 + …]
  let vb = xi * p.Cp * ppv + n0 / 4u + (tid / BV) * ppv + tid % BV;  // V[ξ][kk][n0 + …]
  let vba = (256u / BV) * ppv;  // second load of a step: 256 vec4 further in Bs

  var ra0: vec4<${WS}>;
  var rb0: vec4<${WS}>;
  var c00: mat4x4<f32>;
#if TN8
  var rb1: vec4<${WS}>;
  var c01: mat4x4<f32>;
#endif
#if ACC16C
  // One step's f16 sums, zeroed after each is added into c00 / c01 (declared here: a `var` in the
  // loop body was not re-zeroed per iteration on llvmpipe through naga's SPIR-V).
  var h00: mat4x4<f16>;
#if TN8
  var h01: mat4x4<f16>;
#endif
#endif

  let steps = p.Cp / BK;
  for (var t = 0u; t <= steps; t++) {
    if (t > 0u) {
      workgroupBarrier();
      As[tid] = ra0;
      Bs[tid] = rb0;
#if TN8
      Bs[tid + 256u] = rb1;
#endif
      workgroupBarrier();
    }
    if (t < steps) {
      let ka = t * BK * opv;
      let kb = t * BK * ppv;
      ra0 = vec4<${WS}>(u[ub + ka]);
#if ACC16C
      rb0 = vec4<f16>(v[vb + kb] * V_SCALE);
#if TN8
      rb1 = vec4<f16>(v[vb + kb + vba] * V_SCALE);
#endif
#else
      rb0 = v[vb + kb];
#if TN8
      rb1 = v[vb + kb + vba];
#endif
#endif
    }
    if (t > 0u) {
      for (var kk = 0u; kk < BK; kk++) {
        let a0 = As[kk * AV + ty];
        let b0 = Bs[kk * BV + tx];
        ${ACC0} = ${RANK1}(${ACC0}, a0, b0);
#if TN8
        let b1 = Bs[kk * BV + tx + 16u];
        ${ACC1} = ${RANK1}(${ACC1}, a0, b1);
#endif
      }
#if ACC16C
      c00 = add_chunk(c00, h00);
      h00 = mat4x4<f16>();
#if TN8
      c01 = add_chunk(c01, h01);
      h01 = mat4x4<f16>();
#endif
#endif
    }
  }

  let mb = (xi * p.Op + o0) * ppv + n0 / 4u;
  store_block(c00, ty * 4u, mb + tx, ppv);
#if TN8
  store_block(c01, ty * 4u, mb + tx + 16u, ppv);
#endif
}
#endif

#if OUTPUT_TRANSFORM
@group(0) @binding(1) var<storage, read> m: array<f32>;  // [16, Op, Pp]
#if BIAS
@group(0) @binding(${BIND_BIAS}) var<storage, read> bias: array<${T}>;
#endif
#if RESIDUAL
@group(0) @binding(${BIND_RES}) var<storage, read> res: array<${T}>;
#endif
@group(0) @binding(${BIND_Y}) var<storage, read_write> y: array<${T}>;  // [B, O, H, W]

// Row r of the 4 × 4 tile m: M[4r … 4r + 3] at idx, idx + step, … .
fn load_m(idx: u32, step: u32) -> vec4<f32> {
  return vec4<f32>(m[idx], m[idx + step], m[idx + 2u * step], m[idx + 3u * step]);
}

#include "conv2d_epilogue.wgsl"

// Written out without loops over function-scope arrays, so that m and Y stay in registers.
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let pl = gid.x;
  let o = gid.y;
  let pg = p.p0 + pl;
  if (pl >= p.Pc || pg >= p.P) {
    return;
  }
  let step = p.Op * p.Pp;
  let idx = o * p.Pp + pl;
  let m0 = load_m(idx, step);
  let m1 = load_m(idx + 4u * step, step);
  let m2 = load_m(idx + 8u * step, step);
  let m3 = load_m(idx + 12u * step, step);
  // a = Aᵀ m (2 × 4), then Y = a A (2 × 2).
  let a0 = m0 + m1 + m2;
  let a1 = m1 - m2 - m3;
#if BIAS
  let bo = f32(bias[o]);
#else
  let bo = 0.0;
#endif
  let t = tile_origin(pg, 2u);
  let b = t.x;
  let oy = t.y;
  let ox = t.z;
  let i0 = ((b * p.O + o) * p.H + oy) * p.W + ox;
  let right = ox + 1u < p.W;
  let below = oy + 1u < p.H;
  store_one(a0.x + a0.y + a0.z, bo, i0, true);
  store_one(a0.y - a0.z - a0.w, bo, i0 + 1u, right);
  store_one(a1.x + a1.y + a1.z, bo, i0 + p.W, below);
  store_one(a1.y - a1.z - a1.w, bo, i0 + p.W + 1u, right && below);
}
#endif
