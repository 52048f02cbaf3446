// Winograd F(4×4, 3×3) transforms (Lavin & Gray 2015, points 0, ±1, ±2, ∞) for 3×3, stride-1,
// padding-1 convolutions in NCHW: every 4×4 output tile comes from a 6×6 input tile d (rows
// 4ty − 1 … 4ty + 4, columns 4tx − 1 … 4tx + 4, zero outside the image) as
//   Y = Aᵀ [ Σ_c (G g_{o,c} Gᵀ) ⊙ (Bᵀ d_c B) ] A
// with  Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0;
//             0 4 0 −5 0 1],
//       G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1⁄24 1⁄12 ⅙; 1⁄24 −1⁄12 ⅙; 0 0 1],
//       Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1].
// Indexing the 36 positions of a 6×6 transformed tile by ξ = 6·row + column, the sum over c is
// 36 independent GEMMs M[ξ] [O × P] = U[ξ] [O × C] · V[ξ] [C × P] over the P tiles of the batch:
// 36 multiplies per 16 outputs, 2.25 per output against F(2×2, 3×3)'s 4 and the direct
// convolution's 9 (per input channel). The GEMM is conv2d_winograd.wgsl's (its grid's z runs over
// the 36 ξ; its layouts do not depend on how many there are); this file holds the transforms:
//   WEIGHT_TRANSFORM  (once per weight, at load): U[ξ][c][o] = (G g_{o,c} Gᵀ)[ξ], stored
//                     [36, Cp, Op] (Cp = C rounded up to 16, Op = O rounded up to 64, zero
//                     padded): 4× the 3×3 weight's elements. One invocation per (o, c); grid
//                     (Op/64, Cp).
//   INPUT_TRANSFORM   V[ξ][c][p] = (Bᵀ d_{c,p} B)[ξ] for the tiles p0 … p0 + Pp − 1 of one chunk,
//                     stored [36, Cp, Pp] (zeros for c ≥ C and tiles past the end). One invocation
//                     per (p, c); grid (⌈Pp/64⌉, Cp).
//   OUTPUT_TRANSFORM  y[b, o, 4ty + r, 4tx + q] = act((Aᵀ m A)[r][q] + bias[o]) + residual;
//                     one invocation per (p, o); grid (⌈Pc/64⌉, O).
//
// Precision: T (f32 | f16) is the storage type of x, w, bias, residual, y and U. U = G g Gᵀ only
// averages weights (|U| ≤ max|g|): as safe in f16 as the weights. F(4×4)'s transforms amplify
// more than F(2×2)'s — V up to 100× the inputs, M's sums over C likewise larger — so V and M are
// f32 and every transform is computed in f32; y is rounded to T once. Against f32 the error of
// the larger tiles is a few times F(2×2)'s (the points ±2 and the ¼, ⅙, 1⁄24 factors), well inside
// f16 storage rounding (tests/conv2d_test.ts studies it per layer, |x| up to 1e4).
//
// Specializations (pipeline-cache key / profiler label):
//   winograd4_weight_transform_<T>, winograd4_input_transform_<T>,
//   winograd4_output_transform_<T>[_bias][_residual][_silu]

