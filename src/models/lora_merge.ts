/**
 * LoRAs merged into a loaded model: `W += SCALE · (alpha / rank) · up · down` for every module of
 * every requested file, on the GPU in f32 and stored in the model's precision (see
 * `src/ops/lora_merge.ts`); 3×3 convolutions whose filters were replaced by their Winograd
 * transforms at load get the transform of the update.
 *
 * No leaks between jobs: before a weight (or Winograd transform) is first changed, a GPU copy of
 * it is kept, and switching to another set of LoRAs copies the originals back — exact in every
 * precision, where subtracting the update again would not be in f16. The UNet keeps its merge
 * for as long as the jobs ask for the same set; the text encoder runs once per prompt, so its
 * updates are merged just before it runs and undone right after (its weights are also re-uploaded
 * from host memory after each offload).
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { addLowRankAt, addLowRankWinograd, type F32Slice } from "../ops/lora_merge.ts";
import { winogradFilter } from "../ops/conv2d.ts";
import {
  type LoraComponent,
  type LoraFile,
  type LoraModule,
  loraTargets,
  readLora,
} from "../weights/lora.ts";
import type { ConvModule, ParamStore } from "./params.ts";

/** One LoRA file to merge, with its multipliers (A1111's `<lora:name:te:unet>`). */
export interface LoraRequest {
  /** The `.safetensors` file. */
  path: string;
  /** Multiplier of the text-encoder modules. */
  te: number;
  /** Multiplier of the UNet modules. */
  unet: number;
}

/** What {@linkcode LoraMerger.use} did. */
export interface LoraUse {
  /** Identifies the requested set (text states made with another key are stale). */
  key: string;
  /** Whether the UNet's weights changed (cached cross-attention K/V are stale). */
  unetChanged: boolean;
  /** One-line notes for the user (modules that match no layer, per newly read file). */
  notes: string[];
}

interface Update {
  module: LoraModule;
  /** SCALE · alpha / rank. */
  factor: number;
}

/** Keeps the LoRA merges of one model's UNet and text encoder. */
export class LoraMerger {
  readonly #files = new Map<string, Promise<LoraFile>>();
  readonly #convs: Map<string, ConvModule>;
  /** Original contents of every UNet buffer changed so far, to copy back. */
  readonly #unetBases = new Bases();
  #unetKey = "[]";
  #text: Update[] = [];

