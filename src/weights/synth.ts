/**
 * Synthetic weights by formula (`../shared/fixtures/SYNTH.md`): every floating-point tensor is a
 * pure function of its checkpoint key and shape, so the full SD 1.5 architecture can be run and
 * benchmarked without downloading its weights. The Python generator behind `tiny-sd/` and
 * `sd15-synth-golden.*` uses the same formula; this implementation reproduces it bit for bit.
 *
 * Per element `i` (row-major): a 32-bit integer hash of `i` and `fnv1a32(name)` gives
 * `u ∈ [-1, 1)` (24 bits), then `v = u / sqrt(fan_in)` for rank ≥ 2, `1 + 0.1 u` for 1-D
 * `…weight` (norm scales), `0.05 u` otherwise (biases), computed in f64 and rounded to f32.
 *
 * @example
 * ```ts
 * const w = synthTensor("conv_in.weight", [320, 4, 3, 3]); // Float32Array(11520)
 * ```
 *
 * @module
 */

import { numel } from "../shape.ts";

/** FNV-1a 32-bit hash of the UTF-8 bytes of `name` (offset basis 0x811C9DC5, prime 0x01000193). */
export function fnv1a32(name: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(name)) {
    h = Math.imul(h ^ b, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The SYNTH.md integer mix of element index `i` and `seed`, reduced to `u = (x >> 8)·2⁻²³ − 1`,
 * exact in f64 and in [-1, 1). Small enough for V8 to inline into the fill loops.
 */
function uniform(i: number, seed: number): number {
  let x = (Math.imul(i, 0x9e3779b1) + seed) | 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return (x >>> 8) * 1.1920928955078125e-7 - 1; // 2^-23
}

/** The first `count` uniforms `u[i]` of the tensor named `name` (for checking the formula). */
export function synthUniform(name: string, count: number): Float64Array {
  const seed = fnv1a32(name);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = uniform(i, seed);
  return out;
}

/** `v = offset + scale·u` for this tensor: fan-in scaled, norm scale, or bias. */
function affine(name: string, shape: readonly number[]): { offset: number; scale: number } {
  if (shape.length >= 2) {
    let fanIn = 1;
    for (let d = 1; d < shape.length; d++) fanIn *= shape[d];
    // offset 0 adds exactly nothing (u·s is never -0: u = 0 only as +0).
    return { offset: 0, scale: 1 / Math.sqrt(fanIn) };
  }
  if (name.endsWith("weight")) return { offset: 1, scale: 0.1 };
  return { offset: 0, scale: 0.05 };
}

/**
 * The synthetic f32 tensor for checkpoint key `name` (diffusers layout; text-encoder keys without
 * `text_model.`) and PyTorch `shape`.
 */
export function synthTensor(name: string, shape: readonly number[]): Float32Array {
  const seed = fnv1a32(name);
  const { offset, scale } = affine(name, shape);
  const out = new Float32Array(numel(shape));
  // Float32Array stores round to nearest from f64, which is Math.fround.
  for (let i = 0; i < out.length; i++) out[i] = offset + uniform(i, seed) * scale;
  return out;
}

/** {@linkcode synthTensor} rounded to f16 (round to nearest even from the f32 value). */
export function synthTensorF16(name: string, shape: readonly number[]): Float16Array {
  const seed = fnv1a32(name);
  const { offset, scale } = affine(name, shape);
  const out = new Float16Array(numel(shape));
  // f64 → f32 first, then f32 → f16: rounding the f64 straight to f16 could differ (double rounding).
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(offset + uniform(i, seed) * scale);
  return out;
}
