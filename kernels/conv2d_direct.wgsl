// Direct 2-D convolution as an implicit GEMM (torch.nn.Conv2d semantics, NCHW).
//
// For one image b:  Y[o, n] = Σ_k W[o, k] · X̂[k, n]  with
//   o ∈ [0, O) output channel, n = oy·OW + ox ∈ [0, N) output pixel,
//   k = (c·KS + ky)·KS + kx ∈ [0, K = C·KS·KS)  — W [O, C, KS, KS] is already W [O, K] row-major,
//   X̂[k, n] = x[b, c, oy·stride − pad_top + ky, ox·stride − pad_left + kx]  (0 outside the image),
// gathered on the fly (im2col is never stored). 1×1 stride-1 unpadded convolutions (POINTWISE)
// read X̂[k, n] = x[b, k, n] directly: a plain GEMM [O, C]·[C, H·W].
//
// Work decomposition: a workgroup of 256 invocations (TY rows × TX columns of threads) computes a
// BM × BN output tile (BM = TY·TM output channels, BN = TX·4 pixels) of image b = workgroup_id.z;
// grid = (⌈N/BN⌉, ⌈O/BM⌉, batch). The K loop walks BK = 16 at a time: every invocation loads
// BM·BK/256 weights and BK·BN/256 gathered inputs into registers (the next step's loads are issued
// before this step's arithmetic to hide their latency), stores them into workgroup memory (As:
// K-major with a padded row against bank conflicts of the transposing store; Bs: K-major), then
// accumulates its TM × 4 register block from vec4 reads: rows (ty + i·TY)·4 + 0..3, columns
// tx·4 + 0..3.
// Tiles (specialization): 128×64 (TM = 8) for large problems, 64×64 (TM = 4) when that would leave
// too few workgroups, and 16×256 (TY = 4, TX = 64) for convolutions with few output channels
// (conv_out: 3 or 4 channels). The register block and staging registers are named variables, not
// loops over function-scope arrays: that took the kernel from 1.7 to 15–20 TFLOP/s on an H200.
//
// Epilogue: y = act(acc + bias[o]) + residual[b, o, n] — bias and residual optional (fusion
// specializations BIAS, RESIDUAL), act = identity or SiLU (SILU); the same order as linear.wgsl.
//
// Precision: T (f32 | f16) is the storage type of x, w, bias, residual and y. Values are widened to
// f32 when loaded into workgroup memory; products and sums are f32; one rounding to T on store.
//
// Specializations (pipeline-cache key / profiler label):
//   conv2d_direct_<KS>x<KS>[_pointwise]_<T>_<BM>x<BN>[_bias][_residual][_silu]

