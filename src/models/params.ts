/**
 * Parameters by checkpoint key. Model code declares each parameter with its exact safetensors
 * key and shape while it is built from its config (`vs.pp("to_q").param("weight", [n, k])`);
 * loading then is a lookup: every declared key must exist with that shape, and every
 * floating-point key of the source must be declared — mismatches are listed in one error.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import type { DType, Gpu } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { releaseConv } from "../ops/conv2d.ts";

/** A tensor whose stored shape is not the declared one. */
export interface ShapeMismatch {
  /** The model key. */
  key: string;
  /** The shape in the file. */
  found: readonly number[];
  /** The shape the config declares. */
  expected: readonly number[];
}

/** Where parameter values come from (a safetensors file, a single-file checkpoint, the formula). */
export interface WeightSource {
  /** For messages, e.g. the file path. */
  readonly label: string;
  /**
   * What to tell the user when tensors have other shapes than the config declares (what the file
   * probably is, what to do); none: the message lists the mismatches only.
   */
  mismatchAdvice?(wrong: readonly ShapeMismatch[]): string;
  /** Every floating-point key this source holds (null: the source makes any key, e.g. synth). */
  keys(): string[] | null;
  /** The stored shape of `key`, or undefined when absent (synth: the declared shape). */
  shape(key: string, declared: readonly number[]): readonly number[] | undefined;
  /**
   * The values of each requested key converted to `dtype`, in the declared shape's element order;
   * yielded in whatever order the source reads best (file order).
   */
  readAll(
    requests: readonly { key: string; shape: readonly number[] }[],
    dtype: DType,
  ): AsyncIterable<{ key: string; data: Float32Array | Float16Array }>;
}

/** What the loader needs to know of a convolution module. */
export interface ConvModule {
  readonly weight: Param;
  /** True for 3×3, stride 1, padding 1: the shape Winograd F(2×2,3×3) serves. */
  readonly winogradEligible: boolean;
  /** Records the filter's Winograd transform (if eligible). */
  prepareWinograd(): void;
  /** Frees the 3×3 filter itself once its transform has run (if eligible). */
  dropDirectWeight(): void;
}

/** A declared parameter; `tensor` is set by {@linkcode ParamStore.load}. */
export class Param {
  #tensor: Tensor | null = null;
  constructor(readonly key: string, readonly shape: readonly number[], readonly dtype: DType) {}

  /** The loaded tensor. */
  get t(): Tensor {
    if (!this.#tensor) {
      throw new Error(`parameter ${this.key} was not loaded (see the loader's options)`);
    }
    return this.#tensor;
  }

  /** Whether the loader uploaded this parameter. */
  get loaded(): boolean {
    return this.#tensor !== null;
  }

  /** @internal */
  set(t: Tensor): void {
    this.#tensor = t;
  }
}

/** All parameters of one model component (unet, vae or text encoder). */
export class ParamStore {
  readonly params: Param[] = [];
  /** The convolution modules built on this store (load-time Winograd preparation walks them). */
  readonly convs: ConvModule[] = [];
  #byKey = new Map<string, Param>();
  #gpu: Gpu | null = null;
  #host: Map<Param, Float32Array | Float16Array> | null = null;
  #offloaded = false;

  constructor(readonly component: string, readonly dtype: DType) {}

  /** A builder rooted at the empty prefix. */
  root(): VarBuilder {
    return new VarBuilder(this, "");
  }

