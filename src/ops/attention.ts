/**
 * Multi-head scaled-dot-product attention, three ways (selected by `variants(gpu).attention`):
 * FlashAttention (`kernels/attention_flash.wgsl`), the paper's partitioned softmax
 * (`kernels/attention_partitioned.wgsl`) and the unfused scores → softmax → P·V
 * (`kernels/attention_naive.wgsl`).
 *
 * @module
 */

import { bytesOf, type Gpu, GpuError, type Kernel } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { kernelSource, specialize, Uniforms } from "../gpu/wgsl.ts";
import { variants } from "./variants.ts";

/** Options of {@linkcode attention}. */
export interface AttentionOptions {
  /** Mask key j for query i when j > i (CLIP's text encoder). Default false. */
  causal?: boolean;
  /** Multiplier of Q Kᵀ before the softmax. Default 1/√d. */
  scale?: number;
}

/** Largest head dim the kernels take. */
export const MAX_HEAD_DIM = 512;

const LOG2E = Math.LOG2E;
/**
 * Largest intermediate buffer (bytes) of one dispatch: the naive path's scores and the
 * partitioned path's partial O. Larger problems run in chunks of batch·heads, then of query rows
 * (each cap is further limited by the adapter's largest storage binding). Writable so tests can
 * force the chunked paths on small shapes.
 */
export const chunkLimits = { naiveScores: 1 << 30, partials: 512 << 20 };

/** `--attention auto`: the largest head dim that uses flash (naive above it). */
export const AUTO_FLASH_MAX_HEAD_DIM = 80;

/**
 * Multi-head attention on token-major tensors with the heads interleaved in the channel dim, as
 * diffusers' `to_q`/`to_k`/`to_v` produce them before the head split:
 * q [B, Nq, H·d], k and v [B, Nk, H·d] → out [B, Nq, H·d], where per head
 * `out_h = softmax(q_h k_hᵀ · scale + mask) v_h`. Softmax statistics and accumulation are f32
 * whatever the storage dtype.
 *
 * @example
 * ```ts
 * const out = attention(q, k, v, 8); // UNet self-attention, [2, 4096, 320] → [2, 4096, 320]
 * const txt = attention(q, k, v, 12, { causal: true }); // CLIP
 * ```
 */
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  heads: number,
  opts: AttentionOptions = {},
): Tensor {
  const s = checkShapes(q, k, v, heads);
  const scale = opts.scale ?? 1 / Math.sqrt(s.d);
  const causal = !!opts.causal;
  const out = Tensor.empty(q.gpu, q.shape, q.dtype, "attention");
  const call: Call = { q, k, v, out, s, scale, causal };
  const gpu = q.gpu;
  const chosen = variants(gpu).attention;
  // auto: flash where the rows kernel runs (d ≤ 80 with enough query rows), naive elsewhere —
  // CLIP's 2×12×77 rows, d 160, the VAE's d 512 — so a run compiles few attention kernels.
  const useFlash = s.d <= AUTO_FLASH_MAX_HEAD_DIM && rowTiles(gpu, s) !== null;
  let run = chosen === "auto" ? (useFlash ? "flash" : "naive") : chosen;
  // A flash or partitioned kernel whose tiles cannot fit the device's workgroup memory (WebGPU's
  // 16 KiB default, wide heads): the naive kernels (8 KiB) instead.
  if (run === "flash" && !rowTiles(gpu, s) && !flashTiles(gpu, s)) run = "naive";
  if (run === "partitioned" && !partitionTiles(gpu, s)) run = "naive";
  switch (run) {
    case "flash":
      flash(call);
      break;
    case "partitioned":
      partitioned(call);
      break;
    case "naive":
      naive(call);
      break;
  }
  return out;
}

/**
 * Dispatch chunks whose intermediate (`rowBytes` per query row and head) fits `cap`: `nbh` whole
 * heads at a time, or — when one head does not fit — `rows` query rows (a multiple of `align`)
 * of one head.
 */