struct Params {
  C: u32,         // input channels
  H: u32,         // input height (pixels)
  W: u32,         // input width (pixels)
  K: u32,         // GEMM depth = C·KS·KS
  O: u32,         // output channels
  OH: u32,        // output height (pixels)
  OW: u32,        // output width (pixels)
  N: u32,         // output pixels per image = OH·OW
  stride: u32,    // 1 or 2 (both directions)
  pad_top: u32,   // zero rows above the image (pixels)
  pad_left: u32,  // zero columns left of the image (pixels)
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read> w: array<${T}>;
#if BIAS
@group(0) @binding(${BIND_BIAS}) var<storage, read> bias: array<${T}>;
#endif
#if RESIDUAL
@group(0) @binding(${BIND_RES}) var<storage, read> res: array<${T}>;
#endif
@group(0) @binding(${BIND_Y}) var<storage, read_write> y: array<${T}>;

const KS = ${KS}u;       // kernel size (square)
const TY = ${TY}u;       // thread rows (along output channels)
const TX = ${TX}u;       // thread columns (along pixels); TY·TX = 256
const BM = TY * ${TM}u;  // output channels per workgroup (TM = 4 or 8 per invocation: TM8)
const BN = TX * 4u;      // pixels per workgroup: 64 or 256 (4 per invocation)
const BK = 16u;          // GEMM depth per step
const S = 256u / BN;     // rows of Bs filled by one pass of the workgroup (1 when BN = 256)
const A_STRIDE = BM / 4u + 1u; // As row length in vec4 (one spare vec4 spreads the banks)
const B_STRIDE = BN / 4u;      // Bs row length in vec4

var<workgroup> As: array<vec4<f32>, BK * A_STRIDE>;  // As[kk][m], m = output channel in tile
var<workgroup> Bs: array<vec4<f32>, BK * B_STRIDE>;  // Bs[kk][n], n = pixel in tile

#include "rank1.wgsl"  // c[r] = output channel r

// W[o, k] widened to f32, 0 outside the matrix.
fn load_w(o: u32, k: u32) -> f32 {
  if (o < p.O && k < p.K) {
    return f32(w[o * p.K + k]);
  }
  return 0.0;
}

// W[o, k … k + 3].
fn load_w4(o: u32, k: u32) -> vec4<f32> {
  return vec4<f32>(load_w(o, k), load_w(o, k + 1u), load_w(o, k + 2u), load_w(o, k + 3u));
}

// X̂[k, n] of the image whose x offset is xb, for the pixel whose top-left tap is (iy0, ix0).
fn gather(k: u32, n_ok: bool, xb: u32, n: u32, iy0: i32, ix0: i32) -> f32 {
  if (!n_ok || k >= p.K) {
    return 0.0;
  }
#if POINTWISE
  return f32(x[xb + k * p.N + n]);
#else
  let c = k / (KS * KS);
  let r = k % (KS * KS);
  let iy = iy0 + i32(r / KS);
  let ix = ix0 + i32(r % KS);
  if (iy < 0 || iy >= i32(p.H) || ix < 0 || ix >= i32(p.W)) {
    return 0.0;
  }
  return f32(x[xb + (c * p.H + u32(iy)) * p.W + u32(ix)]);
#endif
}

// Four gathered values: rows k, k + S, k + 2S, k + 3S.
fn gather4(k: u32, n_ok: bool, xb: u32, n: u32, iy0: i32, ix0: i32) -> vec4<f32> {
  return vec4<f32>(
    gather(k, n_ok, xb, n, iy0, ix0),
    gather(k + S, n_ok, xb, n, iy0, ix0),
    gather(k + 2u * S, n_ok, xb, n, iy0, ix0),
    gather(k + 3u * S, n_ok, xb, n, iy0, ix0),
  );
}

// The transposing store of four weights W[m, kq·4 … kq·4 + 3] into As.
fn store_a(v: vec4<f32>, kq: u32, m: u32) {
  let col = m / 4u;
  let lane = m % 4u;
  As[(4u * kq) * A_STRIDE + col][lane] = v.x;
  As[(4u * kq + 1u) * A_STRIDE + col][lane] = v.y;
  As[(4u * kq + 2u) * A_STRIDE + col][lane] = v.z;
  As[(4u * kq + 3u) * A_STRIDE + col][lane] = v.w;
}

// Four gathered values (rows kk, kk + S, kk + 2S, kk + 3S of pixel nb) into Bs.
fn store_b(v: vec4<f32>, kk: u32, nb: u32) {
  let col = nb / 4u;
  let lane = nb % 4u;
  Bs[kk * B_STRIDE + col][lane] = v.x;
  Bs[(kk + S) * B_STRIDE + col][lane] = v.y;
  Bs[(kk + 2u * S) * B_STRIDE + col][lane] = v.z;
  Bs[(kk + 3u * S) * B_STRIDE + col][lane] = v.w;
}

#include "conv2d_epilogue.wgsl"

// Epilogue of output channel o, pixels n … n + 3 of image b.
fn store_row(acc: vec4<f32>, o: u32, n: u32, b: u32) {
  if (o >= p.O) {
    return;
  }
#if BIAS
  let bo = f32(bias[o]);
#else
  let bo = 0.0;
#endif
  let yi = (b * p.O + o) * p.N + n;
  store_one(acc.x, bo, yi, n < p.N);
  store_one(acc.y, bo, yi + 1u, n + 1u < p.N);
  store_one(acc.z, bo, yi + 2u, n + 2u < p.N);
  store_one(acc.w, bo, yi + 3u, n + 3u < p.N);
}

// Epilogue of one 4 × 4 block: output channels o … o + 3, pixels n … n + 3 of image b.
fn store_block(c: mat4x4<f32>, o: u32, n: u32, b: u32) {
  store_row(c[0], o, n, b);
  store_row(c[1], o + 1u, n, b);
  store_row(c[2], o + 2u, n, b);
  store_row(c[3], o + 3u, n, b);
}

// The register block and the staging registers are written out (no loops over function-scope
// arrays) so that they stay in registers whatever the driver's loop unrolling does. TM8 adds the
// second row half of the block (and LA2 its second weight quad); RB2 + RB4 the gathers of BN = 256.
@compute @workgroup_size(256)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let n0 = wg.x * BN;
  let o0 = wg.y * BM;
  let b = wg.z;
  let tx = tid % TX;
  let ty = tid / TX;