  /** @internal */
  declare(key: string, shape: readonly number[]): Param {
    if (this.#byKey.has(key)) throw new Error(`${this.component}: parameter ${key} declared twice`);
    const p = new Param(key, shape, this.dtype);
    this.params.push(p);
    this.#byKey.set(key, p);
    return p;
  }

  /** Frees every loaded parameter and the Winograd transforms made from them. */
  release(): void {
    for (const p of this.params) {
      if (!p.loaded) continue;
      releaseConv(p.t);
      p.t.destroy();
    }
  }

  /** Number of parameter values. */
  get count(): number {
    let n = 0;
    for (const p of this.params) n += p.shape.reduce((a, b) => a * b, 1);
    return n;
  }

  /**
   * Checks every key and shape against `source`, then uploads every parameter not skipped.
   * `onTensor` sees each uploaded parameter.
   */
  async load(
    gpu: Gpu,
    source: WeightSource,
    opts: {
      onTensor?: (p: Param) => void;
      skip?: (key: string) => boolean;
      /** Keep each tensor's data on the host too, so that {@linkcode offload} can free the GPU. */
      keepHost?: boolean;
    } = {},
  ): Promise<void> {
    this.#gpu = gpu;
    if (opts.keepHost) this.#host = new Map();
    const wrong: ShapeMismatch[] = [];
    const missing: Param[] = [];
    for (const p of this.params) {
      const s = source.shape(p.key, p.shape);
      if (!s) missing.push(p);
      else if (s.join(",") !== p.shape.join(",")) {
        wrong.push({ key: p.key, found: s, expected: p.shape });
      }
    }
    const keys = source.keys();
    const unexpected = keys ? keys.filter((k) => !this.#byKey.has(k)) : [];
    // One line: how many of each kind, an example of the first kind, and the source's advice.
    const problems: string[] = [];
    const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
    if (wrong.length) {
      const w = wrong[0];
      problems.push(
        `${count(wrong.length, "tensor")} of another shape (e.g. ${w.key} is [${w.found}], ` +
          `not [${w.expected}])`,
      );
    }
    if (missing.length) {
      problems.push(
        wrong.length
          ? `${missing.length} missing`
          : `${count(missing.length, "tensor")} missing (e.g. ${missing[0].key})`,
      );
    }
    if (unexpected.length) {
      problems.push(
        wrong.length || missing.length
          ? `${unexpected.length} unexpected`
          : `${count(unexpected.length, "unexpected tensor")} (e.g. ${unexpected[0]})`,
      );
    }
    if (keys && keys.length !== this.params.length && problems.length === 0) {
      problems.push(`${keys.length} tensors in the file, ${this.params.length} expected`);
    }
    if (problems.length) {
      const advice = wrong.length ? source.mismatchAdvice?.(wrong) : undefined;
      throw new UserError(
        `${source.label} does not match the ${this.component} config: ${problems.join(", ")}` +
          (advice ? `; ${advice}` : ""),
      );
    }
    // Skipped keys are checked above, not uploaded (e.g. an unused encoder).
    const wanted = this.params.filter((p) => !opts.skip?.(p.key));
    for await (const { key, data } of source.readAll(wanted, this.dtype)) {
      const p = this.#byKey.get(key)!;
      this.#upload(p, data);
      this.#host?.set(p, data);
      opts.onTensor?.(p);
    }
    const missed = wanted.filter((p) => !p.loaded);
    if (missed.length) throw new UserError(`${source.label}: ${missed[0].key} was not read`);
  }

  /**
   * Frees the GPU copies of parameters loaded with `keepHost` (recorded work that reads them
   * still runs: see `Gpu.destroyBuffer`); {@linkcode restore} uploads them again. Like
   * diffusers' model CPU offload.
   */
  offload(): void {
    if (!this.#host || this.#offloaded) return;
    for (const p of this.#host.keys()) p.t.destroy();
    this.#offloaded = true;
  }

  #upload(p: Param, data: Float32Array | Float16Array): void {
    p.set(Tensor.from(this.#gpu!, data, p.shape, this.dtype, { label: p.key, persistent: true }));
  }

  /** Uploads offloaded parameters again (a no-op unless {@linkcode offload}ed). */
  restore(): void {
    if (!this.#offloaded) return;
    for (const [p, data] of this.#host!) this.#upload(p, data);
    this.#offloaded = false;
  }
}

/** Builds dotted checkpoint keys: `vs.pp("down_blocks").pp(0).param("weight", shape)`. */
export class VarBuilder {
  constructor(readonly store: ParamStore, readonly prefix: string) {}

  /** A builder for the sub-module `name`. */
  pp(name: string | number): VarBuilder {
    return new VarBuilder(this.store, this.prefix ? `${this.prefix}.${name}` : String(name));
  }

  /** Declares the parameter `prefix.name` with `shape`. */
  param(name: string, shape: readonly number[]): Param {
    return this.store.declare(this.prefix ? `${this.prefix}.${name}` : name, shape);
  }
}
