/**
 * 2-D convolution with torch.nn.Conv2d semantics on NCHW tensors: an implicit-GEMM direct kernel
 * (`kernels/conv2d_direct.wgsl`) for every shape, Winograd F(2×2, 3×3)
 * (`kernels/conv2d_winograd.wgsl`) for 3×3 stride-1 padding-1 convolutions unless
 * `variants(gpu).conv` is `"direct"`, and with `"auto"` (the default) the other convolutions as a
 * GEMM on the tiled matmul (im2col columns, `kernels/conv2d_im2col.wgsl`, where not 1×1). Bias, a
 * residual and SiLU are fused into the epilogue.
 *
 * @module
 */

import { bytesOf, type DType, type Gpu } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { kernelSource, specialize, Uniforms } from "../gpu/wgsl.ts";
import { channelProjection, matmulVariant } from "./linear.ts";
import { grid1d } from "../gpu/grid.ts";
import { variants } from "./variants.ts";

/** Options of {@linkcode conv2d}. */
export interface Conv2dOptions {
  /** Step in both directions (default 1). */
  stride?: 1 | 2;
  /** Zero padding: one number for every side, or `[top, bottom, left, right]` (default 0). */
  padding?: number | [number, number, number, number];
  /** `[B, O, H', W']`, added last, after the activation (a ResNet skip connection). */
  residual?: Tensor;
  /** Applied to the convolution plus bias, before the residual (default `"none"`). */
  activation?: "none" | "silu";
}

/** Output size of one spatial dimension (PyTorch's floor rule). */
function outSize(size: number, k: number, padBefore: number, padAfter: number, s: number): number {
  return Math.floor((size + padBefore + padAfter - k) / s) + 1;
}

/**
 * `y = act(conv(x, w) + b) + residual` with torch.nn.Conv2d semantics (the order of matmul's
 * epilogue).
 *
 * `x` is `[B, C, H, W]`, `w` `[O, C, k, k]` with k = 1 or 3, `b` `[O]`, all of one dtype; the
 * result is `[B, O, H', W']` with `H' = ⌊(H + top + bottom − k) / stride⌋ + 1` (likewise W').
 * 3×3 stride-1 convolutions with symmetric padding 1 use Winograd F(2×2, 3×3) unless
 * `variants(gpu).conv === "direct"` (the transformed weight is made by {@linkcode prepareConv} on
 * first use); with `"auto"` the rest run as a GEMM on the tiled matmul, else on the direct
 * implicit-GEMM kernel. Accumulation is f32 (the Winograd F(2×2) GEMM sums each step of 16
 * channels in f16 under `matmulVariant(gpu).accumulate === "chunked"`: {@linkcode winogradChunked}).
 *
 * @example
 * ```ts
 * const h = conv2d(x, w, b, { padding: 1, residual: skip }); // ResNet conv2 + skip connection
 * const d = conv2d(x, w, b, { stride: 2, padding: [0, 1, 0, 1] }); // VAE encoder downsample
 * ```
 */
