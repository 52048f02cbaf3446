/**
 * Matrix products: torch-style `linear` with fused bias / activation / residual epilogues, batched
 * `matmul`, and SD's GEGLU feed-forward projection. Kernel family: `kernels/linear.wgsl` (a tiled,
 * register-blocked kernel and its naive twin, selectable with {@linkcode setMatmulVariant}).
 *
 * @module
 */

import { bytesOf, type DType, type Gpu } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { type Defines, kernelSource, specialize, Uniforms } from "../gpu/wgsl.ts";
import { grid1d } from "../gpu/grid.ts";
import { mul, unary } from "./elementwise.ts";
import { splitHalves } from "./layout.ts";
import { variants } from "./variants.ts";

/** Activation fused into a matmul epilogue (applied after the bias, before the residual). */
export type Activation = "none" | "gelu" | "quick_gelu" | "silu";

/** How matrix products run on a device — for measuring each optimization against its baseline. */
export interface MatmulVariant {
  /** `tiled`: register-blocked workgroup tiles (default); `naive`: one invocation per output. */
  kernel: "tiled" | "naive";
  /**
   * Accumulation of the tiled kernel and the Winograd F(2×2) GEMM for f16 tensors: `chunked`
   * (default) — f16 workgroup tiles and f16 products summed in f16 over `chunkK` k-values at a
   * time, each chunk added into f32 accumulators (error bounded by the chunk, not by K; the
   * Winograd F(4×4) GEMM stays f32, see `winogradChunked` in src/ops/conv2d.ts): on an H100 the
   * UNet step went from 55.8 to 48.8 ms (bench rows 7 and 8, 2026-12-05), at a per-layer rel L2
   * of ≤ 1.2e-3 against f64 where f32 accumulation gives ≤ 2.2e-4 (tests/linear_test.ts,
   * tests/conv2d_test.ts; F(4×4) in f32, already the default, gives ≤ 1.8e-3); `f32` — f32 tiles
   * and accumulators (the twin the chunks are measured against, safe for any sum); `f16` — the
   * tiled kernel accumulates in f16 all along K (packed half arithmetic, rounding error growing
   * with K; Winograd stays f32). f32 tensors always accumulate in f32. The f16 chunks are safe where one factor is a weight (|w| ≲ 1: products stay near the
   * activation's size); a {@linkcode matmul} of two large activations (e.g. unscaled attention
   * scores, |q·k| summed over 32 k) can overflow a chunk where f32 accumulation would not.
   */
  accumulate: "f32" | "chunked" | "f16";
  /**
   * Workgroup tile (rows × accumulator columns): `auto` picks by problem size; a name forces that
   * tile where it applies (GEGLU needs 8 columns per invocation: `128x128` or `64x128`).
   */
  tile: "auto" | TileName;
  /**
   * Products with at most 8 rows against a weight (`linear`, e.g. the time-embedding projections
   * at M = batch): `gemv` — 8 columns a workgroup, 32 lanes each along K (default); `tiled` — the
   * tile `auto` picks. A forced tile always wins.
   */
  smallM: "gemv" | "tiled";
  /**
   * Split-K for tiled products whose tiles alone leave SMs idle: `auto` splits K into slices
   * (partial f32 tiles, then a reduce pass with the epilogue) when the grid has fewer than 200
   * workgroups; `off` never; a number forces that many slices wherever split-K applies (vec4
   * shapes, no GEGLU).
   */
  splitK: "auto" | "off" | number;
  /**
   * k-values per f16 chunk of the tiled kernel under `accumulate: "chunked"` (default 32; a power
   * of two from 4, capped at the tile's BK, which it then divides; the Winograd GEMM's chunk is
   * its BK, 16). The f16 part of the rounding error grows with it (~√KC·2⁻¹¹ of a chunk's
   * magnitude) and so does the worst-case chunk sum (KC products must stay under 65504); smaller
   * chunks cost more f32 adds (TM·TN4 vec4 per chunk). The f16 partial accumulators take the same
   * registers whatever the chunk is.
   */
  chunkK: 4 | 8 | 16 | 32;
}

