/**
 * Weight sources for {@linkcode ParamStore.load}: a diffusers safetensors file, a component of a
 * single-file SD checkpoint (original key names, mapped), or the synthetic formula of SYNTH.md.
 *
 * @module
 */

import type { DType } from "../gpu/device.ts";
import { SafeTensorsFile } from "../weights/safetensors.ts";
import { synthTensor, synthTensorF16 } from "../weights/synth.ts";
import type { ShapeMismatch, WeightSource } from "./params.ts";

/** The safetensors dtypes that hold parameters (others, like CLIP's int64 position_ids, do not). */
export const FLOAT_DTYPES: ReadonlySet<string> = new Set(["F32", "F16", "BF16", "F64"]);

/** Streams model keys from `file` (see `SafeTensorsFile.stream`), `fileKey` naming each. */
async function* streamKeys(
  file: SafeTensorsFile,
  requests: readonly { key: string }[],
  fileKey: (key: string) => string,
  dtype: DType,
): AsyncGenerator<{ key: string; data: Float32Array | Float16Array }> {
  const modelKey = new Map(requests.map((r) => [fileKey(r.key), r.key]));
  for await (const { name, data } of file.stream([...modelKey.keys()], dtype)) {
    yield { key: modelKey.get(name)!, data };
  }
}

/** One safetensors file; `prefix` is stripped from its keys (`text_model.` for CLIP). */
export class SafetensorsSource implements WeightSource {
  readonly label: string;
  #keys = new Map<string, string>(); // model key → file key

  constructor(readonly file: SafeTensorsFile, prefix = "") {
    this.label = file.path;
    for (const [k, info] of file.tensors) {
      if (!FLOAT_DTYPES.has(info.dtype)) continue; // e.g. CLIP's int64 position_ids
      this.#keys.set(prefix && k.startsWith(prefix) ? k.slice(prefix.length) : k, k);
    }
  }

  keys(): string[] {
    return [...this.#keys.keys()];
  }

  shape(key: string): readonly number[] | undefined {
    const k = this.#keys.get(key);
    return k === undefined ? undefined : this.file.tensors.get(k)!.shape;
  }

  readAll(
    requests: readonly { key: string }[],
    dtype: DType,
  ): AsyncIterable<{ key: string; data: Float32Array | Float16Array }> {
    return streamKeys(this.file, requests, (k) => this.#keys.get(k)!, dtype);
  }
}

/** A mapped view of tensors from a single-file checkpoint (keys already translated). */
export class MappedSource implements WeightSource {
  constructor(
    readonly label: string,
    readonly file: SafeTensorsFile,
    /** model key → { file key, stored shape } */
    readonly map: Map<string, { fileKey: string; shape: readonly number[] }>,
    /** What to say when shapes do not match the config (see `WeightSource.mismatchAdvice`). */
    readonly advice?: (wrong: readonly ShapeMismatch[]) => string,
  ) {}

  mismatchAdvice(wrong: readonly ShapeMismatch[]): string {
    return this.advice?.(wrong) ?? "";
  }

  keys(): string[] {
    return [...this.map.keys()];
  }

  shape(key: string): readonly number[] | undefined {
    return this.map.get(key)?.shape;
  }

  readAll(
    requests: readonly { key: string }[],
    dtype: DType,
  ): AsyncIterable<{ key: string; data: Float32Array | Float16Array }> {
    return streamKeys(this.file, requests, (k) => this.map.get(k)!.fileKey, dtype);
  }
}

/** Every tensor computed from its name by SYNTH.md's formula (no files). */
export class SynthSource implements WeightSource {
  readonly label = "synthetic weights (SYNTH.md)";

  keys(): null {
    return null;
  }

  shape(_key: string, declared: readonly number[]): readonly number[] {
    return declared;
  }

  async *readAll(
    requests: readonly { key: string; shape: readonly number[] }[],
    dtype: DType,
  ): AsyncGenerator<{ key: string; data: Float32Array | Float16Array }> {
    for (const { key, shape } of requests) {
      yield { key, data: dtype === "f16" ? synthTensorF16(key, shape) : synthTensor(key, shape) };
    }
  }
}