  constructor(
    readonly gpu: Gpu,
    readonly stores: Record<LoraComponent, ParamStore>,
  ) {
    this.#convs = new Map(
      [...stores.unet.convs, ...stores.text_encoder.convs].map((c) => [c.weight.key, c]),
    );
  }

  /**
   * Makes `requests` the merged set: reads (once per path) and checks every file first, so a
   * bad file changes nothing; then, if the UNet's part differs from what is merged, restores the
   * UNet's original weights and merges the new set. The text encoder's part is merged by
   * {@linkcode withText}.
   *
   * @throws {UserError} for a file that cannot be merged (nothing is changed then)
   */
  async use(requests: readonly LoraRequest[]): Promise<LoraUse> {
    const notes: string[] = [];
    const files = await Promise.all(requests.map((r) => this.#read(r.path, notes)));
    const updates = (component: LoraComponent): Update[] =>
      requests.flatMap((r, i) => {
        const scale = component === "unet" ? r.unet : r.te;
        if (scale === 0) return [];
        return files[i].modules.filter((m) => m.component === component)
          .map((module) => ({ module, factor: (scale * module.alpha) / module.rank }));
      });
    const unet = updates("unet");
    this.#text = updates("text_encoder");
    const unetKey = JSON.stringify(unet.map((u) => [u.module.key, u.factor]));
    const key = JSON.stringify(requests.map((r) => [r.path, r.te, r.unet]));
    if (unetKey === this.#unetKey) return { key, unetChanged: false, notes };
    this.#unetBases.restore(this.gpu);
    this.#unetKey = "[]";
    this.#merge(this.stores.unet, unet, this.#unetBases);
    this.#unetKey = unetKey;
    return { key, unetChanged: true, notes };
  }

  /**
   * Runs `fn` (which records the text encoder's work) with the text encoder's LoRA updates of
   * the last {@linkcode use} merged, and restores its weights after (in queue order).
   */
  withText<T>(fn: () => T): T {
    if (this.#text.length === 0) return fn();
    const store = this.stores.text_encoder;
    store.restore(); // after an offload: merge into the uploaded tensors
    const bases = new Bases();
    try {
      this.#merge(store, this.#text, bases);
      return fn();
    } finally {
      bases.restore(this.gpu);
    }
  }

  /** Restores every original weight and frees the copies (the model is as loaded). */
  reset(): void {
    this.#unetBases.restore(this.gpu);
    this.#unetKey = "[]";
  }

  #read(path: string, notes: string[]): Promise<LoraFile> {
    let file = this.#files.get(path);
    if (!file) {
      file = readLora(path, loraTargets(this.stores)).then((f) => {
        if (f.unmatched.length) {
          const n = f.modules.length + f.unmatched.length;
          notes.push(
            `sd: ${path}: ${f.unmatched.length} of its ${n} modules match no layer of this model and are left out (e.g. ${
              f.unmatched[0]
            })`,
          );
        }
        return f;
      });
      this.#files.set(path, file);
      file.catch(() => this.#files.delete(path)); // a fixed file may be tried again
    }
    return file;
  }

  /**
   * Records `updates` into `store`'s weights, keeping the originals of the buffers they change
   * in `bases` first. The CPU side is a few large writes and buffer creations, not a few per
   * module, and no submit or wait between modules: every half is written by `queue.writeBuffer`
   * (work recorded before is submitted first, so the writes run after it) into a few buffers of
   * at most {@linkcode HALVES_GROUP_BYTES}, and the originals are copied into a few large
   * buffers.
   */
  #merge(store: ParamStore, updates: readonly Update[], bases: Bases): void {
    const gpu = this.gpu;
    const byKey = new Map(store.params.map((p) => [p.key, p]));
    const elt = store.dtype === "f16" ? 2 : 4;
    gpu.submit(); // the writes below then run after everything recorded so far
    const halves = this.#upload(updates);
    const targets = updates.map(({ module: m }) => {
      const w = byKey.get(m.key)!.t;
      const wino = this.#convs.get(m.key) && winogradFilter(w);
      return { w, wino };
    });
    bases.keep(
      gpu,
      targets.flatMap(({ w, wino }) => [
        ...(w.released ? [] : [{ buffer: w.buffer, bytes: w.bytes }]),
        ...(wino ? [{ buffer: wino.u, bytes: wino.xi * wino.Cp * wino.Op * elt }] : []),
      ]),
    );
    updates.forEach(({ module: m, factor }, i) => {
      const { w, wino } = targets[i];
      const { up, down } = halves.placed[i];
      if (!w.released) addLowRankAt(w, up, down, m.rank, factor);
      if (wino) {
        const down4 = Tensor.empty(gpu, [m.rank, w.shape[1], 3, 3], "f32", "lora-down");
        gpu.copy(down.buffer, down.offset * 4, down4.buffer, 0, down4.bytes);
        addLowRankWinograd(w, up, down4, factor);
        down4.release();
      }
    });
    // Back to the pool: a later user's writes and kernels are recorded after these merges.
    for (const b of halves.buffers) gpu.free(b);
  }

  /**
   * Writes the f32 halves of `updates` into buffers of at most {@linkcode HALVES_GROUP_BYTES}
   * (one update's may be larger) by `queue.writeBuffer`, with nothing recorded.
   */
  #upload(updates: readonly Update[]): {
    buffers: GPUBuffer[];
    placed: { up: F32Slice; down: F32Slice }[];
  } {
    const gpu = this.gpu;
    const buffers: GPUBuffer[] = [];
    const placed: { up: F32Slice; down: F32Slice }[] = [];
    const sizes = updates.map(({ module: m }) => (m.up.length + m.down.length) * 4);
    for (const g of packGroups(sizes, Math.min(HALVES_GROUP_BYTES, gpu.maxBinding))) {
      const buffer = gpu.alloc(g.bytes, "lora-halves");
      buffers.push(buffer);
      let offset = 0;
      for (let i = g.start; i < g.end; i++) {
        const m = updates[i].module;
        const up = { buffer, offset };
        gpu.write(buffer, m.up, offset * 4);
        offset += m.up.length;
        const down = { buffer, offset };
        gpu.write(buffer, m.down, offset * 4);
        offset += m.down.length;
        placed.push({ up, down });
      }
    }
    return { buffers, placed };
  }
}

/** The most bytes of LoRA halves uploaded into one buffer (a group of updates). */
const HALVES_GROUP_BYTES = 64 << 20;

/** The most bytes of originals copied into one buffer. */
const BASE_CHUNK_BYTES = 256 << 20;

/**
 * Consecutive runs of `sizes` (items [start, end), `bytes` in all) of at most `limit` bytes each,
 * in order; an item larger than `limit` is a run of its own. One GPU buffer is made per run.
 */
function packGroups(
  sizes: readonly number[],
  limit: number,
): { start: number; end: number; bytes: number }[] {
  const groups: { start: number; end: number; bytes: number }[] = [];
  for (let start = 0; start < sizes.length;) {
    let end = start;
    let bytes = 0;
    while (end < sizes.length && (end === start || bytes + sizes[end] <= limit)) {
      bytes += sizes[end++];
    }
    groups.push({ start, end, bytes });
    start = end;
  }
  return groups;
}

/**
 * Copies of the original contents of changed buffers, packed into few buffers (each creation
 * costs CPU time), to copy back.
 */
class Bases {
  readonly #kept = new Map<GPUBuffer, { copy: GPUBuffer; offset: number; bytes: number }>();
  readonly #chunks: GPUBuffer[] = [];

  /** Records a copy of each of `buffers` (the first `bytes` of it) not kept already. */
  keep(gpu: Gpu, buffers: readonly { buffer: GPUBuffer; bytes: number }[]): void {
    const todo = new Map<GPUBuffer, number>();
    for (const { buffer, bytes } of buffers) {
      if (!this.#kept.has(buffer)) todo.set(buffer, (bytes + 3) & ~3);
    }
    const list = [...todo];
    const limit = Math.min(BASE_CHUNK_BYTES, gpu.limits.maxBufferSize);
    for (const g of packGroups(list.map(([, bytes]) => bytes), limit)) {
      const copy = gpu.alloc(g.bytes, "lora-base", true);
      this.#chunks.push(copy);
      let offset = 0;
      for (const [buffer, bytes] of list.slice(g.start, g.end)) {
        gpu.copy(buffer, 0, copy, offset, bytes);
        this.#kept.set(buffer, { copy, offset, bytes });
        offset += bytes;
      }
    }
  }

  /** Copies the originals back (in queue order) and frees the copies. */
  restore(gpu: Gpu): void {
    for (const [buffer, k] of this.#kept) gpu.copy(k.copy, k.offset, buffer, 0, k.bytes);
    for (const copy of this.#chunks) gpu.destroyBuffer(copy);
    this.#kept.clear();
    this.#chunks.length = 0;
  }
}