function chunking(
  heads: number,
  nq: number,
  rowBytes: number,
  cap: number,
  align: number,
): { nbh: number; rows: number } {
  if (nq * rowBytes <= cap) {
    return { nbh: Math.min(heads, Math.floor(cap / (nq * rowBytes))), rows: nq };
  }
  const rows = Math.floor(cap / rowBytes / align) * align;
  if (rows < align) {
    throw new GpuError(
      `attention: ${align} query rows need ${
        align * rowBytes
      } bytes of intermediates, over this adapter's ${cap}`,
    );
  }
  return { nbh: 1, rows };
}

/** The chunks of a {@linkcode chunking} plan: heads bh0 … bh0+n−1, query rows i0 … i0+r−1. */
function* chunks(
  plan: { nbh: number; rows: number },
  heads: number,
  nq: number,
): Generator<{ bh0: number; n: number; i0: number; r: number }> {
  for (let bh0 = 0; bh0 < heads; bh0 += plan.nbh) {
    for (let i0 = 0; i0 < nq; i0 += plan.rows) {
      yield { bh0, n: Math.min(plan.nbh, heads - bh0), i0, r: Math.min(plan.rows, nq - i0) };
    }
  }
}

/** Throws naming `kernel` when it needs more workgroup memory than the adapter has. */
function checkWorkgroupMemory(gpu: Gpu, kernel: string, bytes: number): void {
  const limit = gpu.device.limits.maxComputeWorkgroupStorageSize;
  if (bytes > limit) {
    throw new GpuError(
      `kernel ${kernel} needs ${bytes} bytes of workgroup memory; this adapter has ${limit}`,
    );
  }
}

/** Problem sizes. */
interface Shape {
  b: number;
  nq: number;
  nk: number;
  h: number;
  d: number;
}

/** One attention call: operands, sizes and softmax options. */
interface Call {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  out: Tensor;
  s: Shape;
  scale: number;
  causal: boolean;
}

function checkShapes(q: Tensor, k: Tensor, v: Tensor, heads: number): Shape {
  const bad = (why: string) =>
    new Error(
      `attention: ${why} (q [${q.shape}] ${q.dtype}, k [${k.shape}] ${k.dtype}, v [${v.shape}] ${v.dtype}, ${heads} heads)`,
    );
  if (q.shape.length !== 3 || k.shape.length !== 3 || v.shape.length !== 3) {
    throw bad("q, k, v must be [B, N, H·d]");
  }
  const [b, nq, c] = q.shape;
  const [bk, nk, ck] = k.shape;
  if (bk !== b || ck !== c || v.shape[0] !== b || v.shape[1] !== nk || v.shape[2] !== c) {
    throw bad("batch and channels must agree, and k and v must have one shape");
  }
  if (q.dtype !== k.dtype || q.dtype !== v.dtype) throw bad("q, k, v must share a dtype");
  if (!Number.isInteger(heads) || heads < 1 || c % heads !== 0) {
    throw bad("channels must split evenly into heads");
  }
  const d = c / heads;
  if (d > MAX_HEAD_DIM) throw bad(`head dim ${d} exceeds ${MAX_HEAD_DIM}`);
  if (nq < 1 || nk < 1) throw bad("empty sequence");
  return { b, nq, nk, h: heads, d };
}

/** 4·B·H·Nq·Nk·d: the two matmuls' multiply-adds, counted as 2 flops each. */
function attentionFlops(s: Shape): number {
  return 4 * s.b * s.h * s.nq * s.nk * s.d;
}

/** vec4s of d per staged Q/K chunk: a divisor of ⌈d/4⌉ up to 10 where one exists. */
function chunkVec4s(d: number): number {
  const d4 = Math.ceil(d / 4);
  if (d4 <= 10) return d4;
  for (let c = 10; c >= 4; c--) if (d4 % c === 0) return c;
  return Math.ceil(d4 / Math.ceil(d4 / 10));
}