const DEFAULT_VARIANT: Readonly<MatmulVariant> = {
  kernel: "tiled",
  accumulate: "chunked",
  tile: "auto",
  smallM: "gemv",
  splitK: "auto",
  chunkK: 32,
};
const chosen = new WeakMap<Gpu, MatmulVariant>();

/** The matmul variant in force on `gpu`. */
export function matmulVariant(gpu: Gpu): Readonly<MatmulVariant> {
  return chosen.get(gpu) ?? DEFAULT_VARIANT;
}

/**
 * Selects the matmul kernel on `gpu`; fields not given keep their current value.
 *
 * @example
 * ```ts
 * setMatmulVariant(gpu, { kernel: "naive" }); // baseline for a measurement
 * ```
 */
export function setMatmulVariant(gpu: Gpu, v: Partial<MatmulVariant>): void {
  chosen.set(gpu, { ...matmulVariant(gpu), ...v });
}

/** Problem description shared by every entry point. */
interface Problem {
  a: Tensor;
  b: Tensor;
  bias: Tensor | null;
  residual: Tensor | null;
  batch: number;
  m: number;
  n: number;
  k: number;
  batchB: number; // 0: B broadcast over the batch
  /** 0: A (a weight) shared by every batch item; default m·k. */
  batchA?: number;
  /** Bias indexed by row m instead of column n (a convolution's per-channel bias). */
  biasRow?: boolean;
  transB: boolean;
  alpha: number;
  activation: Activation;
  geglu: boolean;
  outShape: number[];
}

/** One tile configuration of the tiled kernel (see the header of `kernels/linear.wgsl`). */
interface Tile {
  /** Output rows per workgroup. */
  bm: number;
  /** Accumulator columns per workgroup (GEGLU: hidden + gate halves). */
  bn: number;
  /** K per workgroup-memory tile. */
  bk: number;
  /** Rows per invocation. */
  tm: number;
  /** vec4 columns per invocation. */
  tn4: number;
}

/** The tiles of the tiled kernel, by name: rows × accumulator columns _ per-invocation block. */
export const TILES = {
  "128x128_8x8": { bm: 128, bn: 128, bk: 32, tm: 8, tn4: 2 }, // 256 invocations
  "128x64_8x8": { bm: 128, bn: 64, bk: 32, tm: 8, tn4: 2 }, // 128 invocations
  "64x128_4x8": { bm: 64, bn: 128, bk: 32, tm: 4, tn4: 2 }, // 256 invocations
  "64x64_4x8": { bm: 64, bn: 64, bk: 32, tm: 4, tn4: 2 }, // 128 invocations
  "128x64_8x4": { bm: 128, bn: 64, bk: 32, tm: 8, tn4: 1 }, // 256 invocations
  "64x64_4x4": { bm: 64, bn: 64, bk: 32, tm: 4, tn4: 1 }, // 256 invocations
  "64x32_4x4": { bm: 64, bn: 32, bk: 32, tm: 4, tn4: 1 }, // 128 invocations
} as const satisfies Record<string, Tile>;

/** Name of a tile in {@linkcode TILES}. */
export type TileName = keyof typeof TILES;

