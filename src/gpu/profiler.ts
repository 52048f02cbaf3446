/**
 * GPU time per kernel from timestamp queries: every profiled dispatch runs in its own compute
 * pass whose begin/end timestamps land in a query set; at each submit the set is resolved and read
 * back asynchronously. Negative or wrapped intervals are dropped.
 *
 * @module
 */

const QUERY_PAIRS = 2048;

/** Work of one dispatch, for the profiler's achieved-rate columns. */
export interface DispatchCost {
  /** Floating-point operations. */
  flops?: number;
  /** Bytes read and written. */
  bytes?: number;
}

/** Totals for one kernel name. */
export interface KernelStat {
  /** Kernel name (the pipeline-cache key). */
  name: string;
  /** Number of dispatches timed. */
  calls: number;
  /** Total GPU time in milliseconds. */
  ms: number;
  /** Total floating-point operations (0 when the op does not say). */
  flops: number;
  /** Total bytes moved (0 when the op does not say). */
  bytes: number;
}

interface Pending {
  readback: GPUBuffer;
  labels: string[];
  costs: DispatchCost[];
}

/** Collects per-dispatch GPU timestamps grouped by kernel name. */
export class Profiler {
  #device: GPUDevice;
  #querySet: GPUQuerySet;
  #resolve: GPUBuffer;
  #labels: string[] = [];
  #costs: DispatchCost[] = [];
  #pending: Pending[] = [];
  #stats = new Map<string, KernelStat>();

  constructor(device: GPUDevice) {
    this.#device = device;
    this.#querySet = device.createQuerySet({ type: "timestamp", count: QUERY_PAIRS * 2 });
    this.#resolve = device.createBuffer({
      label: "timestamps-resolve",
      size: QUERY_PAIRS * 16,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  /** True when the query set is full and the recorder must submit. */
  get full(): boolean {
    return this.#labels.length >= QUERY_PAIRS;
  }

  /** Timestamp writes for the next dispatch's pass. */
  nextWrites(label: string, cost: DispatchCost): GPUComputePassTimestampWrites {
    const i = this.#labels.length;
    this.#labels.push(label);
    this.#costs.push(cost);
    return {
      querySet: this.#querySet,
      beginningOfPassWriteIndex: 2 * i,
      endOfPassWriteIndex: 2 * i + 1,
    };
  }

  /** Resolves this submit's queries into a readback buffer (called before finish()). */
  resolve(encoder: GPUCommandEncoder): void {
    const n = this.#labels.length;
    if (n === 0) return;
    const bytes = n * 16;
    encoder.resolveQuerySet(this.#querySet, 0, 2 * n, this.#resolve, 0);
    const readback = this.#device.createBuffer({
      label: "timestamps-readback",
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.copyBufferToBuffer(this.#resolve, 0, readback, 0, bytes);
    this.#pending.push({ readback, labels: this.#labels, costs: this.#costs });
  }

  /** Starts a new batch of queries after a submit. */
  afterSubmit(): void {
    this.#labels = [];
    this.#costs = [];
  }

  /**
   * Reads back every resolved batch and adds it to the totals. The buffers are mapped all at once:
   * each `mapAsync` promise settles some 10 ms after the GPU is done (Deno 2.9), so mapping them
   * one after another cost 10 ms a submit (a second for the ~100 submits of loading).
   */
  async collect(): Promise<void> {
    const pending = this.#pending;
    this.#pending = [];
    await Promise.all(pending.map((p) => p.readback.mapAsync(GPUMapMode.READ)));
    for (const p of pending) {
      const t = new BigInt64Array(p.readback.getMappedRange());
      for (let i = 0; i < p.labels.length; i++) {
        const ns = Number(t[2 * i + 1] - t[2 * i]);
        if (!(ns >= 0) || ns > 60e9) continue; // dropped: wrapped or unset
        const name = p.labels[i];
        let s = this.#stats.get(name);
        if (!s) this.#stats.set(name, s = { name, calls: 0, ms: 0, flops: 0, bytes: 0 });
        s.calls++;
        s.ms += ns / 1e6;
        s.flops += p.costs[i].flops ?? 0;
        s.bytes += p.costs[i].bytes ?? 0;
      }
      p.readback.unmap();
      p.readback.destroy();
    }
  }

  /** Totals per kernel, largest GPU time first. */
  stats(): KernelStat[] {
    return [...this.#stats.values()].sort((a, b) => b.ms - a.ms);
  }

  /** Clears the totals (e.g. after a warm-up run). */
  reset(): void {
    this.#stats.clear();
  }
}