/** Flash kernel geometry (see the header of `kernels/attention_flash.wgsl`). */
interface FlashTiles {
  /** Q rows per invocation: 4, or 2 or 1 for small grids or wide O. */
  rm: number;
  /** Invocations across a row: keys per tile = 4·tc, vec4 column groups of O = tc·cg. */
  tc: number;
  /** vec4 column groups of O per invocation. */
  cg: number;
  /** vec4s of d per staged Q/K chunk. */
  kc4: number;
  /** Keys per staged V slab. */
  vc: number;
}

/** Workgroup-memory words (f32) the kernels may use: the smallest limit we target (32 KiB). */
const SMEM_WORDS = 8192;
/** Fewer workgroups than this leave a large GPU idle: use fewer rows per invocation. */
const MIN_GROUPS = 512;

/**
 * Tiles for head dim `s.d`, `partitions` workgroups per Q tile (1 for flash), within
 * {@linkcode SMEM_WORDS} and the device's workgroup memory; null when none fits.
 */
function flashTiles(gpu: Gpu, s: Shape, partitions = 1): FlashTiles | null {
  const words = Math.min(SMEM_WORDS, gpu.limits.maxComputeWorkgroupStorageSize / 4);
  const d4 = Math.ceil(s.d / 4);
  // Fewest wasted column groups; among equals the widest row of invocations up to 10.
  let best = { tc: 4, cg: Math.ceil(d4 / 4) };
  for (let tc = 4; tc <= 10; tc++) {
    const cg = Math.ceil(d4 / tc);
    if (tc * cg - d4 <= best.tc * best.cg - d4) best = { tc, cg };
  }
  // At most 16 vec4 accumulators (64 registers) per invocation, and enough workgroups.
  let rm = best.cg <= 4 ? 4 : best.cg <= 8 ? 2 : 1;
  const groups = (rm: number) => Math.ceil(s.nq / (16 * rm)) * s.b * s.h * partitions;
  while (rm > 1 && groups(rm) < MIN_GROUPS) rm /= 2;
  const kc4 = chunkVec4s(s.d);
  const bc = 4 * best.tc;
  const stage = (rm: number) => (16 * rm + bc) * (kc4 + 1) * 4;
  const rest = (rm: number) => bc * 16 * rm + 16 * rm * best.tc; // P and the reduction scratch
  const need = (rm: number, vc: number) =>
    Math.max(stage(rm), vc * best.tc * best.cg * 4) + rest(rm);
  let vc = bc;
  for (;;) {
    while (vc % 2 === 0 && need(rm, vc) > words) vc /= 2;
    if (need(rm, vc) <= words) return { rm, ...best, kc4, vc };
    if (rm === 1) return null;
    rm /= 2; // fewer Q rows per invocation: less staging (small workgroup memory)
    vc = bc;
  }
}

/** The partitioned kernel's partitions and tiles for `s`, or null when its tiles cannot fit. */
function partitionTiles(
  gpu: Gpu,
  s: Shape,
): { nsub: number; np: number; t: FlashTiles } | null {
  // Partition = NSUB sub-tiles of 4·tc keys, S held in registers: 4 sub-tiles, 2 for wide O.
  const base = flashTiles(gpu, s);
  if (!base) return null;
  const nsub = base.cg >= 3 ? 2 : 4;
  const np = Math.ceil(s.nk / (nsub * 4 * base.tc));
  const t = flashTiles(gpu, s, np);
  return t && { nsub, np, t };
}

/** The name part that tells flash / partial kernel geometries apart. */
function tilesName(t: FlashTiles, vec: boolean): string {
  return `${vec ? "_vec4" : ""}_rm${t.rm}_tc${t.tc}_cg${t.cg}_kc${t.kc4}_vc${t.vc}`;
}