// Tile choice, measured on an H200 (132 SMs) through Vulkan at SD 1.5's UNet shapes with f16
// storage and f32 accumulation: the first tile of the list whose grid has at least 200
// workgroups; below that, smaller tiles keep more SMs busy. E.g. (ms)
//   [8192,320]→320:    128x64_8x4 0.081, 64x64_4x4 0.082, 128x128_8x8 0.103
//   [2048,2560]→640:   64x64_4x4 0.362, 128x64_8x4 0.395
//   [512,5120]→1280:   64x32_4x4 0.443, 128x64_8x4 0.464, 64x64_4x4 0.546
//   [128,1280]→1280:   64x32_4x4 0.068, 64x64_4x4 0.097
//   GEGLU [512,1280]→2·5120: 128x64_8x8 0.538, 64x128_4x8 0.571, 128x128_8x8 0.633
// BK 64 was slower than 32 everywhere; 4096³: 128x64_8x4 27 TFLOP/s.
const ORDER: readonly TileName[] = ["128x64_8x4", "64x64_4x4", "64x32_4x4"];
const GEGLU_ORDER: readonly TileName[] = ["128x64_8x8", "64x64_4x8"];
const MIN_GROUPS = 200;

function groups(t: Tile, pr: Problem): number {
  const cols = pr.geglu ? 2 * pr.n : pr.n;
  return Math.ceil(pr.m / t.bm) * Math.ceil(cols / t.bn) * pr.batch;
}

function threads(t: Tile): number {
  return (t.bn / (4 * t.tn4)) * (t.bm / t.tm);
}

function pickTile(gpu: Gpu, pr: Problem, s: DType): Tile {
  const forced = matmulVariant(gpu).tile;
  const order = pr.geglu ? GEGLU_ORDER : ORDER;
  let t: Tile = TILES[order.at(-1)!];
  if (forced !== "auto" && (!pr.geglu || TILES[forced].tn4 % 2 === 0)) t = TILES[forced];
  else {
    for (const name of order) {
      if (groups(TILES[name], pr) >= MIN_GROUPS) {
        t = TILES[name];
        break;
      }
    }
  }
  return fitTile(gpu, t, s);
}

/** `t` with BK halved until As [bm][bk] + Bs [bk][bn] of type `s` fit in workgroup memory. */
function fitTile(gpu: Gpu, t: Tile, s: DType): Tile {
  const limit = gpu.device.limits.maxComputeWorkgroupStorageSize;
  while ((t.bm + t.bn) * t.bk * bytesOf(s) > limit && t.bk > 4) t = { ...t, bk: t.bk / 2 };
  return t;
}

/** Most rows of A the GEMV specialization takes (see `kernels/linear.wgsl`). */
const GEMV_MAX_M = 8;

// Split-K (measured on an H200 at the UNet's 8×8–32×32 shapes, GPU time of both passes, µs):
//   [512,5120]→1280 + res:   64x64_4x4 unsplit 550, ×4 319; 64x32_4x4 unsplit (auto before) 436
//   [128,5120]→1280 + res:   64x32 unsplit 644; 64x64 ×8 260
//   [512,1280]→1280:         64x32 unsplit 115; 64x64 ×4 90
//   1×1 2560→1280 at 16×16:  64x32 unsplit 1110; 64x64 ×4 802
//   stride-2 1280 at 16×16:  64x32 unsplit 2047; 64x64 ×8 674
// So when the chosen tile's grid is under four waves (528 workgroups on 132 SMs), the 64×64 tile
// split into enough slices for four waves, up to 8 slices of at least 128 of K each.
const SPLIT_TARGET = 528;
const SPLIT_MAX = 8;
const SPLIT_MIN_K = 128;

/** The tile and number of K slices (1: no split), see {@linkcode MatmulVariant.splitK}. */
function pickSplit(
  gpu: Gpu,
  cfg: MatmulVariant,
  pr: Problem,
  tile: Tile,
  vec: boolean,
  s: DType,
): { tile: Tile; slices: number } {
  if (!vec || pr.geglu || cfg.splitK === "off") return { tile, slices: 1 };
  if (typeof cfg.splitK === "number") {
    return { tile, slices: Math.max(1, Math.min(cfg.splitK, Math.ceil(pr.k / tile.bk))) };
  }
  if (groups(tile, pr) >= SPLIT_TARGET) return { tile, slices: 1 };
  const wide = cfg.tile === "auto" ? fitTile(gpu, TILES["64x64_4x4"], s) : tile;
  const slices = Math.min(
    SPLIT_MAX,
    Math.floor(pr.k / SPLIT_MIN_K),
    Math.ceil(SPLIT_TARGET / groups(wide, pr)),
  );
  return slices > 1 ? { tile: wide, slices } : { tile, slices: 1 };
}

