/**
 * Tensors on the GPU: a shape, a dtype and a pooled buffer, with scoped lifetimes so model code
 * can allocate intermediates freely and have them returned to the pool when a block ends.
 *
 * @module
 */

import { bytesOf, type DType, Gpu } from "./device.ts";
import { numel } from "../shape.ts";

class Storage {
  refs = 1;
  constructor(readonly gpu: Gpu, readonly buffer: GPUBuffer, readonly pooled: boolean) {}
  release(): void {
    if (--this.refs === 0 && this.pooled) this.gpu.free(this.buffer);
  }
}

const scopes: Tensor[][] = [];

/** A dense row-major tensor in a GPU buffer. */
export class Tensor {
  #storage: Storage;
  #released = false;
  #pinned = false;
  /** Shape, outermost first (PyTorch order). */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;

  private constructor(storage: Storage, shape: readonly number[], dtype: DType) {
    this.#storage = storage;
    this.shape = shape;
    this.dtype = dtype;
    scopes.at(-1)?.push(this);
  }

  /** An uninitialised tensor from the buffer pool, owned by the current scope (if any). */
  static empty(gpu: Gpu, shape: readonly number[], dtype: DType, label = "tensor"): Tensor {
    const bytes = numel(shape) * bytesOf(dtype);
    return new Tensor(new Storage(gpu, gpu.alloc(bytes, label), true), [...shape], dtype);
  }

  /**
   * A tensor holding `data` converted to `dtype`. `persistent` tensors (weights) use an exact-size
   * buffer and are never owned by a scope.
   */
  static from(
    gpu: Gpu,
    data: Float32Array | Float16Array,
    shape: readonly number[],
    dtype: DType,
    opts: { label?: string; persistent?: boolean } = {},
  ): Tensor {
    if (data.length !== numel(shape)) {
      throw new Error(`tensor data of ${data.length} values does not fit shape [${shape}]`);
    }
    const typed = dtype === "f16"
      ? (data instanceof Float16Array ? data : new Float16Array(data))
      : (data instanceof Float32Array ? data : new Float32Array(data));
    const persistent = opts.persistent ?? false;
    const buf = gpu.alloc(typed.byteLength, opts.label ?? "tensor", persistent);
    gpu.write(buf, typed);
    const t = new Tensor(new Storage(gpu, buf, !persistent), [...shape], dtype);
    if (persistent) Tensor.#unscope(t);
    return t;
  }

  static #unscope(t: Tensor): void {
    const top = scopes.at(-1);
    if (top?.at(-1) === t) top.pop();
  }

  /** The GPU this tensor lives on. */
  get gpu(): Gpu {
    return this.#storage.gpu;
  }

  /** The buffer (valid until released). */
  get buffer(): GPUBuffer {
    if (this.#released) throw new Error("use of a released tensor");
    return this.#storage.buffer;
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** Bytes of data (not of the pooled buffer). */
  get bytes(): number {
    return this.size * bytesOf(this.dtype);
  }

  /** The same data with another shape of the same size (shares the buffer). */
  reshape(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.size) {
      throw new Error(`cannot reshape [${this.shape}] to [${shape}]`);
    }
    this.#storage.refs++;
    return new Tensor(this.#storage, [...shape], this.dtype);
  }

  /** Exempts this tensor from scope cleanup (it lives until {@linkcode release}). */
  pin(): this {
    this.#pinned = true;
    return this;
  }

  /** Whether {@linkcode release} or {@linkcode destroy} was called. */
  get released(): boolean {
    return this.#released;
  }

  /** Whether {@linkcode pin} was called. */
  get pinned(): boolean {
    return this.#pinned;
  }

  /**
   * Frees the GPU memory of a persistent tensor (a weight no kernel will read again, e.g. a 3×3
   * filter whose Winograd transform replaced it). Any later use is an error.
   */
  destroy(): void {
    if (this.#released) return;
    this.#released = true;
    this.gpu.destroyBuffer(this.#storage.buffer);
  }

  /** Returns the buffer to the pool once no view uses it. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#storage.release();
  }

  /** Reads the tensor back as f32 (submits pending work). */
  async read(): Promise<Float32Array> {
    const raw = await this.gpu.read(this.buffer, this.bytes);
    return this.dtype === "f16" ? Float32Array.from(new Float16Array(raw)) : new Float32Array(raw);
  }
}

/** Product of a shape's dimensions. */
export { numel } from "../shape.ts";

type Kept = Tensor | readonly Kept[] | { readonly [k: string]: Kept } | undefined | void;

function collect(value: unknown, out: Set<Tensor>): void {
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) { for (const v of value) collect(v, out); }
  else if (value && typeof value === "object" && !(ArrayBuffer.isView(value))) {
    for (const v of Object.values(value)) collect(v, out);
  }
}

/**
 * Runs `fn`, then releases every tensor created inside it except those reachable from its
 * result, which move to the enclosing scope.
 */
export function scope<T extends Kept>(fn: () => T): T {
  scopes.push([]);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    for (const t of scopes.pop()!) t.release();
    throw e;
  }
  const created = scopes.pop()!;
  const keep = new Set<Tensor>();
  collect(result, keep);
  const parent = scopes.at(-1);
  for (const t of created) {
    if (t.pinned) continue;
    if (keep.has(t)) parent?.push(t);
    else t.release();
  }
  return result;
}