export function conv2d(
  x: Tensor,
  w: Tensor,
  b?: Tensor | null,
  opts: Conv2dOptions = {},
): Tensor {
  const stride = opts.stride ?? 1;
  const pad = opts.padding ?? 0;
  const [pt, pb, pl, pr] = typeof pad === "number" ? [pad, pad, pad, pad] : pad;
  const act = opts.activation ?? "none";
  const bias = b ?? null;
  const residual = opts.residual ?? null;

  if (x.shape.length !== 4 || w.shape.length !== 4) {
    throw new Error(`conv2d: x [${x.shape}] and w [${w.shape}] must both be 4-D`);
  }
  const [B, C, H, W] = x.shape;
  const [O, Cw, kh, kw] = w.shape;
  if (Cw !== C || kh !== kw || (kh !== 1 && kh !== 3)) {
    throw new Error(`conv2d: weight [${w.shape}] does not fit input [${x.shape}] (1×1 or 3×3)`);
  }
  if (stride !== 1 && stride !== 2) throw new Error(`conv2d: stride ${stride} is not 1 or 2`);
  if (![pt, pb, pl, pr].every((v) => Number.isInteger(v) && v >= 0)) {
    throw new Error(`conv2d: padding [${[pt, pb, pl, pr]}] must be non-negative integers`);
  }
  const OH = outSize(H, kh, pt, pb, stride);
  const OW = outSize(W, kw, pl, pr, stride);
  if (OH < 1 || OW < 1) throw new Error(`conv2d: input [${x.shape}] is smaller than the kernel`);
  const dtype = x.dtype;
  for (const [name, t] of [["w", w], ["b", bias], ["residual", residual]] as const) {
    if (t && t.dtype !== dtype) {
      throw new Error(`conv2d: ${name} is ${t.dtype} but x is ${dtype}`);
    }
  }
  if (bias && (bias.size !== O)) throw new Error(`conv2d: bias [${bias.shape}] is not [${O}]`);
  const outShape = [B, O, OH, OW];
  if (residual && residual.shape.join() !== outShape.join()) {
    throw new Error(`conv2d: residual [${residual.shape}] is not the output shape [${outShape}]`);
  }

  const route = variants(x.gpu).conv;
  // Winograd where its transformed filter fits one storage binding (F(2×2)'s is the smaller).
  const winograd = kh === 3 && stride === 1 && pt === 1 && pb === 1 && pl === 1 && pr === 1 &&
    route !== "direct" && winogradFits(w, 2);
  const geom: Geometry = { B, C, H, W, O, OH, OW, k: kh, stride, pt, pl, dtype };
  const epi: Epilogue = { bias, residual, silu: act === "silu" };
  if (winograd) return runWinograd(x, w, geom, epi);
  return (route === "auto" ? runGemm(x, w, geom, epi) : null) ?? runDirect(x, w, geom, epi);
}

/**
 * The Winograd tile of a 3×3 weight `[O, C, 3, 3]` under `variants(gpu).winograd`: 4 — F(4×4,
 * 3×3), 2.25 multiplies per output and input channel — for `"f4"`, and for `"auto"` where both
 * channel counts are ≤ {@linkcode WINO4_MAX_CHANNELS} (the VAE decoder, the UNet's 320- and
 * 640-channel levels: large images, where the tiles are many and the transformed filter, 4× the
 * weight, stays small); else 2 — F(2×2, 3×3), 4 multiplies, its filter 16/9 of the weight. Decided
 * per weight, not per call, so that each weight keeps one transform (made at load).
 */
export function winogradTile(w: Tensor): 2 | 4 {
  const v = variants(w.gpu).winograd;
  if (v === "f2" || !winogradFits(w, 4)) return 2; // F(4×4)'s filter over the binding limit
  if (v === "f4") return 4;
  const [O, C] = w.shape;
  return O <= WINO4_MAX_CHANNELS && C <= WINO4_MAX_CHANNELS ? 4 : 2;
}

/**
 * Whether the Winograd GEMM of a convolution with `tile` runs with chunked f16 accumulation
 * (`kernels/conv2d_winograd.wgsl`'s ACC16C): for f16 models under `matmulVariant(gpu).accumulate
 * === "chunked"`, and only for F(2×2). F(2×2)'s transformed inputs are at most 4× the inputs and
 * fit f16 scaled by 1/4 whatever the input; F(4×4)'s reach 100× (10⁶ at |x| = 10⁴, past f16's
 * 65504), so its GEMM stays f32 (the per-layer error study is in tests/conv2d_test.ts).
 */
export function winogradChunked(gpu: Gpu, tile: 2 | 4, dtype: DType): boolean {
  return dtype === "f16" && tile === 2 && matmulVariant(gpu).accumulate === "chunked";
}

/** Bytes of the Winograd transform `[ξ, Cp, Op]` of a 3×3 weight `[O, C, 3, 3]` for `tile`. */
function winogradFilterBytes(w: Tensor, tile: 2 | 4): number {
  const [O, C] = w.shape;
  return WINO[tile].xi * roundUp(C, WINO_BK) * roundUp(O, 64) * bytesOf(w.dtype);
}

/**
 * Whether the Winograd filter of `w` for `tile` fits one storage binding of its device (e.g. SD's
 * 2560 → 1280 convolution in f32 needs 210 MB for F(2×2): over the 128 MiB WebGPU guarantees, it
 * runs direct there).
 */