function run(pr: Problem): Tensor {
  const gpu = pr.a.gpu;
  const dtype = pr.a.dtype;
  const cfg = matmulVariant(gpu);
  const naive = cfg.kernel === "naive";
  // s: workgroup memory and products; acc: accumulators (f32 under "chunked": see ACC16C).
  const s: DType = dtype === "f16" && cfg.accumulate !== "f32" ? "f16" : "f32";
  const acc: DType = dtype === "f16" && cfg.accumulate === "f16" ? "f16" : "f32";
  const chunked = s === "f16" && acc === "f32";
  const vec = !naive && pr.k % 4 === 0 && pr.n % 4 === 0;
  // Few rows (time-embedding projections, M = batch): one workgroup per 8 columns instead of tiles.
  const gemv = !naive && vec && cfg.tile === "auto" && cfg.smallM === "gemv" && pr.transB &&
    !pr.geglu && pr.m <= GEMV_MAX_M;
  const picked = naive || gemv ? null : pickTile(gpu, pr, s);
  const { tile, slices: asked } = picked
    ? pickSplit(gpu, cfg, pr, picked, vec, s)
    : { tile: null, slices: 1 };
  // k_split is a multiple of BK; rounding up may leave fewer slices.
  const kSplit = tile ? Math.ceil(Math.ceil(pr.k / asked) / tile.bk) * tile.bk : 0;
  const slices = tile ? Math.ceil(pr.k / kSplit) : 1;
  const split = slices > 1;
  const fusion = [
    pr.bias ? (pr.biasRow ? "_biasrow" : "_bias") : "",
    pr.activation !== "none" ? `_${pr.activation}` : "",
    pr.residual ? "_res" : "",
    pr.geglu ? "_geglu" : "",
  ].join("");
  const epilogue = epilogueDefines(pr, vec);
  const kc = tile ? Math.min(tile.bk, cfg.chunkK) : 0;
  // Only the tiled kernel has workgroup tiles and accumulators of type S (GEMV and naive: f32).
  const accName = !tile
    ? ""
    : chunked
    ? "_acc16c" + (kc === tile.bk ? "" : kc)
    : s !== "f32"
    ? "_acc16"
    : "";
  const name = "matmul_" + (naive ? "naive" : gemv ? "gemv" : "tiled") + `_${dtype}` +
    accName + (pr.transB ? "_nt" : "") + (vec ? "_v4" : "") +
    (tile ? `_${tile.bm}x${tile.bn}x${tile.bk}_${tile.tm}x${4 * tile.tn4}` : "") +
    (split ? "_splitk" : fusion);
  const kernel = gpu.kernel(name, () =>
    specialize(kernelSource("linear.wgsl"), {
      T: dtype,
      S: s,
      SA: acc,
      ACC16C: chunked,
      ACC: chunked ? "part" : "acc",
      KC4: kc / 4,
      NAIVE: naive,
      GEMV: gemv,
      SPLIT_K: split,
      TRANS_B: pr.transB,
      VEC: vec,
      ...(split ? epilogueDefines(null, vec) : epilogue),
      ...bindings(split ? null : pr.bias, split ? null : pr.residual, 3),
      BM: tile?.bm ?? 0,
      BN: tile?.bn ?? 0,
      BK: tile?.bk ?? 0,
      TM: tile?.tm ?? 0,
      TN4: tile?.tn4 ?? 0,
      WX: tile ? tile.bn / (4 * tile.tn4) : 0,
      WY: tile ? tile.bm / tile.tm : 0,
      A_LOADS: tile ? (tile.bm * tile.bk / 4) / threads(tile) : 0,
      B_LOADS: tile ? (tile.bk * tile.bn / 4) / threads(tile) : 0,
      TN4_OUT: tile ? (pr.geglu ? tile.tn4 / 2 : tile.tn4) : 0,
    }));
  const out = Tensor.empty(gpu, pr.outShape, dtype, name);
  const uniforms = (batchA: number) =>
    new Uniforms()
      .u32(pr.m).u32(pr.n).u32(pr.k)
      .u32(batchA).u32(pr.batchB).u32(pr.m * pr.n)
      .f32(pr.alpha).u32(kSplit).buffer;
  const batchA = pr.batchA ?? pr.m * pr.k;
  const epilogueBufs = [pr.bias, pr.residual].filter((t) => t !== null).map((t) => t.buffer);
  const cols = pr.geglu ? 2 * pr.n : pr.n;
  const flops = 2 * pr.batch * pr.m * cols * pr.k;
  const bytes = pr.a.bytes + pr.b.bytes + out.bytes + (pr.residual?.bytes ?? 0);
  if (split) {
    const partial = Tensor.empty(gpu, [pr.batch * slices * pr.m * pr.n], "f32", name);
    gpu.dispatch(
      kernel,
      uniforms(batchA),
      [pr.a.buffer, pr.b.buffer, partial.buffer],
      [Math.ceil(pr.n / tile!.bn), Math.ceil(pr.m / tile!.bm), pr.batch * slices],
      { flops, bytes: bytes - out.bytes + partial.bytes },
    );
    const rname = `matmul_splitk_reduce_${dtype}${fusion}`;
    const reduce = gpu.kernel(rname, () =>
      specialize(kernelSource("linear.wgsl"), {
        T: dtype,
        SPLITK_REDUCE: true,
        VEC: true,
        ...epilogue,
        ...bindings(pr.bias, pr.residual, 2),
      }));
    // The reduce pass reads its batch count from batch_a.
    gpu.dispatch(
      reduce,
      uniforms(pr.batch),
      [partial.buffer, ...epilogueBufs, out.buffer],
      grid1d(pr.batch * pr.m * pr.n / 4),
      { bytes: partial.bytes + out.bytes + (pr.residual?.bytes ?? 0) },
    );
    partial.release();
    return out;
  }
  const grid: [number, number, number] = gemv ? [Math.ceil(pr.n / 8), 1, pr.batch] : tile
    ? [
      Math.ceil(pr.n / (pr.geglu ? tile.bn / 2 : tile.bn)),
      Math.ceil(pr.m / tile.bm),
      pr.batch,
    ]
    : [Math.ceil(pr.n / 16), Math.ceil(pr.m / 16), pr.batch];
  gpu.dispatch(
    kernel,
    uniforms(batchA),
    [pr.a.buffer, pr.b.buffer, ...epilogueBufs, out.buffer],
    grid,
    { flops, bytes },
  );
  return out;
}

