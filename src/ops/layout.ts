/**
 * Layout ops — data movement with no arithmetic: NCHW ↔ NLC transposes, concatenation along
 * channels or batch, batch slices, nearest 2× upsampling and token/position embedding lookup.
 * Kernel family: `kernels/layout.wgsl`. Results are bit-exact copies (the embedding sum with
 * position rows is done in f32 and rounded once).
 *
 * @module
 */

import { bytesOf, type Gpu } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { grid1d } from "../gpu/grid.ts";
import { kernelSource, specialize, Uniforms } from "../gpu/wgsl.ts";

type Mode = "transpose" | "concat" | "upsample2x" | "upsample2x_crop" | "embedding" | "split_half";

function layoutKernel(gpu: Gpu, mode: Mode, t: string, opts: { pos?: boolean; vec?: number } = {}) {
  const vec = opts.vec ?? 1;
  // split_half keeps the name it had in the matmul family (pipeline-cache key and profiler label).
  const name = mode === "split_half"
    ? `matmul_split_half_${t}`
    : `layout_${mode}_${t}${mode === "concat" ? `_v${vec}` : ""}${opts.pos ? "_pos" : ""}`;
  return gpu.kernel(name, () =>
    specialize(kernelSource("layout.wgsl"), {
      T: t,
      TRANSPOSE: mode === "transpose",
      CONCAT: mode === "concat",
      UPSAMPLE: mode === "upsample2x",
      CROP: mode === "upsample2x_crop",
      EMBEDDING: mode === "embedding",
      SPLIT_HALF: mode === "split_half",
      POS: !!opts.pos,
      VEC4: vec === 4,
    }));
}

function uniforms(n: number, a: number, b: number, c: number): ArrayBuffer {
  return new Uniforms().u32(n).u32(a).u32(b).u32(c).buffer;
}

/** Batched transpose [batch, rows, cols] → [batch, cols, rows], as a new tensor of `shape`. */
function transpose(
  x: Tensor,
  batch: number,
  rows: number,
  cols: number,
  shape: number[],
): Tensor {
  const gpu = x.gpu;
  const y = Tensor.empty(gpu, shape, x.dtype, "transpose");
  gpu.dispatch(
    layoutKernel(gpu, "transpose", x.dtype),
    uniforms(rows, cols, 0, 0),
    [x.buffer, y.buffer],
    [Math.ceil(cols / 32), Math.ceil(rows / 32), batch],
    { bytes: 2 * x.bytes },
  );
  return y;
}

/**
 * `x` [B, C, H, W] → [B, H·W, C] (`x.flatten(2).transpose(1, 2)`), a tiled transpose through
 * workgroup memory.
 */
export function nchwToNlc(x: Tensor): Tensor {
  if (x.shape.length !== 4) throw new Error(`nchwToNlc: x [${x.shape}] is not [B, C, H, W]`);
  const [b, c, h, w] = x.shape;
  return transpose(x, b, c, h * w, [b, h * w, c]);
}

/** `x` [B, H·W, C] → [B, C, H, W] (the inverse of {@linkcode nchwToNlc}). */
export function nlcToNchw(x: Tensor, h: number, w: number): Tensor {
  if (x.shape.length !== 3 || x.shape[1] !== h * w) {
    throw new Error(`nlcToNchw: x [${x.shape}] is not [B, ${h}·${w}, C]`);
  }
  const [b, l, c] = x.shape;
  return transpose(x, b, l, c, [b, c, h, w]);
}

/** y[o, :] = a[o, aOff : aOff + na] ++ b[o, 0 : nb] for o < outer. */
function concat(
  a: Tensor,
  b: Tensor,
  outer: number,
  na: number,
  nb: number,
  aOff: number,
  shape: number[],
): Tensor {
  const gpu = a.gpu;
  const y = Tensor.empty(gpu, shape, a.dtype, "concat");
  const n = outer * (na + nb);
  const vec = na % 4 === 0 && nb % 4 === 0 && aOff % 4 === 0 ? 4 : 1;
  gpu.dispatch(
    layoutKernel(gpu, "concat", a.dtype, { vec }),
    uniforms(n / vec, na / vec, nb / vec, aOff / vec),
    [a.buffer, b.buffer, y.buffer],
    grid1d(n / vec),
    { bytes: 2 * n * bytesOf(a.dtype) },
  );
  return y;
}