export function winogradFits(w: Tensor, tile: 2 | 4): boolean {
  return winogradFilterBytes(w, tile) <= w.gpu.maxBinding;
}

/**
 * Makes (once) the Winograd transform `U = G·g·Gᵀ` of a 3×3 weight `[O, C, 3, 3]` on the GPU for
 * its tile ({@linkcode winogradTile} unless `tile` is given) and caches it beside the weight (replacing one for the other
 * tile, when the variant changed); {@linkcode conv2d} calls it lazily, the model loader may call
 * it for every 3×3 weight at load. Other weights are ignored.
 *
 * The layout is `[ξ, Cp, Op]` in the weight's dtype (ξ = (m+2)·row + column of the transformed
 * tile: 16 positions for F(2×2), 36 for F(4×4); then input channel, then output channel; Cp = C
 * rounded up to 16 and Op = O rounded up to 64, zero padded): 16/9 (F(2×2)) or 4 (F(4×4)) × the
 * weight's elements plus padding.
 */
export function prepareConv(w: Tensor, tile: 2 | 4 = winogradTile(w)): void {
  if (w.shape.length !== 4 || w.shape[2] !== 3 || w.shape[3] !== 3) return;
  if (!winogradFits(w, tile)) return; // conv2d runs it direct
  const have = transformed.get(w);
  if (have?.tile === tile) return;
  if (have) releaseConv(w);
  const gpu = w.gpu;
  const [O, C] = w.shape;
  const Cp = roundUp(C, WINO_BK);
  const Op = roundUp(O, 64);
  const { file, prefix } = WINO[tile];
  const name = `${prefix}_weight_transform_${w.dtype}`;
  const kernel = gpu.kernel(
    name,
    () => specialize(kernelSource(file), { T: w.dtype, WEIGHT_TRANSFORM: true }),
  );
  const bytes = winogradFilterBytes(w, tile);
  const u = gpu.alloc(bytes, "winograd-weight", true);
  const uni = winogradUniforms({ C, H: 0, W: 0, O, Cp, Op, P: 0, p0: 0, Pc: 0, Pp: 0 });
  gpu.dispatch(kernel, uni, [w.buffer, u], [Op / 64, Cp], { bytes: w.bytes + bytes });
  transformed.set(w, { u, Cp, Op, tile });
}

/**
 * The Winograd transform of `w` made by {@linkcode prepareConv} (`[xi, Cp, Op]` in `w`'s dtype:
 * xi = 16 for F(2×2), 36 for F(4×4)), or undefined; for code that updates a filter in place
 * (LoRA merging updates both).
 */
export function winogradFilter(
  w: Tensor,
): { u: GPUBuffer; Cp: number; Op: number; tile: 2 | 4; xi: number } | undefined {
  const t = transformed.get(w);
  return t && { ...t, xi: WINO[t.tile].xi };
}

/** Frees the Winograd transform of `w` made by {@linkcode prepareConv}, if any. */
export function releaseConv(w: Tensor): void {
  const t = transformed.get(w);
  if (!t) return;
  w.gpu.destroyBuffer(t.u);
  transformed.delete(w);
}

// ---------------------------------------------------------------------------------------------

interface Geometry {
  B: number;
  C: number;
  H: number;
  W: number;
  O: number;
  OH: number;
  OW: number;
  k: number;
  stride: number;
  pt: number;
  pl: number;
  dtype: DType;
}

interface Epilogue {
  bias: Tensor | null;
  residual: Tensor | null;
  silu: boolean;
}

const WINO_BK = 16; // GEMM depth step of conv2d_winograd.wgsl (C is padded to it)
// V and M (f32) of a Winograd convolution are two buffers of a fixed size, so the pool hands the
// same two to every convolution (sized per shape, they left one buffer per distinct shape in the
// pool: ~0.6 GB over a UNet step); chunks of tiles keep each under it. Latent-sized inputs get
// 64 MB (at 32 MB the UNet's GEMMs ran in twice the chunks and its step took ~3 ms longer on an
// H200); image-sized ones (the VAE's 67–134 MB activations) 32 MB, where memory peaks.
const WINO_SCRATCH_BYTES = 64 * 1024 * 1024;
const WINO_SCRATCH_BYTES_LARGE_INPUT = 32 * 1024 * 1024;