/** The epilogue's specialization defines for `pr` (none for null: split-K's partial tiles). */
function epilogueDefines(pr: Problem | null, vec: boolean): Defines {
  const act = pr?.activation ?? "none";
  const biasRow = !!pr?.bias && (pr.biasRow ?? false);
  return {
    BIAS: !!pr?.bias,
    BIAS_ROW: biasRow,
    BIAS_V4: vec && !biasRow,
    RESIDUAL: !!pr?.residual,
    GEGLU: !!pr?.geglu,
    GEGLU_ON: pr?.geglu ? "true" : "false",
    ACT_GELU: act === "gelu",
    ACT_QUICK_GELU: act === "quick_gelu",
    ACT_SILU: act === "silu",
  };
}

/** Binding numbers of bias, residual and C after `first - 1` operand bindings. */
function bindings(bias: Tensor | null, residual: Tensor | null, first: number) {
  const BIND_BIAS = first;
  const BIND_RES = first + (bias ? 1 : 0);
  const BIND_C = BIND_RES + (residual ? 1 : 0);
  return { BIND_BIAS, BIND_RES, BIND_C };
}

function checkDtypes(op: string, ts: (Tensor | null | undefined)[]): DType {
  const dtype = ts[0]!.dtype;
  for (const t of ts) {
    if (t && t.dtype !== dtype) {
      throw new Error(`${op}: mixed dtypes ${ts.map((x) => x?.dtype).join(", ")}`);
    }
  }
  return dtype;
}

