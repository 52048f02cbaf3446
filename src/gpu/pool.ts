/**
 * GPU buffers by size class: a freed buffer waits in the pool for the next request of its class,
 * so the identical allocation sequence of every denoising step creates no buffers after the first.
 * Also the allocation accounting (current and peak bytes) and stable buffer ids. Creating a
 * buffer (and its errors) is the device's: the pool is given a `create` function.
 *
 * @module
 */

let nextBufferId = 1;
const bufferIds = new WeakMap<GPUBuffer, number>();

/** A stable numeric id for a buffer (bind-group cache keys). */
export function bufferId(b: GPUBuffer): number {
  let id = bufferIds.get(b);
  if (id === undefined) {
    id = nextBufferId++;
    bufferIds.set(b, id);
  }
  return id;
}

/** Rounds a byte size up to its pool size class (powers of two split into quarters). */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes - 1));
  const quarter = p / 4;
  return Math.ceil(bytes / quarter) * quarter;
}

/** The buffers of one device: free lists by size class and the bytes held. */
export class BufferPool {
  /** Creates a buffer of exactly `size` bytes (storage, copy-src, copy-dst). */
  readonly #create: (size: number, label: string) => GPUBuffer;
  #free = new Map<number, GPUBuffer[]>();
  #bytes = new WeakMap<GPUBuffer, number>();
  #allocatedBytes = 0;
  #peakBytes = 0;

  /** Largest buffer the device creates: a size class above it is clamped to it. */
  readonly #maxSize: number;

  constructor(create: (size: number, label: string) => GPUBuffer, maxSize = Infinity) {
    this.#create = create;
    this.#maxSize = maxSize;
  }

  /** Bytes currently held in buffers (pooled ones included). */
  get allocatedBytes(): number {
    return this.#allocatedBytes;
  }

  /** Highest {@linkcode allocatedBytes} seen. */
  get peakBytes(): number {
    return this.#peakBytes;
  }

  /** Resets the peak mark to the current allocation. */
  resetPeak(): void {
    this.#peakBytes = this.#allocatedBytes;
  }

  /**
   * A buffer of at least `bytes`, reused from the free list of its size class when there is one.
   * `exact` skips the size classes (weights, which live for the whole run).
   */
  alloc(bytes: number, label: string, exact: boolean): GPUBuffer {
    const size = exact
      ? (Math.max(bytes, 4) + 3) & ~3
      : Math.max(Math.min(sizeClass(Math.max(bytes, 4)), Math.floor(this.#maxSize / 4) * 4), bytes);
    const reused = this.#free.get(size)?.pop();
    if (reused) return reused;
    const buf = this.#create(size, label);
    this.#bytes.set(buf, size);
    this.#allocatedBytes += size;
    this.#peakBytes = Math.max(this.#peakBytes, this.#allocatedBytes);
    return buf;
  }

  /** Puts a buffer from {@linkcode alloc} on its free list (others are ignored). */
  free(buf: GPUBuffer): void {
    const size = this.#bytes.get(buf);
    if (size === undefined) return;
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, list = []);
    list.push(buf);
  }

  /** Whether `buf` came from {@linkcode alloc} and has not been forgotten. */
  owns(buf: GPUBuffer): boolean {
    return this.#bytes.has(buf);
  }

  /** Stops counting a buffer from {@linkcode alloc}; the caller destroys it. */
  forget(buf: GPUBuffer): void {
    const size = this.#bytes.get(buf);
    if (size === undefined) return;
    this.#bytes.delete(buf);
    this.#allocatedBytes -= size;
  }

  /** Empties the free lists, returning the buffers they held (still counted until forgotten). */
  takeFree(): GPUBuffer[] {
    const all = [...this.#free.values()].flat();
    this.#free.clear();
    return all;
  }
}
