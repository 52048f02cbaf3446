// Matrix products with fused epilogues: C[b] = epilogue(alpha · A[b] · op(B[b])).
//
// Shapes (uniforms, in elements): A [batch, M, K] row-major; B [batch_b, K, N] row-major, or with
// TRANS_B [batch_b, N, K] (torch Linear weight layout: rows of w along K); C [batch, M, N].
// Batch items are p.batch_a / p.batch_b / p.batch_c elements apart (batch_b = 0 broadcasts B).
//
// Specializations (pipeline-cache key / profiler label matmul_<tiled|naive>_<T>[_acc16|_acc16c]
// [_nt][_v4][_<BM>x<BN>x<BK>_<TM>x<TN>][_bias][_<act>][_res][_geglu], e.g.
// matmul_tiled_f16_nt_v4_128x64x32_8x4_bias_res):
//   T        storage type of A, B, C, bias and residual (f32 | f16).
//   S        workgroup-memory and product type: f32 (default) or f16 (_acc16, _acc16c).
//   SA       accumulator type: f32 (default, and _acc16c), or f16 (_acc16: packed half FMAs all
//            along K, ~1.3× faster on an H200, rounding error growing with K: opt-in only).
//   ACC16C   (_acc16c, f16 storage) chunked f16 accumulation: S = f16, SA = f32. Each run of KC
//            k-values (KC4 = KC / 4 steps of the inner loop; KC divides BK, KC = BK unless the
//            name says _acc16c<KC>) is summed in f16 partial accumulators `part` (TM × TN4
//            vec4<f16>, zeroed per chunk), which are then added into the f32 accumulators. The
//            f16 error is that of a KC-term sum (~√KC·2⁻¹¹ of the chunk's magnitude, whatever K
//            is) and a chunk overflows only if KC products of f16 inputs pass 65504; the running
//            sum over K stays f32. Registers: TM·TN4 vec4<f32> + TM·TN4 vec4<f16> (8×8 tile: 64
//            + 32 if the driver packs halves) plus the f16 prefetch and A fragments. ACC names
//            the array the inner loop sums into: acc, or part under ACC16C. Measured error (f16
//            storage, rel L2 vs f64 at UNet shapes, |x| to 1e4; tests/linear_test.ts): f32
//            ≤ 2.2e-4, _acc16c ≤ 1.2e-3, _acc16 ≤ 5.4e-3 (K = 1280).
//   BM, BN, BK, TM, TN4 (TN = 4·TN4): the tile, chosen per problem by src/ops/linear.ts.
//   TRANS_B  B is [N, K] (torch Linear weight) instead of [K, N].
//   VEC      K % 4 == 0 and N % 4 == 0: global memory is read and written as vec4 (8 or 16 bytes);
//            otherwise every element is loaded and bounds-checked on its own (K = 77, N = 77, …).
//   BIAS     add bias[n] (length N; 2N with GEGLU).
//   BIAS_ROW with BIAS: add bias[m] instead (length M): a convolution's per-output-channel bias
//            when C[b] = W · X[b] (A = W shared by every batch item: batch_a = 0).
//   ACT_*    GELU (erf-exact), QUICK_GELU (x·σ(1.702x), CLIP), SILU, applied after the bias.
//   RESIDUAL add residual[b, m, n] (same shape as C) after the activation.
//   GEGLU    (TRANS_B only) B has 2N rows: C[m, n] = h · GELU(g) with h = (A·Bᵀ)[m, n] + bias[n] and
//            g = (A·Bᵀ)[m, N + n] + bias[N + n]; both halves live in one workgroup's accumulators
//            and the [M, 2N] projection is never stored (diffusers' GEGLU: hidden, gate = chunk(2)).
//
// TILED (default) work decomposition: one workgroup per BM × BN_OUT output tile (grid x over N,
// y over M, z over the batch), (BN / TN) × (BM / TM) invocations, each computing TM × TN outputs
// (TN as TN/4 vec4 along N). With GEGLU a workgroup's BN accumulator columns are BN/2 "hidden"
// columns and the matching BN/2 "gate" columns, so BN_OUT = BN/2; otherwise BN_OUT = BN.
// The K loop steps BK at a time through two workgroup tiles:
//   As[BM][BK/4]  vec4 along K   — rows of A exactly as in memory (no transpose);
//   Bs[BK][BN/4]  vec4 along N   — rows of B for [K, N]; for TRANS_B each thread reads a vec4 of a
//                                  weight row along K and scatters its 4 values into 4 rows of Bs
//                                  (one transposed store per element per tile, consecutive
//                                  invocations own consecutive n, so the stores do not conflict).
// The next tile's global loads are issued into registers before the current tile is multiplied
// (register prefetch: global latency hides behind BK·TM·TN FMAs), two barriers per tile.
// Inner loop per 4 values of k: TM vec4 reads of As (a row's 4 k), 4 × TN/4 vec4 reads of Bs,
// 4·TM·TN/4 vec4 FMAs: outer products accumulated in registers. Invocation (tx, ty) owns rows
// ty + i·(BM/TM) and vec4 columns tx + j·(BN/TN): neighbouring invocations read neighbouring
// vec4s of Bs (no bank conflicts) and write neighbouring vec4s of C (coalesced).
// Edges: rows ≥ M, columns ≥ N and k ≥ K load as zero and are never stored, so any M, N, K work.
// Loops after a `#unroll` line are expanded by src/gpu/wgsl.ts (unrollLoops) before compiling:
// the accumulators, prefetch registers and A fragments are function-local arrays that stay in
// registers only when indexed by constants — left as loops, the driver behind naga keeps them in
// local memory and the kernel runs 8× slower (2 vs 16+ TFLOP/s at 4096³ on an H200).
//
// SPLIT_K (tiled, VEC, no GEGLU; for products whose tiles alone leave SMs idle, e.g. K = 5120
// at the UNet's 8×8 and 16×16 levels): the grid's z is batch item × S slices of K (k_split a
// multiple of BK); each workgroup multiplies its slice and stores the raw f32 tile into a
// [batch, S, M, N] scratch. SPLITK_REDUCE then sums the S partials per output vec4 (in slice
// order: deterministic) and runs the usual epilogue. Specialization names end in _splitk / are
// matmul_splitk_reduce_<T>[fusion].
//
// GEMV work decomposition (M ≤ 8 rows, TRANS_B and VEC, no GEGLU: SD's time-embedding
// projections, M = batch): the tiled kernel would give one row of workgroups, each walking all of K
// (~0.1 ms for [2, 1280]·[1280, 1280]ᵀ). Instead a workgroup of 256 invocations owns GN = 8
// output columns: 32 lanes per column stride along K reading vec4 of the weight row (32 lanes ×
// 8 bytes: contiguous), each keeping M f32 dot products; a workgroup-memory tree sums the 32
// lanes, and 2·M invocations run the vec4 epilogue. Grid (⌈N/8⌉, 1, batch).
//
// NAIVE work decomposition: one invocation per output element (16 × 16 a workgroup), the K loop
// reading A and B straight from global memory (scalar loads, never VEC), f32 sums. The baseline
// the tiled kernel is measured against.
//
// Precision: products are formed in S and accumulate in SA (f32 unless _acc16; in f16 chunks of
// KC k-values under _acc16c, see ACC16C); the epilogue (alpha, bias, activation, residual) runs
// in f32 and rounds to T once, at the store.