  // Weight quads: 4 consecutive k (quad kq) of tile row ma; the second quad is 64 rows further.
  let kq = tid % 4u;
  let ma = tid / 4u;
  let a_on = ma < BM;  // BM = 16: only the first 64 invocations load weights
  // Gathers: pixel nb (fixed for this invocation), rows kb + i·S.
  let nb = tid % BN;
  let kb = tid / BN;
  let n = n0 + nb;
  let n_ok = n < p.N;
  let xb = b * p.C * p.H * p.W;
#if POINTWISE
  let iy0 = 0;
  let ix0 = 0;
#else
  let oy = n / p.OW;
  let ox = n % p.OW;
  let iy0 = i32(oy * p.stride) - i32(p.pad_top);
  let ix0 = i32(ox * p.stride) - i32(p.pad_left);
#endif

  var ra0: vec4<f32>;
  var rb0: vec4<f32>;
  var c00: mat4x4<f32>;
#if LA2
  var ra1: vec4<f32>;
#endif
#if RB2
  var rb1: vec4<f32>;
#endif
#if RB4
  var rb2: vec4<f32>;
  var rb3: vec4<f32>;
#endif
#if TM8
  var c10: mat4x4<f32>;
#endif

  let steps = (p.K + BK - 1u) / BK;
  for (var t = 0u; t <= steps; t++) {
    if (t > 0u) {
      // Registers of step t − 1 → workgroup memory.
      workgroupBarrier();
      if (a_on) {
        store_a(ra0, kq, ma);
      }
#if LA2
      store_a(ra1, kq, ma + 64u);
#endif
      store_b(rb0, kb, nb);
#if RB2
      store_b(rb1, kb + 4u * S, nb);
#endif
#if RB4
      store_b(rb2, kb + 8u * S, nb);
      store_b(rb3, kb + 12u * S, nb);
#endif
      workgroupBarrier();
    }
    if (t < steps) {
      // Global loads of step t, in flight during the arithmetic of step t − 1 below.
      let k0 = t * BK;
      let ka = k0 + 4u * kq;
      let oa = o0 + ma;
      ra0 = load_w4(oa, ka);
#if LA2
      let oa1 = oa + 64u;
      ra1 = load_w4(oa1, ka);
#endif
      rb0 = gather4(k0 + kb, n_ok, xb, n, iy0, ix0);
#if RB2
      rb1 = gather4(k0 + kb + 4u * S, n_ok, xb, n, iy0, ix0);
#endif
#if RB4
      rb2 = gather4(k0 + kb + 8u * S, n_ok, xb, n, iy0, ix0);
      rb3 = gather4(k0 + kb + 12u * S, n_ok, xb, n, iy0, ix0);
#endif
    }
    if (t > 0u) {
      for (var kk = 0u; kk < BK; kk++) {
        let a0 = As[kk * A_STRIDE + ty];
        let b0 = Bs[kk * B_STRIDE + tx];
        c00 = rank1(c00, a0, b0);
#if TM8
        let a1 = As[kk * A_STRIDE + ty + TY];
        c10 = rank1(c10, a1, b0);
#endif
      }
    }
  }

  // Epilogue: bias, residual, activation; one rounding to T.
  store_block(c00, o0 + ty * 4u, n0 + tx * 4u, b);
#if TM8
  store_block(c10, o0 + (ty + TY) * 4u, n0 + tx * 4u, b);
#endif
}