const transformed = new WeakMap<Tensor, { u: GPUBuffer; Cp: number; Op: number; tile: 2 | 4 }>();

/** Channel counts up to which `winograd: "auto"` uses F(4×4, 3×3) (see winogradTile). */
const WINO4_MAX_CHANNELS = 640;

/** Per tile size m: the transforms' kernel file and label prefix, and the ξ count (m + 2)². */
const WINO = {
  2: { file: "conv2d_winograd.wgsl", prefix: "winograd", xi: 16 },
  4: { file: "conv2d_winograd4.wgsl", prefix: "winograd4", xi: 36 },
} as const;

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/** Bindings after the inputs (`first`): optional bias, optional residual, then y. */
function epilogueBindings(first: number, epi: Epilogue): Record<string, number | boolean> {
  let next = first;
  const d: Record<string, number | boolean> = {
    BIAS: !!epi.bias,
    RESIDUAL: !!epi.residual,
    SILU: epi.silu,
  };
  if (epi.bias) d.BIND_BIAS = next++;
  if (epi.residual) d.BIND_RES = next++;
  d.BIND_Y = next;
  return d;
}

function epilogueSuffix(epi: Epilogue): string {
  return `${epi.bias ? "_bias" : ""}${epi.residual ? "_residual" : ""}${epi.silu ? "_silu" : ""}`;
}

function epilogueBuffers(epi: Epilogue): GPUBuffer[] {
  const out: GPUBuffer[] = [];
  if (epi.bias) out.push(epi.bias.buffer);
  if (epi.residual) out.push(epi.residual.buffer);
  return out;
}

/**
 * Register-block shape of the direct kernel: threads TY × TX, each TM × 4 outputs. Measured on an
 * H200 (f16): 128 × 64 is fastest while it still makes ≥ 256 workgroups (18–21 TFLOP/s on the
 * VAE's 512-channel convolutions), 64 × 64 below that (UNet's 16×16 and 8×8 levels); 128 × 128
 * and 64 × 128 were never better by more than 5%.
 */
function directTile(
  gpu: Gpu,
  O: number,
  pixels: number,
  batch: number,
): { TY: number; TX: number; TM: number } {
  // 16 × 256 for conv_out (3–4 channels), where its 17.3 KB of workgroup memory fit.
  if (O <= 16 && directSmemBytes(16, 256) <= gpu.limits.maxComputeWorkgroupStorageSize) {
    return { TY: 4, TX: 64, TM: 4 };
  }
  const big = O > 16 && Math.ceil(pixels / 64) * Math.ceil(O / 128) * batch >= 256;
  return { TY: 16, TX: 16, TM: big ? 8 : 4 }; // 64 or 128 × 64: at most 12.3 KB
}

/** Workgroup memory of conv2d_direct.wgsl's As and Bs for a BM × BN tile (BK = 16, vec4 rows). */
function directSmemBytes(bm: number, bn: number): number {
  return 16 * 16 * (bm / 4 + 1 + bn / 4);
}

/** 1×1, stride 1, unpadded: x [B, C, H·W] is already the GEMM's right-hand side. */
function isPointwise(g: Geometry): boolean {
  return g.k === 1 && g.stride === 1 && g.pt === 0 && g.pl === 0 && g.OH === g.H && g.OW === g.W;
}

/** Most bytes of im2col columns the GEMM route stores; larger convolutions run direct. */
const IM2COL_CAP = 64 << 20;

/**
 * The GEMM route (`conv: "auto"`): y[b] = W [O, K] · X̂[b] [K, N] on the tiled matmul, whose tiles
 * reach 1.2–2× the direct kernel's rate at the UNet's 1×1 shapes and 2–2.5× at its stride-2
 * downsamplers (H200). A 1×1 stride-1 unpadded convolution multiplies x as it is; any other first
 * stores its im2col columns X̂ (`kernels/conv2d_im2col.wgsl`), unless they would exceed
 * {@linkcode IM2COL_CAP} (null: run direct).
 */