struct Params {
  M: u32,        // rows of A and C
  N: u32,        // columns of C (GEGLU: half the rows of B)
  K: u32,        // reduction length
  batch_a: u32,  // elements between batch items of A
  batch_b: u32,  // elements between batch items of B (0: one B for every batch item)
  batch_c: u32,  // elements between batch items of C and residual
  alpha: f32,    // scale of the product, before bias
  k_split: u32,  // SPLIT_K / SPLITK_REDUCE: K per slice (a multiple of BK)
}

@group(0) @binding(0) var<uniform> p: Params;

#include "grid1d.wgsl"


#if SPLITK_REDUCE
@group(0) @binding(1) var<storage, read> partial: array<vec4<f32>>;
#elif VEC
@group(0) @binding(1) var<storage, read> A: array<vec4<${T}>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<${T}>>;
#else
@group(0) @binding(1) var<storage, read> A: array<${T}>;
@group(0) @binding(2) var<storage, read> B: array<${T}>;
#endif
#if BIAS
#if BIAS_V4
@group(0) @binding(${BIND_BIAS}) var<storage, read> bias: array<vec4<${T}>>;
#else
@group(0) @binding(${BIND_BIAS}) var<storage, read> bias: array<${T}>;
#endif
#endif
#if RESIDUAL
#if VEC
@group(0) @binding(${BIND_RES}) var<storage, read> residual: array<vec4<${T}>>;
#else
@group(0) @binding(${BIND_RES}) var<storage, read> residual: array<${T}>;
#endif
#endif
#if SPLIT_K
@group(0) @binding(${BIND_C}) var<storage, read_write> partial_out: array<vec4<f32>>;
#elif VEC
@group(0) @binding(${BIND_C}) var<storage, read_write> C: array<vec4<${T}>>;
#else
@group(0) @binding(${BIND_C}) var<storage, read_write> C: array<${T}>;
#endif