/**
 * `y = x · wᵀ + b`, then the activation, then `+ residual`: torch `Linear` on the last axis, with
 * everything after the sum fused into the matmul's epilogue.
 *
 * @param x input `[..., K]`
 * @param w weight `[N, K]` (torch layout; read along K, never transposed in memory)
 * @param b bias `[N]`, or null/undefined
 * @param opts `activation` (default none) and `residual` `[..., N]` added last
 * @returns `[..., N]`
 *
 * @example
 * ```ts
 * const h = linear(x, w1, b1, { activation: "gelu" });
 * const y = linear(h, w2, b2, { residual: x });
 * ```
 */
export function linear(
  x: Tensor,
  w: Tensor,
  b?: Tensor | null,
  opts: { activation?: Activation; residual?: Tensor } = {},
): Tensor {
  checkDtypes("linear", [x, w, b, opts.residual]);
  const k = x.shape.at(-1)!;
  if (w.shape.length !== 2 || w.shape[1] !== k) {
    throw new Error(`linear: weight [${w.shape}] does not match input [${x.shape}]`);
  }
  const n = w.shape[0];
  if (b && b.size !== n) throw new Error(`linear: bias [${b.shape}] for ${n} outputs`);
  const outShape = [...x.shape.slice(0, -1), n];
  const m = x.size / k;
  if (opts.residual && opts.residual.size !== m * n) {
    throw new Error(`linear: residual [${opts.residual.shape}] for output [${outShape}]`);
  }
  return run({
    a: x,
    b: w,
    bias: b ?? null,
    residual: opts.residual ?? null,
    batch: 1,
    m,
    n,
    k,
    batchB: 0,
    transB: true,
    alpha: 1,
    activation: opts.activation ?? "none",
    geglu: false,
    outShape,
  });
}

/**
 * `y[b] = act(w · x[b] + bias[:, None]) + residual[b]`: one weight matrix `w [M, K]` applied to
 * every batch item's `x[b] [K, N]` — a 1×1 convolution in NCHW (`K` input channels, `N` pixels),
 * or any convolution over its im2col columns. Bias is per output row (channel).
 *
 * @param w weight with `M·K` values, row-major `[M, K]` (e.g. `[O, C, 1, 1]` or `[O, C, 3, 3]`)
 * @param x `[B, K, N]` (any shape with B·K·N values, batch first)
 * @returns `outShape` (B·M·N values)
 */
export function channelProjection(
  w: Tensor,
  x: Tensor,
  dims: { batch: number; m: number; k: number; n: number },
  opts: {
    bias?: Tensor | null;
    residual?: Tensor | null;
    activation?: Activation;
    outShape: number[];
  },
): Tensor {
  checkDtypes("channelProjection", [w, x, opts.bias, opts.residual]);
  const { batch, m, k, n } = dims;
  if (w.size !== m * k || x.size !== batch * k * n) {
    throw new Error(
      `channelProjection: w [${w.shape}] and x [${x.shape}] do not fit ${batch}×[${m}, ${k}]·[${k}, ${n}]`,
    );
  }
  if (opts.bias && opts.bias.size !== m) {
    throw new Error(`channelProjection: bias [${opts.bias.shape}] for ${m} rows`);
  }
  if (opts.residual && opts.residual.size !== batch * m * n) {
    throw new Error(
      `channelProjection: residual [${opts.residual.shape}] for ${batch}×[${m}, ${n}]`,
    );
  }
  return run({
    a: w,
    b: x,
    bias: opts.bias ?? null,
    biasRow: true,
    residual: opts.residual ?? null,
    batch,
    m,
    n,
    k,
    batchA: 0,
    batchB: k * n,
    transB: false,
    alpha: 1,
    activation: opts.activation ?? "none",
    geglu: false,
    outShape: opts.outShape,
  });
}