function runGemm(x: Tensor, w: Tensor, g: Geometry, epi: Epilogue): Tensor | null {
  const N = g.OH * g.OW;
  const K = g.C * g.k * g.k;
  const pointwise = isPointwise(g);
  const project = (cols: Tensor) =>
    channelProjection(w, cols, { batch: g.B, m: g.O, k: K, n: N }, {
      bias: epi.bias,
      residual: epi.residual,
      activation: epi.silu ? "silu" : "none",
      outShape: [g.B, g.O, g.OH, g.OW],
    });
  if (pointwise) return project(x);
  const total = g.B * K * N;
  if (total * (g.dtype === "f16" ? 2 : 4) > IM2COL_CAP) return null;
  const gpu = x.gpu;
  const name = `conv2d_im2col_${g.dtype}_${g.k}x${g.k}`;
  const kernel = gpu.kernel(
    name,
    () => specialize(kernelSource("conv2d_im2col.wgsl"), { T: g.dtype, KS: g.k }),
  );
  const cols = Tensor.empty(gpu, [g.B, K, N], g.dtype, name);
  const u = new Uniforms()
    .u32(g.C).u32(g.H).u32(g.W).u32(K)
    .u32(g.OW).u32(N).u32(g.stride).u32(g.pt)
    .u32(g.pl).u32(total).u32(0).u32(0).buffer;
  gpu.dispatch(kernel, u, [x.buffer, cols.buffer], grid1d(total), {
    bytes: x.bytes + cols.bytes,
  });
  const y = project(cols);
  cols.release();
  return y;
}

function runDirect(x: Tensor, w: Tensor, g: Geometry, epi: Epilogue): Tensor {
  const gpu = x.gpu;
  const N = g.OH * g.OW;
  const pointwise = isPointwise(g);
  const t = directTile(gpu, g.O, N, g.B);
  const BM = t.TY * t.TM, BN = t.TX * 4;
  const name = `conv2d_direct_${g.k}x${g.k}${pointwise ? "_pointwise" : ""}_${g.dtype}_${BM}x${BN}${
    epilogueSuffix(epi)
  }`;
  const kernel = gpu.kernel(name, () =>
    specialize(kernelSource("conv2d_direct.wgsl"), {
      T: g.dtype,
      KS: g.k,
      POINTWISE: pointwise,
      ...t,
      TM8: t.TM === 8,
      LA2: BM === 128,
      RB2: BN === 256,
      RB4: BN === 256,
      ...epilogueBindings(3, epi),
    }));
  const y = Tensor.empty(gpu, [g.B, g.O, g.OH, g.OW], g.dtype, name);
  const K = g.C * g.k * g.k;
  const u = new Uniforms()
    .u32(g.C).u32(g.H).u32(g.W).u32(K)
    .u32(g.O).u32(g.OH).u32(g.OW).u32(N)
    .u32(g.stride).u32(g.pt).u32(g.pl).u32(0).buffer;
  gpu.dispatch(
    kernel,
    u,
    [x.buffer, w.buffer, ...epilogueBuffers(epi), y.buffer],
    [Math.ceil(N / BN), Math.ceil(g.O / BM), g.B],
    {
      flops: 2 * g.B * g.O * N * K,
      bytes: x.bytes + w.bytes + y.bytes * (epi.residual ? 2 : 1),
    },
  );
  return y;
}

interface WinogradShape {
  C: number;
  H: number;
  W: number;
  O: number;
  Cp: number;
  Op: number;
  P: number;
  p0: number;
  Pc: number;
  Pp: number;
}

function winogradUniforms(s: WinogradShape): ArrayBuffer {
  return new Uniforms()
    .u32(s.C).u32(s.H).u32(s.W).u32(s.O)
    .u32(s.Cp).u32(s.Op).u32(s.P).u32(s.p0)
    .u32(s.Pc).u32(s.Pp).u32(0).u32(0).buffer;
}