// erf with max abs error 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), as in elementwise.wgsl.
fn erf4(x: vec4<f32>) -> vec4<f32> {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= vec4<f32>(0.0));
}

fn gelu4(x: vec4<f32>) -> vec4<f32> {
  return 0.5 * x * (1.0 + erf4(x * 0.7071067811865476));
}

#if !SPLIT_K
// Bias value(s) for output columns n..n+3 (column index into B's rows/columns).
fn bias4(n: u32) -> vec4<f32> {
#if BIAS
#if BIAS_V4
  return vec4<f32>(bias[n / 4u]);
#else
  let nb = select(p.N, 2u * p.N, ${GEGLU_ON});
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (n + e < nb) { v[e] = f32(bias[n + e]); }
  }
  return v;
#endif
#else
  return vec4<f32>(0.0);
#endif
}

// The epilogue for four consecutive outputs C[b, m, n..n+3] given their products `h` (and, for
// GEGLU, the gate products `g` of columns N + n..): everything after the sum, in f32, one store.
// `lanes` < 4 stores only the first lanes (the naive kernel's single element).
fn finish(cb: u32, m: u32, n: u32, h: vec4<f32>, g: vec4<f32>, lanes: u32) {
#if BIAS_ROW
  var v = h * p.alpha + vec4<f32>(f32(bias[m]));
#else
  var v = h * p.alpha + bias4(n);
#endif
#if GEGLU
  v = v * gelu4(g * p.alpha + bias4(p.N + n));
#endif
#if ACT_GELU
  v = gelu4(v);
#elif ACT_QUICK_GELU
  v = v / (1.0 + exp(-1.702 * v));
#elif ACT_SILU
  v = v / (1.0 + exp(-v));
#endif
  let o = cb + m * p.N + n;
#if VEC
#if RESIDUAL
  v += vec4<f32>(residual[o / 4u]);
#endif
  C[o / 4u] = vec4<${T}>(v);
#else
  for (var e = 0u; e < lanes; e++) {
    if (n + e < p.N) {
#if RESIDUAL
      C[o + e] = ${T}(v[e] + f32(residual[o + e]));
#else
      C[o + e] = ${T}(v[e]);
#endif
    }
  }
#endif
}
#endif

#if SPLITK_REDUCE
// Split-K second pass: one invocation per output vec4 sums the S slices' partial products
// ([batch][S][M][N] f32, S = ⌈K / k_split⌉) in slice order and runs the epilogue.
@compute @workgroup_size(256)
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let i = grid1d_index(gid, nwg, 256u);
  let per = p.M * p.N / 4u;
  let batch = p.batch_a;  // this pass's uniforms carry the batch count here
  if (i >= batch * per) { return; }
  let b = i / per;
  let r = i % per;
  let slices = (p.K + p.k_split - 1u) / p.k_split;
  var h = vec4<f32>(0.0);
  for (var s = 0u; s < slices; s++) {
    h += partial[(b * slices + s) * per + r];
  }
  finish(b * p.batch_c, r / (p.N / 4u), 4u * (r % (p.N / 4u)), h, vec4<f32>(), 4u);
}
#elif GEMV

const GN = 8u;     // output columns per workgroup
const GL = 32u;    // lanes per column, striding along K
const GMAX = 8u;   // most rows of A

var<workgroup> red: array<f32, GMAX * 256u>;