/**
 * Batched `out = alpha · a · b` (or `a · bᵀ` with `transB`).
 *
 * @param a `[B, M, K]` (or `[M, K]`)
 * @param b `[B, K, N]`, or `[B, N, K]` with `transB`; its batch may be 1 (shared by every item)
 * @returns `[B, M, N]` (`[M, N]` for 2-D `a`)
 *
 * @example
 * ```ts
 * const scores = matmul(q, k, { transB: true, alpha: 1 / Math.sqrt(headDim) });
 * ```
 */
export function matmul(
  a: Tensor,
  b: Tensor,
  opts: { transB?: boolean; alpha?: number } = {},
): Tensor {
  checkDtypes("matmul", [a, b]);
  const transB = opts.transB ?? false;
  const a3 = a.shape.length === 2 ? [1, ...a.shape] : [...a.shape];
  const b3 = b.shape.length === 2 ? [1, ...b.shape] : [...b.shape];
  if (a3.length !== 3 || b3.length !== 3) {
    throw new Error(`matmul: expected 2-D or 3-D operands, got [${a.shape}] and [${b.shape}]`);
  }
  const [batch, m, k] = a3;
  const [bb, r0, r1] = b3;
  const [kb, n] = transB ? [r1, r0] : [r0, r1];
  if (kb !== k || (bb !== batch && bb !== 1)) {
    throw new Error(
      `matmul: cannot multiply [${a.shape}] by [${b.shape}]${transB ? " (transB)" : ""}`,
    );
  }
  return run({
    a,
    b,
    bias: null,
    residual: null,
    batch,
    m,
    n,
    k,
    batchB: bb === 1 ? 0 : k * n,
    transB,
    alpha: opts.alpha ?? 1,
    activation: "none",
    geglu: false,
    outShape: a.shape.length === 2 ? [m, n] : [batch, m, n],
  });
}

/**
 * SD's feed-forward GEGLU: `proj = x · wᵀ + b` with `w [2F, K]`, then
 * `proj[..., :F] · GELU(proj[..., F:])` (erf-exact GELU; diffusers' `hidden, gate = chunk(2)`).
 * With `variants(gpu).gelu === "fused"` one matmul computes both halves and multiplies in its
 * epilogue (no `[..., 2F]` tensor); `"naive"` runs linear → split → GELU → multiply.
 *
 * @returns `[..., F]`
 */
export function geglu(x: Tensor, w: Tensor, b: Tensor): Tensor {
  checkDtypes("geglu", [x, w, b]);
  const k = x.shape.at(-1)!;
  if (w.shape.length !== 2 || w.shape[1] !== k || w.shape[0] % 2 !== 0 || b.size !== w.shape[0]) {
    throw new Error(`geglu: weight [${w.shape}], bias [${b.shape}] do not fit input [${x.shape}]`);
  }
  const f = w.shape[0] / 2;
  const m = x.size / k;
  const outShape = [...x.shape.slice(0, -1), f];
  if (variants(x.gpu).gelu === "fused") {
    return run({
      a: x,
      b: w,
      bias: b,
      residual: null,
      batch: 1,
      m,
      n: f,
      k,
      batchB: 0,
      transB: true,
      alpha: 1,
      activation: "none",
      geglu: true,
      outShape,
    });
  }
  const proj = linear(x, w, b);
  const [hidden, gate] = splitHalves(proj, m, f);
  proj.release();
  const g = unary("gelu", gate);
  gate.release();
  const y = mul(hidden, g);
  hidden.release();
  g.release();
  const out = y.reshape(outShape);
  y.release();
  return out;
}