struct Params {
  C: u32,    // input channels
  H: u32,    // image height (pixels; input and output)
  W: u32,    // image width (pixels)
  O: u32,    // output channels
  Cp: u32,   // C rounded up to 16 (rows of U[ξ] and V[ξ])
  Op: u32,   // O rounded up to 64 (columns of U[ξ], rows of M[ξ])
  P: u32,    // tiles of the whole batch = B·⌈H/4⌉·⌈W/4⌉
  p0: u32,   // first tile of this chunk
  Pc: u32,   // tiles in this chunk (≤ Pp)
  Pp: u32,   // chunk width of V and M (multiple of the GEMM's BN)
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Used by the input and output transforms (an include is expanded once per file, above the #ifs).
#include "winograd_tile_origin.wgsl"

#if WEIGHT_TRANSFORM
@group(0) @binding(1) var<storage, read> w: array<${T}>;        // [O, C, 3, 3]
@group(0) @binding(2) var<storage, read_write> u: array<${T}>;  // [36, Cp, Op]

// The 6 values G·(a, b, c) (one column of G g, or one row of (G g) Gᵀ).
fn g6(a: f32, b: f32, c: f32) -> array<f32, 6> {
  return array<f32, 6>(
    0.25 * a,
    -(a + b + c) / 6.0,
    -(a - b + c) / 6.0,
    a / 24.0 + b / 12.0 + c / 6.0,
    a / 24.0 - b / 12.0 + c / 6.0,
    c,
  );
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o = gid.x;
  let c = gid.y;
  if (o >= p.Op) {
    return;
  }
  var g: array<f32, 9>;
  if (o < p.O && c < p.C) {
    let base = (o * p.C + c) * 9u;
    for (var i = 0u; i < 9u; i++) {
      g[i] = f32(w[base + i]);
    }
  }
  // Columns of s = G g (6 × 3), then row r of U = s Gᵀ is G applied to row r of s.
  let s0 = g6(g[0], g[3], g[6]);
  let s1 = g6(g[1], g[4], g[7]);
  let s2 = g6(g[2], g[5], g[8]);
  for (var r = 0u; r < 6u; r++) {
    let row = g6(s0[r], s1[r], s2[r]);
    for (var q = 0u; q < 6u; q++) {
      u[((6u * r + q) * p.Cp + c) * p.Op + o] = ${T}(row[q]);
    }
  }
}
#endif

#if INPUT_TRANSFORM
@group(0) @binding(1) var<storage, read> x: array<${T}>;         // [B, C, H, W]
@group(0) @binding(2) var<storage, read_write> v: array<f32>;    // [36, Cp, Pp]

// A row of 6 values: columns 0–3 in a, 4–5 in b.
struct Row6 {
  a: vec4<f32>,
  b: vec2<f32>,
}

#include "winograd_load_x.wgsl"

// Row iy, columns x0 … x0 + 5 of the channel plane at base, 0 outside the image.
fn load_row(base: u32, iy: i32, x0: i32) -> Row6 {
  if (iy < 0 || iy >= i32(p.H)) {
    return Row6(vec4<f32>(0.0), vec2<f32>(0.0));
  }
  let row = base + u32(iy) * p.W;
  return Row6(
    vec4<f32>(load_x(row, x0), load_x(row, x0 + 1), load_x(row, x0 + 2), load_x(row, x0 + 3)),
    vec2<f32>(load_x(row, x0 + 4), load_x(row, x0 + 5)),
  );
}

// Linear combination Σ k_i·r_i of rows (one row of Bᵀ d).
fn comb(r0: Row6, k0: f32, r1: Row6, k1: f32, r2: Row6, k2: f32, r3: Row6, k3: f32) -> Row6 {
  return Row6(
    k0 * r0.a + k1 * r1.a + k2 * r2.a + k3 * r3.a,
    k0 * r0.b + k1 * r1.b + k2 * r2.b + k3 * r3.b,
  );
}

// Row i of V = t B for the row t of Bᵀ d: V[6i … 6i + 5] at idx, idx + step, … .
fn store_v(t: Row6, idx: u32, step: u32) {
  let d0 = t.a.x;
  let d1 = t.a.y;
  let d2 = t.a.z;
  let d3 = t.a.w;
  let d4 = t.b.x;
  let d5 = t.b.y;
  v[idx] = 4.0 * d0 - 5.0 * d2 + d4;
  v[idx + step] = -4.0 * (d1 + d2) + d3 + d4;
  v[idx + 2u * step] = 4.0 * (d1 - d2) - d3 + d4;
  v[idx + 3u * step] = 2.0 * (d3 - d1) - d2 + d4;
  v[idx + 4u * step] = 2.0 * (d1 - d3) - d2 + d4;
  v[idx + 5u * step] = 4.0 * d1 - 5.0 * d3 + d5;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let pl = gid.x;  // tile within the chunk
  let c = gid.y;
  if (pl >= p.Pp) {
    return;
  }
  let pg = p.p0 + pl;
  let zero = Row6(vec4<f32>(0.0), vec2<f32>(0.0));
  var d0 = zero;
  var d1 = zero;
  var d2 = zero;
  var d3 = zero;
  var d4 = zero;
  var d5 = zero;
  if (c < p.C && pl < p.Pc && pg < p.P) {
    let t = tile_origin(pg, 4u);
    let b = t.x;
    let y0 = i32(t.y) - 1;
    let x0 = i32(t.z) - 1;
    let base = (b * p.C + c) * p.H * p.W;
    d0 = load_row(base, y0, x0);
    d1 = load_row(base, y0 + 1, x0);
    d2 = load_row(base, y0 + 2, x0);
    d3 = load_row(base, y0 + 3, x0);
    d4 = load_row(base, y0 + 4, x0);
    d5 = load_row(base, y0 + 5, x0);
  }
  // t = Bᵀ d (rows), then V = t B (columns); ξ = 6·row + column is Cp·Pp elements apart.
  let step = p.Cp * p.Pp;
  let idx = c * p.Pp + pl;
  store_v(comb(d0, 4.0, d2, -5.0, d4, 1.0, d4, 0.0), idx, step);
  store_v(comb(d1, -4.0, d2, -4.0, d3, 1.0, d4, 1.0), idx + 6u * step, step);
  store_v(comb(d1, 4.0, d2, -4.0, d3, -1.0, d4, 1.0), idx + 12u * step, step);
  store_v(comb(d1, -2.0, d2, -1.0, d3, 2.0, d4, 1.0), idx + 18u * step, step);
  store_v(comb(d1, 2.0, d2, -1.0, d3, -2.0, d4, 1.0), idx + 24u * step, step);
  store_v(comb(d1, 4.0, d3, -5.0, d5, 1.0, d5, 0.0), idx + 30u * step, step);
}
#endif

#if OUTPUT_TRANSFORM
@group(0) @binding(1) var<storage, read> m: array<f32>;  // [36, Op, Pp]
#if BIAS
@group(0) @binding(${BIND_BIAS}) var<storage, read> bias: array<${T}>;
#endif
#if RESIDUAL
@group(0) @binding(${BIND_RES}) var<storage, read> res: array<${T}>;
#endif
@group(0) @binding(${BIND_Y}) var<storage, read_write> y: array<${T}>;  // [B, O, H, W]

// Row i of the 6 × 6 tile m, Aᵀ applied along it: (Aᵀ m_i) = 4 values.
fn at_row(idx: u32, step: u32) -> vec4<f32> {
  let m0 = m[idx];
  let m1 = m[idx + step];
  let m2 = m[idx + 2u * step];
  let m3 = m[idx + 3u * step];
  let m4 = m[idx + 4u * step];
  let m5 = m[idx + 5u * step];
  let s12 = m1 + m2;
  let d12 = m1 - m2;
  let s34 = m3 + m4;
  let d34 = m3 - m4;
  return vec4<f32>(m0 + s12 + s34, d12 + 2.0 * d34, s12 + 4.0 * s34, d12 + 8.0 * d34 + m5);
}

#include "conv2d_epilogue.wgsl"

// Output row r of the tile (a vec4 of columns), stored with the epilogue.
fn store_row(val: vec4<f32>, bo: f32, idx: u32, ok: bool, ox: u32) {
  store_one(val.x, bo, idx, ok);
  store_one(val.y, bo, idx + 1u, ok && ox + 1u < p.W);
  store_one(val.z, bo, idx + 2u, ok && ox + 2u < p.W);
  store_one(val.w, bo, idx + 3u, ok && ox + 3u < p.W);
}

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
  // a_i = m_i Aᵀ applied along row i (columns), then Y = Aᵀ a (rows).
  let a0 = at_row(idx, step);
  let a1 = at_row(idx + 6u * step, step);
  let a2 = at_row(idx + 12u * step, step);
  let a3 = at_row(idx + 18u * step, step);
  let a4 = at_row(idx + 24u * step, step);
  let a5 = at_row(idx + 30u * step, step);
  let s12 = a1 + a2;
  let d12 = a1 - a2;
  let s34 = a3 + a4;
  let d34 = a3 - a4;
#if BIAS
  let bo = f32(bias[o]);
#else
  let bo = 0.0;
#endif
  let t = tile_origin(pg, 4u);
  let b = t.x;
  let oy = t.y;
  let ox = t.z;
  let i0 = ((b * p.O + o) * p.H + oy) * p.W + ox;
  store_row(a0 + s12 + s34, bo, i0, true, ox);
  store_row(d12 + 2.0 * d34, bo, i0 + p.W, oy + 1u < p.H, ox);
  store_row(s12 + 4.0 * s34, bo, i0 + 2u * p.W, oy + 2u < p.H, ox);
  store_row(d12 + 8.0 * d34 + a5, bo, i0 + 3u * p.W, oy + 3u < p.H, ox);
}
#endif