@compute @workgroup_size(256)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
  let col = t / GL;
  let lane = t % GL;
  let n = wg.x * GN + col;
  let ab = wg.z * p.batch_a;
  let bb = wg.z * p.batch_b;
  var acc: array<f32, GMAX>;
  if (n < p.N) {
    for (var k = 4u * lane; k < p.K; k += 4u * GL) {
      let b = vec4<f32>(B[(bb + n * p.K + k) / 4u]);
      #unroll
      for (var i = 0u; i < GMAX; i++) {
        if (i < p.M) { acc[i] += dot(vec4<f32>(A[(ab + i * p.K + k) / 4u]), b); }
      }
    }
  }
  #unroll
  for (var i = 0u; i < GMAX; i++) {
    red[i * 256u + t] = acc[i];
  }
  for (var s = GL / 2u; s > 0u; s /= 2u) {
    workgroupBarrier();
    if (lane < s) {
      #unroll
      for (var i = 0u; i < GMAX; i++) {
        red[i * 256u + t] += red[i * 256u + t + s];
      }
    }
  }
  workgroupBarrier();
  // Invocation t < 2·M: row m = t / 2, columns 4·(t % 2) .. +3 of this workgroup's 8.
  if (t < 2u * p.M) {
    let m = t / 2u;
    let c = 4u * (t % 2u);
    let r = m * 256u + c * GL;
    let h = vec4<f32>(red[r], red[r + GL], red[r + 2u * GL], red[r + 3u * GL]);
    let n4 = wg.x * GN + c;
    if (n4 < p.N) { finish(wg.z * p.batch_c, m, n4, h, vec4<f32>(), 4u); }
  }
}
#elif NAIVE
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) { return; }
  let ab = gid.z * p.batch_a + m * p.K;
  let bb = gid.z * p.batch_b;
  var h = 0.0;
  var g = 0.0;
  for (var k = 0u; k < p.K; k++) {
    let a = f32(A[ab + k]);
#if TRANS_B
    h += a * f32(B[bb + n * p.K + k]);
#if GEGLU
    g += a * f32(B[bb + (p.N + n) * p.K + k]);
#endif
#else
    h += a * f32(B[bb + k * p.N + n]);
#endif
  }
  finish(gid.z * p.batch_c, m, n, vec4<f32>(h), vec4<f32>(g), 1u);
}
#else

// ---- TILED ----

const BM = ${BM}u;          // output rows per workgroup
const BN = ${BN}u;          // accumulator columns per workgroup (GEGLU: hidden + gate halves)
const BK = ${BK}u;          // k per workgroup-memory tile
const TM = ${TM}u;          // rows per invocation
const TN4 = ${TN4}u;        // vec4 columns per invocation
const WX = ${WX}u;          // invocations along N = BN / (4·TN4)
const WY = ${WY}u;          // invocations along M = BM / TM
const THREADS = WX * WY;
const BK4 = BK / 4u;
const BN4 = BN / 4u;
const A_LOADS = ${A_LOADS}u;  // vec4 of A each invocation moves per tile = BM·BK4 / THREADS
const B_LOADS = ${B_LOADS}u;  // vec4 of B each invocation moves per tile = BK·BN4 / THREADS
const BN_OUT = select(BN, BN / 2u, ${GEGLU_ON});
#if ACC16C
const KC4 = ${KC4}u;        // inner-loop steps (4 k each) per f16 chunk; divides BK4
#endif

var<workgroup> As: array<vec4<${S}>, BM * BK4>;
var<workgroup> Bs: array<vec4<${S}>, BK * BN4>;

// A[b, m, k..k+3] (k % 4 == 0), zero outside the matrix.
fn load_a(ab: u32, m: u32, k: u32) -> vec4<${S}> {
#if VEC
  if (m < p.M && k < p.K) { return vec4<${S}>(A[(ab + m * p.K + k) / 4u]); }
  return vec4<${S}>();
#else
  var v = vec4<${S}>();
  if (m < p.M) {
    let row = ab + m * p.K;
    for (var e = 0u; e < 4u; e++) {
      if (k + e < p.K) { v[e] = ${S}(A[row + k + e]); }
    }
  }
  return v;
#endif
}

