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
// BM × BN output tile (BM = TY·TM output channels, BN = TX·TN pixels) of image b = workgroup_id.z;
// grid = (⌈N/BN⌉, ⌈O/BM⌉, batch). The K loop walks BK = 16 at a time: every invocation loads
// BM·BK/256 weights and BK·BN/256 gathered inputs into registers (the next step's loads are issued
// before this step's arithmetic to hide their latency), stores them into workgroup memory (As: K-major
// with a padded row against bank conflicts of the transposing store; Bs: K-major), then accumulates
// its TM × TN register block from vec4 reads: rows (ty + i·TY)·4 + 0..3, columns (tx + j·TX)·4 + 0..3.
// Tiles (specialization): 128×128 (TM = TN = 8), 64×128, 64×64 (TM = TN = 4), and 16×256 (TY = 4,
// TX = 64) for convolutions with few output channels (conv_out: 3 or 4 channels).
//
// Epilogue: y = act(acc + bias[o] + residual[b, o, n]) — bias and residual optional (fusion
// specializations BIAS, RESIDUAL), act = identity or SiLU (SILU).
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
const TM = ${TM}u;       // output channels per thread (multiple of 4)
const TN = ${TN}u;       // pixels per thread (multiple of 4)
const BM = TY * TM;      // output channels per workgroup
const BN = TX * TN;      // pixels per workgroup (64, 128 or 256: divides or equals 256)
const BK = 16u;          // GEMM depth per step
const LA = BM * BK / 256u;   // weights loaded per invocation per step
const LB = BN * BK / 256u;   // inputs gathered per invocation per step
const BN_PER = 256u / BN;    // rows of Bs filled per pass of the workgroup (1 when BN = 256)
const A_STRIDE = BM / 4u + 1u; // As row length in vec4 (one spare vec4 spreads the banks)
const B_STRIDE = BN / 4u;      // Bs row length in vec4
const MV = TM / 4u;
const NV = TN / 4u;

var<workgroup> As: array<vec4<f32>, BK * A_STRIDE>;  // As[kk][m], m = output channel in tile
var<workgroup> Bs: array<vec4<f32>, BK * B_STRIDE>;  // Bs[kk][n], n = pixel in tile

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

  // Weight loads: column ka of rows ma + i·(256/BK) (16 consecutive invocations read 16
  // consecutive k of one row).
  let ka = tid % BK;
  let ma = tid / BK;
  // Input gathers: pixel nb (fixed for this invocation), rows kb + i·BN_PER.
  let nb = tid % BN;
  let kb = tid / BN;
  let n = n0 + nb;
  let n_ok = n < p.N;
  let xb = b * p.C * p.H * p.W;
#if !POINTWISE
  let oy = n / p.OW;
  let ox = n % p.OW;
  let iy0 = i32(oy * p.stride) - i32(p.pad_top);
  let ix0 = i32(ox * p.stride) - i32(p.pad_left);
#endif

  var ra: array<f32, LA>;
  var rb: array<f32, LB>;
  var acc: array<vec4<f32>, TM * NV>;

  let steps = (p.K + BK - 1u) / BK;
  for (var t = 0u; t <= steps; t++) {
    if (t > 0u) {
      // Registers of step t − 1 → workgroup memory.
      workgroupBarrier();
      for (var i = 0u; i < LA; i++) {
        let m = ma + i * (256u / BK);
        As[ka * A_STRIDE + m / 4u][m % 4u] = ra[i];
      }
      for (var i = 0u; i < LB; i++) {
        let kk = kb + i * BN_PER;
        Bs[kk * B_STRIDE + nb / 4u][nb % 4u] = rb[i];
      }
      workgroupBarrier();
    }
    if (t < steps) {
      // Global loads of step t (in flight during the arithmetic of step t − 1 below).
      let k0 = t * BK;
      let k = k0 + ka;
      for (var i = 0u; i < LA; i++) {
        let o = o0 + ma + i * (256u / BK);
        var v = 0.0;
        if (o < p.O && k < p.K) {
          v = f32(w[o * p.K + k]);
        }
        ra[i] = v;
      }
      for (var i = 0u; i < LB; i++) {
        let kg = k0 + kb + i * BN_PER;
        var v = 0.0;
#if POINTWISE
        if (n_ok && kg < p.K) {
          v = f32(x[xb + kg * p.N + n]);
        }
#else
        let c = kg / (KS * KS);
        let r = kg % (KS * KS);
        let iy = iy0 + i32(r / KS);
        let ix = ix0 + i32(r % KS);
        if (n_ok && kg < p.K && iy >= 0 && iy < i32(p.H) && ix >= 0 && ix < i32(p.W)) {
          v = f32(x[xb + (c * p.H + u32(iy)) * p.W + u32(ix)]);
        }
#endif
        rb[i] = v;
      }
    }
    if (t > 0u) {
      for (var kk = 0u; kk < BK; kk++) {
        var a: array<vec4<f32>, MV>;
        var bv: array<vec4<f32>, NV>;
        for (var j = 0u; j < MV; j++) {
          a[j] = As[kk * A_STRIDE + ty + j * TY];
        }
        for (var j = 0u; j < NV; j++) {
          bv[j] = Bs[kk * B_STRIDE + tx + j * TX];
        }
        for (var i = 0u; i < TM; i++) {
          let av = vec4<f32>(a[i / 4u][i % 4u]);
          for (var j = 0u; j < NV; j++) {
            acc[i * NV + j] = fma(av, bv[j], acc[i * NV + j]);
          }
        }
      }
    }
  }

  // Epilogue: bias, residual, activation; one rounding to T.
  for (var i = 0u; i < TM; i++) {
    let o = o0 + (ty + (i / 4u) * TY) * 4u + i % 4u;
    if (o >= p.O) {
      continue;
    }
#if BIAS
    let bo = f32(bias[o]);
#else
    let bo = 0.0;
#endif
    let yb = (b * p.O + o) * p.N;
    for (var j = 0u; j < NV; j++) {
      let nc = n0 + (tx + j * TX) * 4u;
      let v4 = acc[i * NV + j];
      for (var l = 0u; l < 4u; l++) {
        let nn = nc + l;
        if (nn < p.N) {
          var v = v4[l] + bo;
#if RESIDUAL
          v += f32(res[yb + nn]);
#endif
#if SILU
          v = v / (1.0 + exp(-v));
#endif
          y[yb + nn] = ${T}(v);
        }
      }
    }
  }
}