/** Workgroup-memory layout and specialization values shared by the flash and partial kernels. */
function tileDefines(
  gpu: Gpu,
  name: string,
  t: FlashTiles,
  vec: boolean,
): Record<string, number | boolean> {
  const br = 16 * t.rm, bc = 4 * t.tc, wg = 16 * t.tc, gw = t.tc * t.cg;
  const pt = Math.max((br + bc) * (t.kc4 + 1), t.vc * gw); // vec4s of staging
  const pvec = t.rm === 4;
  const smv = pt + (pvec ? bc * 16 : 0);
  const red = br * t.tc;
  const psz = pvec ? 0 : bc * br;
  checkWorkgroupMemory(gpu, name, 16 * smv + 4 * (red + psz));
  return {
    VEC: vec,
    RM: t.rm,
    PVEC: pvec,
    TC: t.tc,
    CG: t.cg,
    KC4: t.kc4,
    VC: t.vc,
    PT: pt,
    SMV: smv,
    RED: red,
    PSZ: psz,
    WGS: wg,
    NQL: Math.ceil((br * t.kc4) / wg),
    NKL: Math.ceil((bc * t.kc4) / wg),
    NVL: Math.ceil((t.vc * gw) / wg),
  };
}

/** Rows-kernel geometry (see the header of `kernels/attention_flash.wgsl`). */
export interface RowTiles {
  /** Invocations per key split (a multiple of 32). */
  br: number;
  /** Query rows per invocation: a workgroup covers br·rm rows. */
  rm: number;
  /** Key splits: invocations sharing a query row, merged at the end. */
  ks: number;
  /** Keys per staged K/V tile (a multiple of ks·sb). */
  bc: number;
  /** Keys per softmax sub-block. */
  sb: number;
}

/**
 * Which flash kernel runs. `kernel`: "auto" takes the rows kernel where it applies (d % 4 = 0,
 * d ≤ 80) and the tiled kernel elsewhere; "tiled" always takes the tiled kernel. `rowTiles`
 * overrides the rows kernel's geometry. Writable so tests and benches can pin either path.
 */
export const flashChoice: { kernel: "auto" | "tiled"; rowTiles: RowTiles | null } = {
  kernel: "auto",
  rowTiles: null,
};

/** Fewer query rows (B·H·Nq) than this run faster on the tiled kernel (CLIP's 2×12×77). */
const MIN_ROWS = 1 << 14;

/**
 * Rows-kernel tiles for `s`, or null where the tiled kernel runs instead. Measured on an H200
 * (f16): d 40 takes 2 rows an invocation (K and V loads shared by both); d 80 one row (two would
 * spill), with the keys split over 2 invocations to fill the GPU.
 */
function rowTiles(gpu: Gpu, s: Shape): RowTiles | null {
  if (flashChoice.kernel === "tiled" || s.d % 4 !== 0 || s.d > 80) return null;
  if (flashChoice.rowTiles) return fitRowTiles(gpu, flashChoice.rowTiles, s.d / 4);
  if (s.b * s.h * s.nq < MIN_ROWS) return null;
  // One geometry per head dim for long (self) and short (77 text tokens) key sequences alike:
  // narrower tiles for the short ones saved little and cost a pipeline each (~0.6 s to compile).
  return fitRowTiles(
    gpu,
    s.d <= 40 ? { br: 128, rm: 2, ks: 1, bc: 64, sb: 8 } : { br: 64, rm: 1, ks: 2, bc: 32, sb: 4 },
    s.d / 4,
  );
}

/**
 * `t` shrunk until its workgroup memory fits the device (both geometries above need 20 KiB, over
 * WebGPU's 16 KiB default): fewer keys per K/V tile while those dominate, then fewer invocations
 * per key split (the split merge), then no split; null when nothing fits.
 */
function fitRowTiles(gpu: Gpu, t: RowTiles, d4: number): RowTiles | null {
  const limit = gpu.limits.maxComputeWorkgroupStorageSize;
  while (16 * rowSmemVec4s(t, d4) > limit) {
    const kv = 2 * t.bc * d4, merge = (t.ks - 1) * t.br * t.rm * (d4 + 1);
    if (kv >= merge && (t.bc / 2) % (t.ks * t.sb) === 0) t = { ...t, bc: t.bc / 2 };
    else if (merge > 0 && t.br > 32) t = { ...t, br: t.br / 2 };
    else if (t.ks > 1) t = { ...t, ks: 1 };
    else return null;
  }
  return t;
}

