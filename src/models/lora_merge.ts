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
import { addLowRank, addLowRankWinograd } from "../ops/lora_merge.ts";
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

/** Changed buffer → a copy of its original contents. */
type Bases = Map<GPUBuffer, GPUBuffer>;

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
  readonly #unetBases: Bases = new Map();
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
    this.#restore(this.#unetBases);
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
    const bases: Bases = new Map();
    try {
      this.#merge(store, this.#text, bases);
      return fn();
    } finally {
      this.#restore(bases);
    }
  }

  /** Restores every original weight and frees the copies (the model is as loaded). */
  reset(): void {
    this.#restore(this.#unetBases);
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

  /** Keeps a copy of `buffer` (`bytes` long) in `bases` unless one is kept already. */
  #keep(bases: Bases, buffer: GPUBuffer, bytes: number): void {
    if (bases.has(buffer)) return;
    const copy = this.gpu.alloc(bytes, "lora-base", true);
    this.gpu.copy(buffer, 0, copy, 0, copy.size);
    bases.set(buffer, copy);
  }

  /** Copies the originals in `bases` back (in queue order) and frees the copies. */
  #restore(bases: Bases): void {
    for (const [buffer, copy] of bases) this.gpu.copy(copy, 0, buffer, 0, copy.size);
    for (const copy of bases.values()) this.gpu.destroyBuffer(copy);
    bases.clear();
  }

  #merge(store: ParamStore, updates: readonly Update[], bases: Bases): void {
    const byKey = new Map(store.params.map((p) => [p.key, p]));
    const elt = store.dtype === "f16" ? 2 : 4;
    for (const { module: m, factor } of updates) {
      const w = byKey.get(m.key)!.t;
      const out = w.shape[0];
      const up = Tensor.from(this.gpu, m.up, [out, m.rank], "f32");
      const down = Tensor.from(this.gpu, m.down, [m.rank, m.down.length / m.rank], "f32");
      if (!w.released) {
        this.#keep(bases, w.buffer, w.bytes);
        addLowRank(w, up, down, factor);
      }
      const wino = this.#convs.get(m.key) && winogradFilter(w);
      if (wino) {
        this.#keep(bases, wino.u, wino.xi * wino.Cp * wino.Op * elt);
        const down4 = down.reshape([m.rank, w.shape[1], 3, 3]);
        addLowRankWinograd(w, up, down4, factor);
        down4.release();
      }
      up.release();
      down.release();
    }
  }
}