function checkPair(op: string, a: Tensor, b: Tensor, dim: number): void {
  const same = a.dtype === b.dtype && a.shape.length === b.shape.length &&
    a.shape.every((d, i) => i === dim || d === b.shape[i]);
  if (!same) {
    throw new Error(`${op}: cannot join [${a.shape}] ${a.dtype} and [${b.shape}] ${b.dtype}`);
  }
}

/**
 * `torch.cat([a, b], dim=1)` for `a` [B, C1, ...] and `b` [B, C2, ...] with equal trailing dims
 * (the UNet's skip connections).
 */
export function concatChannels(a: Tensor, b: Tensor): Tensor {
  if (a.shape.length < 2) throw new Error(`concatChannels: a [${a.shape}] has no channel dim`);
  checkPair("concatChannels", a, b, 1);
  const batch = a.shape[0];
  const shape = [...a.shape];
  shape[1] += b.shape[1];
  return concat(a, b, batch, a.size / batch, b.size / batch, 0, shape);
}

/** `torch.cat([a, b], dim=0)`: the rows of `b` after those of `a`. */
export function concatBatch(a: Tensor, b: Tensor): Tensor {
  if (a.shape.length < 1) throw new Error(`concatBatch: a [${a.shape}] has no batch dim`);
  checkPair("concatBatch", a, b, 0);
  const shape = [...a.shape];
  shape[0] += b.shape[0];
  return concat(a, b, 1, a.size, b.size, 0, shape);
}

/**
 * A copy of rows `[start, start + count)` of `x` along dim 0 (`x[start:start+count]`), by a
 * buffer copy when the byte range is 4-byte aligned, else by the concat kernel.
 */
export function sliceBatch(x: Tensor, start: number, count: number): Tensor {
  const rows = x.shape[0];
  if (
    x.shape.length < 1 || !Number.isInteger(start) || !Number.isInteger(count) || start < 0 ||
    count < 1 || start + count > rows
  ) {
    throw new Error(`sliceBatch: rows [${start}, ${start + count}) outside x [${x.shape}]`);
  }
  const gpu = x.gpu;
  const rowSize = x.size / rows;
  const shape = [count, ...x.shape.slice(1)];
  const esize = bytesOf(x.dtype);
  const offset = start * rowSize * esize;
  const bytes = count * rowSize * esize;
  if (offset % 4 === 0 && bytes % 4 === 0) {
    const y = Tensor.empty(gpu, shape, x.dtype, "slice");
    gpu.copy(x.buffer, offset, y.buffer, 0, bytes);
    return y;
  }
  return concat(x, x, 1, count * rowSize, 0, start * rowSize, shape);
}

/**
 * `F.interpolate(x, scale_factor=2, mode="nearest")` for `x` [B, C, H, W] → [B, C, 2H, 2W], or
 * with `size` [H', W'] (each 2H or 2H − 1, likewise W') `F.interpolate(x, size=size)`: the 2×
 * image without its last row and/or column.
 */
export function upsampleNearest2x(x: Tensor, size?: readonly [number, number]): Tensor {
  if (x.shape.length !== 4) throw new Error(`upsampleNearest2x: x [${x.shape}] is not 4-D`);
  const gpu = x.gpu;
  const [b, c, h, w] = x.shape;
  if (size && (size[0] !== 2 * h || size[1] !== 2 * w)) {
    const [oh, ow] = size;
    if ((oh !== 2 * h - 1 && oh !== 2 * h) || (ow !== 2 * w - 1 && ow !== 2 * w)) {
      throw new Error(`upsampleNearest2x: size [${size}] is not 2× [${h}, ${w}] or one less`);
    }
    const y = Tensor.empty(gpu, [b, c, oh, ow], x.dtype, "upsample2x_crop");
    gpu.dispatch(
      layoutKernel(gpu, "upsample2x_crop", x.dtype),
      uniforms(y.size, oh, ow, w),
      [x.buffer, y.buffer],
      grid1d(y.size),
      { bytes: x.bytes + y.bytes },
    );
    return y;
  }
  const y = Tensor.empty(gpu, [b, c, 2 * h, 2 * w], x.dtype, "upsample2x");
  gpu.dispatch(
    layoutKernel(gpu, "upsample2x", x.dtype),
    uniforms(x.size, h, w, 0),
    [x.buffer, y.buffer],
    grid1d(x.size),
    { bytes: x.bytes + y.bytes },
  );
  return y;
}