/** Workgroup memory of the rows kernel in vec4s: the K and V tiles, or the split merge. */
function rowSmemVec4s(t: RowTiles, d4: number): number {
  return Math.max(2 * t.bc * d4, (t.ks - 1) * t.br * t.rm * (d4 + 1));
}

function flash(c: Call): void {
  const rt = rowTiles(c.q.gpu, c.s);
  if (rt) flashRows(c, rt);
  else flashTiled(c);
}

/** The rows kernel: one invocation per (query row, key split), d ≤ 80, d % 4 = 0. */
function flashRows(c: Call, t: RowTiles): void {
  const { q, s } = c;
  const gpu = q.gpu;
  const d4 = s.d / 4;
  const kp = t.bc / t.ks;
  if (t.br % 32 !== 0 || t.bc % t.ks !== 0 || kp % t.sb !== 0) {
    throw new Error(`attention: bad rows-kernel tiles ${JSON.stringify(t)}`);
  }
  const wg = t.br * t.ks;
  const smv = rowSmemVec4s(t, d4);
  const name =
    `attention_flash_rows_${q.dtype}_d${s.d}_br${t.br}_rm${t.rm}_ks${t.ks}_bc${t.bc}_sb${t.sb}`;
  checkWorkgroupMemory(gpu, name, 16 * smv);
  const kernel = gpu.kernel(
    name,
    () =>
      specialize(kernelSource("attention_flash.wgsl"), {
        T: q.dtype,
        ROWS: true,
        VEC: true,
        D4: d4,
        BR: t.br,
        RM: t.rm,
        KS: t.ks,
        BC: t.bc,
        KP: kp,
        SB: t.sb,
        WGS: wg,
        NL: Math.ceil((t.bc * d4) / wg),
        SMV: smv,
      }),
  );
  dispatchFlash(kernel, c, t.br * t.rm);
}

/** The tiled kernel: 16×TC invocations per Q tile, any head dim. */
function flashTiled(c: Call): void {
  const { q, s } = c;
  const gpu = q.gpu;
  const t = flashTiles(gpu, s)!; // attention() runs naive where it is null
  const vec = s.d % 4 === 0;
  const name = `attention_flash_${q.dtype}${tilesName(t, vec)}`;
  const kernel = gpu.kernel(
    name,
    () =>
      specialize(kernelSource("attention_flash.wgsl"), {
        T: q.dtype,
        ...tileDefines(gpu, name, t, vec),
      }),
  );
  dispatchFlash(kernel, c, 16 * t.rm);
}

/** One flash dispatch: a workgroup per `rowsPerGroup` query rows of each (batch, head). */
function dispatchFlash(kernel: Kernel, c: Call, rowsPerGroup: number): void {
  const { q, k, v, out, s, scale, causal } = c;
  const u = new Uniforms()
    .u32(s.nq).u32(s.nk).u32(s.h).u32(s.d)
    .f32(scale * LOG2E).u32(causal ? 1 : 0).u32(0).u32(0).buffer;
  q.gpu.dispatch(
    kernel,
    u,
    [q.buffer, k.buffer, v.buffer, out.buffer],
    [Math.ceil(s.nq / rowsPerGroup), s.b * s.h],
    { flops: attentionFlops(s), bytes: q.bytes + k.bytes + v.bytes + out.bytes },
  );
}