function runWinograd(x: Tensor, w: Tensor, g: Geometry, epi: Epilogue): Tensor {
  const gpu = x.gpu;
  prepareConv(w);
  const { u, Cp, Op, tile } = transformed.get(w)!;
  const { file, prefix, xi } = WINO[tile];
  const tiles = Math.ceil(g.H / tile) * Math.ceil(g.W / tile);
  const P = g.B * tiles;

  // GEMM tile (H200, f16): 64 × 128 reaches 25–30 TFLOP/s of GEMM arithmetic; 64 × 64 wastes less
  // on padding when there are fewer than 128 tiles (UNet's 8×8 level).
  const BM = 64, BN = P >= 128 ? 128 : 64;
  // Chunks of tiles so that V [ξ, Cp, Pp] and M [ξ, Op, Pp] (f32) stay under the cap.
  const scratchCap = x.bytes < WINO_SCRATCH_BYTES_LARGE_INPUT
    ? WINO_SCRATCH_BYTES
    : WINO_SCRATCH_BYTES_LARGE_INPUT;
  const cap = Math.min(scratchCap, gpu.maxBinding);
  const perTile = 4 * xi * Math.max(Cp, Op); // bytes of V or M per tile
  const maxPp = Math.max(BN, Math.floor(cap / perTile / BN) * BN);
  const Pp = Math.min(roundUp(P, BN), maxPp);
  const scratch = Math.max(cap, perTile * Pp); // over the cap only if one BN is

  const src = kernelSource(file);
  const T = g.dtype;
  const kIn = gpu.kernel(
    `${prefix}_input_transform_${T}`,
    () => specialize(src, { T, INPUT_TRANSFORM: true }),
  );
  // The GEMM is conv2d_winograd.wgsl's for both tiles (grid z = ξ); own labels for the profile.
  const chunked = winogradChunked(gpu, tile, T);
  const kGemm = gpu.kernel(
    `${prefix}_gemm_${T}${chunked ? "_acc16c" : ""}_${BM}x${BN}`,
    () =>
      specialize(kernelSource(WINO[2].file), {
        T,
        GEMM: true,
        TN: BN / 16,
        TN8: BN === 128,
        ACC16C: chunked,
        WS: chunked ? "f16" : "f32",
        ACC0: chunked ? "h00" : "c00",
        ACC1: chunked ? "h01" : "c01",
        RANK1: chunked ? "rank1_f16" : "rank1",
      }),
  );
  const outName = `${prefix}_output_transform_${T}${epilogueSuffix(epi)}`;
  const kOut = gpu.kernel(
    outName,
    () => specialize(src, { T, OUTPUT_TRANSFORM: true, ...epilogueBindings(2, epi) }),
  );

  const y = Tensor.empty(gpu, [g.B, g.O, g.H, g.W], T, outName);
  const v = gpu.alloc(scratch, "winograd-v");
  const m = gpu.alloc(scratch, "winograd-m");
  const elt = T === "f16" ? 2 : 4;
  const directFlops = 2 * g.B * g.O * g.H * g.W * g.C * 9;
  for (let p0 = 0; p0 < P; p0 += Pp) {
    const Pc = Math.min(Pp, P - p0);
    const uni = winogradUniforms({ C: g.C, H: g.H, W: g.W, O: g.O, Cp, Op, P, p0, Pc, Pp });
    gpu.dispatch(kIn, uni, [x.buffer, v], [Math.ceil(Pp / 64), Cp], {
      bytes: (Pc / P) * x.bytes + xi * Cp * Pp * 4,
    });
    gpu.dispatch(kGemm, uni, [u, v, m], [Pp / BN, Op / BM, xi], {
      flops: directFlops * (Pc / P), // the direct convolution's, so rates compare
      bytes: xi * (Cp * Op * elt + (Cp + Op) * Pp * 4),
    });
    gpu.dispatch(
      kOut,
      uni,
      [m, ...epilogueBuffers(epi), y.buffer],
      [Math.ceil(Pc / 64), g.O],
      { bytes: xi * g.O * Pc * 4 + (Pc / P) * y.bytes * (epi.residual ? 2 : 1) },
    );
  }
  // Recorded work runs in queue order, so the pool may hand these out to later dispatches now.
  gpu.free(v);
  gpu.free(m);
  return y;
}