// Global row or column of B feeding accumulator column c of this workgroup's tile.
fn b_index(n0: u32, c: u32) -> u32 {
#if GEGLU
  return select(n0 + c, p.N + n0 + c - BN / 2u, c >= BN / 2u);
#else
  return n0 + c;
#endif
}

// Whether accumulator column c (tile-relative) maps to an existing column of C.
fn col_valid(n0: u32, c: u32) -> bool {
#if GEGLU
  return n0 + c % (BN / 2u) < p.N;
#else
  return n0 + c < p.N;
#endif
}

#if TRANS_B
// B[b, n, k..k+3]: a vec4 of a weight row along K, zero outside.
fn load_bt(bb: u32, n0: u32, c: u32, k: u32) -> vec4<${S}> {
  let n = b_index(n0, c);
#if VEC
  if (col_valid(n0, c) && k < p.K) { return vec4<${S}>(B[(bb + n * p.K + k) / 4u]); }
  return vec4<${S}>();
#else
  var v = vec4<${S}>();
  if (col_valid(n0, c)) {
    for (var e = 0u; e < 4u; e++) {
      if (k + e < p.K) { v[e] = ${S}(B[bb + n * p.K + k + e]); }
    }
  }
  return v;
#endif
}
#else
// B[b, k, n..n+3] (n % 4 == 0), zero outside.
fn load_b(bb: u32, k: u32, n: u32) -> vec4<${S}> {
#if VEC
  if (k < p.K && n < p.N) { return vec4<${S}>(B[(bb + k * p.N + n) / 4u]); }
  return vec4<${S}>();
#else
  var v = vec4<${S}>();
  if (k < p.K) {
    for (var e = 0u; e < 4u; e++) {
      if (n + e < p.N) { v[e] = ${S}(B[bb + k * p.N + n + e]); }
    }
  }
  return v;
#endif
}
#endif

#if !SPLIT_K
// Epilogue of one accumulator vec4 (rows ≥ M and columns ≥ N are not stored).
fn store4(cb: u32, m: u32, n: u32, h: vec4<${SA}>, g: vec4<${SA}>) {
  if (m < p.M && n < p.N) { finish(cb, m, n, vec4<f32>(h), vec4<f32>(g), 4u); }
}
#endif

@compute @workgroup_size(${WX}, ${WY})
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
  let m0 = wg.y * BM;
  let n0 = wg.x * BN_OUT;
#if SPLIT_K
  // wg.z = batch item · S + slice; this workgroup sums k in [kbeg, kend).
  let slices = (p.K + p.k_split - 1u) / p.k_split;
  let bz = wg.z / slices;
  let kbeg = (wg.z % slices) * p.k_split;
  let kend = min(p.K, kbeg + p.k_split);
#else
  let bz = wg.z;
  let kbeg = 0u;
  let kend = p.K;
#endif
  let ab = bz * p.batch_a;
  let bb = bz * p.batch_b;

  var acc: array<array<vec4<${SA}>, TN4>, TM>;
#if ACC16C
  // The chunk's f16 sums, zeroed after each is added into acc (declared here: a `var` in the loop
  // body was not re-zeroed per iteration on llvmpipe through naga's SPIR-V).
  var part: array<array<vec4<f16>, TN4>, TM>;