/** `[M, 2F]` → its halves `[M, F]`, `x[:, :F]` and `x[:, F:]` (naive GEGLU's `chunk(2, dim=-1)`). */
export function splitHalves(x: Tensor, m: number, f: number): [Tensor, Tensor] {
  const gpu = x.gpu;
  const kernel = layoutKernel(gpu, "split_half", x.dtype);
  const h = Tensor.empty(gpu, [m, f], x.dtype, kernel.name);
  const g = Tensor.empty(gpu, [m, f], x.dtype, kernel.name);
  gpu.dispatch(kernel, uniforms(m * f, f, 0, 0), [x.buffer, h.buffer, g.buffer], grid1d(m * f), {
    bytes: 2 * x.bytes,
  });
  return [h, g];
}

/**
 * Token embedding lookup: `ids` (B·L token ids, row-major `shape` = [B, L]) into `table` [V, C]
 * → [B, L, C] = `table[ids]`, plus `positions[l]` when given (`positions` [P ≥ L, C], e.g. CLIP's
 * whole `position_embedding.weight` [77, C]: row l is added at sequence position l).
 *
 * @example
 * ```ts
 * const h = embedding(ids, [2, 77], p["token_embedding.weight"], p["position_embedding.weight"]);
 * ```
 */
export function embedding(
  ids: Uint32Array,
  shape: [number, number],
  table: Tensor,
  positions?: Tensor,
): Tensor {
  const [b, l] = shape;
  if (table.shape.length !== 2 || ids.length !== b * l) {
    throw new Error(
      `embedding: ${ids.length} ids for shape [${shape}] into table [${table.shape}]`,
    );
  }
  const [v, c] = table.shape;
  for (const id of ids) {
    if (id >= v) throw new Error(`embedding: token id ${id} outside a table of ${v} rows`);
  }
  if (
    positions &&
    (positions.shape.length !== 2 || positions.shape[0] < l || positions.shape[1] !== c ||
      positions.dtype !== table.dtype)
  ) {
    throw new Error(
      `embedding: positions [${positions.shape}] ${positions.dtype} cannot cover ${l} × ${c} ${table.dtype}`,
    );
  }
  const gpu = table.gpu;
  const rowBytes = c * bytesOf(table.dtype);
  // A table over one storage binding (CLIP's 49408 × 768 in f32: 152 MB, over WebGPU's 128 MiB
  // default): its rows are gathered by buffer copies, which no binding limit applies to, and the
  // kernel looks up rows 0 … B·L−1 of the gathered table.
  let gathered: Tensor | null = null;
  let lookup = ids;
  if (table.bytes > gpu.maxBinding && rowBytes % 4 === 0) {
    gathered = Tensor.empty(gpu, [ids.length, c], table.dtype, "embedding-rows");
    ids.forEach((id, r) =>
      gpu.copy(table.buffer, id * rowBytes, gathered!.buffer, r * rowBytes, rowBytes)
    );
    lookup = Uint32Array.from(ids.keys());
  }
  const source = gathered ?? table;
  const idBuf = gpu.upload(lookup, "token-ids");
  const y = Tensor.empty(gpu, [b, l, c], table.dtype, "embedding");
  const n = y.size;
  const bufs = positions
    ? [idBuf, source.buffer, positions.buffer, y.buffer]
    : [idBuf, source.buffer, y.buffer];
  gpu.dispatch(
    layoutKernel(gpu, "embedding", table.dtype, { pos: !!positions }),
    uniforms(n, l, c, source.shape[0]),
    bufs,
    grid1d(n),
    { bytes: ids.byteLength + (positions ? 3 : 2) * y.bytes },
  );
  gpu.free(idBuf);
  gathered?.release();
  return y;
}