function partitioned(c: Call): void {
  const { q, k, v, out, s, scale, causal } = c;
  const gpu = q.gpu;
  const vec = s.d % 4 === 0;
  const { nsub, np, t } = partitionTiles(gpu, s)!; // attention() runs naive where it is null
  const partial = `attention_partitioned_partial_${q.dtype}${tilesName(t, vec)}_sub${nsub}`;
  const combine = `attention_partitioned_combine_${q.dtype}`;
  const src = kernelSource("attention_partitioned.wgsl");
  const kPartial = gpu.kernel(partial, () =>
    specialize(src, {
      T: q.dtype,
      PARTIAL: true,
      NSUB: nsub,
      ...tileDefines(gpu, partial, t, vec),
    }));
  const kCombine = gpu.kernel(combine, () => specialize(src, { T: q.dtype, COMBINE: true }));

  // Chunks of whole heads when a head's partials fit the cap, else of query rows of one head.
  const bhAll = s.b * s.h;
  const rowBytes = np * s.d * 4;
  const cap = Math.min(gpu.maxBinding, chunkLimits.partials);
  const plan = chunking(bhAll, s.nq, rowBytes, cap, 16 * t.rm);
  const { nbh, rows } = plan;
  const ml = Tensor.empty(gpu, [2, nbh, np, rows], "f32", "attention_partitioned_ml");
  const op = Tensor.empty(gpu, [nbh, np, rows, s.d], "f32", "attention_partitioned_o");
  const esize = bytesOf(q.dtype);
  for (const { bh0, n, i0, r } of chunks(plan, bhAll, s.nq)) {
    const u = new Uniforms()
      .u32(s.nq).u32(s.nk).u32(s.h).u32(s.d)
      .f32(scale * LOG2E).u32(causal ? 1 : 0).u32(np).u32(bh0)
      .u32(0).u32(nbh * np * rows).u32(i0).u32(rows).buffer;
    const frac = (n * r) / (bhAll * s.nq);
    const partialBytes = n * r * rowBytes;
    gpu.dispatch(
      kPartial,
      u,
      [q.buffer, k.buffer, v.buffer, ml.buffer, op.buffer],
      [Math.ceil(r / (16 * t.rm)), np, n],
      {
        flops: attentionFlops(s) * frac,
        bytes: (q.bytes + 2 * k.bytes) * frac + partialBytes,
      },
    );
    gpu.dispatch(kCombine, u, [ml.buffer, op.buffer, out.buffer], [r, n], {
      bytes: partialBytes + n * r * s.d * esize,
    });
  }
  ml.release();
  op.release();
}

function naive(c: Call): void {
  const { q, k, v, out, s, scale, causal } = c;
  const gpu = q.gpu;
  const src = kernelSource("attention_naive.wgsl");
  const kScores = gpu.kernel(
    `attention_naive_scores_${q.dtype}`,
    () => specialize(src, { T: q.dtype, SCORES: true }),
  );
  const kSoftmax = gpu.kernel("attention_naive_softmax", () => specialize(src, { SOFTMAX: true }));
  const kPv = gpu.kernel(
    `attention_naive_pv_${q.dtype}`,
    () => specialize(src, { T: q.dtype, PV: true }),
  );

  // Chunks of whole heads when a head's S fits the cap, else of query rows of one head.
  const bhAll = s.b * s.h;
  const rowBytes = s.nk * 4;
  const cap = Math.min(gpu.maxBinding, chunkLimits.naiveScores);
  const plan = chunking(bhAll, s.nq, rowBytes, cap, 64);
  const sBuf = Tensor.empty(gpu, [plan.nbh, plan.rows, s.nk], "f32", "attention_naive_s");
  const esize = bytesOf(q.dtype);
  for (const { bh0, n, i0, r } of chunks(plan, bhAll, s.nq)) {
    const u = new Uniforms()
      .u32(s.nq).u32(s.nk).u32(s.h).u32(s.d)
      .f32(scale).u32(causal ? 1 : 0).u32(bh0).u32(i0)
      .u32(r).u32(0).u32(0).u32(0).buffer;
    const sBytes = n * r * rowBytes;
    const mm = 2 * n * r * s.nk * s.d;
    gpu.dispatch(
      kScores,
      u,
      [q.buffer, k.buffer, sBuf.buffer],
      [Math.ceil(s.nk / 64), Math.ceil(r / 64), n],
      { flops: mm, bytes: sBytes + n * (r + s.nk) * s.d * esize },
    );
    gpu.dispatch(kSoftmax, u, [sBuf.buffer], [r, n], { bytes: 3 * sBytes });
    gpu.dispatch(
      kPv,
      u,
      [sBuf.buffer, v.buffer, out.buffer],
      [Math.ceil(s.d / 64), Math.ceil(r / 64), n],
      { flops: mm, bytes: sBytes + n * (r + s.nk) * s.d * esize },
    );
  }
  sBuf.release();
}