#endif
  var pa: array<vec4<${S}>, A_LOADS>;
  var pb: array<vec4<${S}>, B_LOADS>;

  // Tile loads into registers. A: slot s = t + l·THREADS → row s / BK4, k-vec4 s % BK4.
  // B ([K, N]): row s / BN4, n-vec4 s % BN4. B (TRANS_B): column s % BN, k-vec4 s / BN
  // (consecutive invocations: consecutive weight rows, so the scattered stores hit distinct banks).
  #unroll
  for (var l = 0u; l < ${A_LOADS}u; l++) {
    let s = t + l * THREADS;
    pa[l] = load_a(ab, m0 + s / BK4, kbeg + 4u * (s % BK4));
  }
  #unroll
  for (var l = 0u; l < ${B_LOADS}u; l++) {
    let s = t + l * THREADS;
#if TRANS_B
    pb[l] = load_bt(bb, n0, s % BN, kbeg + 4u * (s / BN));
#else
    pb[l] = load_b(bb, kbeg + s / BN4, n0 + 4u * (s % BN4));
#endif
  }

  for (var k0 = kbeg; k0 < kend; k0 += BK) {
    workgroupBarrier();
    #unroll
    for (var l = 0u; l < ${A_LOADS}u; l++) {
      As[t + l * THREADS] = pa[l];
    }
    #unroll
    for (var l = 0u; l < ${B_LOADS}u; l++) {
      let s = t + l * THREADS;
#if TRANS_B
      let c = s % BN;
      let kr = 4u * (s / BN);
      #unroll
      for (var e = 0u; e < 4u; e++) {
        Bs[(kr + e) * BN4 + c / 4u][c % 4u] = pb[l][e];
      }
#else
      Bs[s] = pb[l];
#endif
    }
    workgroupBarrier();

    // Prefetch the next tile while this one is multiplied.
    let k1 = k0 + BK;
    if (k1 < kend) {
      #unroll
      for (var l = 0u; l < ${A_LOADS}u; l++) {
        let s = t + l * THREADS;
        pa[l] = load_a(ab, m0 + s / BK4, k1 + 4u * (s % BK4));
      }
      #unroll
      for (var l = 0u; l < ${B_LOADS}u; l++) {
        let s = t + l * THREADS;
#if TRANS_B
        pb[l] = load_bt(bb, n0, s % BN, k1 + 4u * (s / BN));
#else
        pb[l] = load_b(bb, k1 + s / BN4, n0 + 4u * (s % BN4));
#endif
      }
    }

    // acc[i][j] += A[row i][k] · B[k][vec4 column j] for the tile's k, 4 at a time (ACC16C: into
    // part[i][j], KC k-values at a time, each chunk then added into acc in f32).
#if ACC16C
    for (var kc = 0u; kc < BK4; kc += KC4) {
      for (var kk = kc; kk < kc + KC4; kk++) {
#else
    for (var kk = 0u; kk < BK4; kk++) {
#endif
      var a: array<vec4<${S}>, TM>;
      #unroll
      for (var i = 0u; i < ${TM}u; i++) {
        a[i] = As[(lid.y + i * WY) * BK4 + kk];
      }
      #unroll
      for (var e = 0u; e < 4u; e++) {
        #unroll
        for (var j = 0u; j < ${TN4}u; j++) {
          let b = Bs[(4u * kk + e) * BN4 + lid.x + j * WX];
          #unroll
          for (var i = 0u; i < ${TM}u; i++) {
            ${ACC}[i][j] = fma(vec4<${S}>(a[i][e]), b, ${ACC}[i][j]);
          }
        }
      }
    }
#if ACC16C
      #unroll
      for (var i = 0u; i < ${TM}u; i++) {
        #unroll
        for (var j = 0u; j < ${TN4}u; j++) {
          acc[i][j] += vec4<f32>(part[i][j]);
          part[i][j] = vec4<f16>();
        }
      }
    }
#endif
  }

#if SPLIT_K
  // Partial products, no epilogue: [wg.z][M][N] f32 (SPLITK_REDUCE sums the slices).
  #unroll
  for (var i = 0u; i < ${TM}u; i++) {
    let m = m0 + lid.y + i * WY;
    #unroll
    for (var j = 0u; j < ${TN4}u; j++) {
      let n = n0 + 4u * (lid.x + j * WX);
      if (m < p.M && n < p.N) { partial_out[((wg.z * p.M + m) * p.N + n) / 4u] = vec4<f32>(acc[i][j]); }
    }
  }
#else
  // Epilogue: invocation (tx, ty) holds accumulator vec4 columns tx + j·WX; with GEGLU the first
  // TN4/2 are hidden columns and the last TN4/2 the gate columns of the same outputs.
  let cb = bz * p.batch_c;
  #unroll
  for (var i = 0u; i < ${TM}u; i++) {
    let m = m0 + lid.y + i * WY;
#if GEGLU
    #unroll
    for (var j = 0u; j < ${TN4_OUT}u; j++) {
      store4(cb, m, n0 + 4u * (lid.x + j * WX), acc[i][j], acc[i][j + TN4 / 2u]);
    }
#else
    #unroll
    for (var j = 0u; j < ${TN4}u; j++) {
      store4(cb, m, n0 + 4u * (lid.x + j * WX), acc[i][j], vec4<${SA}>());
    }
#endif
  }
#endif
}
#endif
