/**
 * Where stochastic schedulers (Euler a, LCM, DDIM with η > 0) get their noise.
 *
 * @module
 */

import type { SchedulerOptions } from "./scheduler.ts";

/** `n` standard-normal values. */
export type NormalSource = (n: number) => Float32Array;

/**
 * The noise source from the options: `randn` (the torch-compatible generator; preferred), else
 * `rng` called once a value, else a fixed-seed fallback (mulberry32 + Box–Muller, seed 0) that is
 * reproducible but does NOT reproduce torch.randn — images then differ from diffusers'.
 */
export function normalSource(opts: SchedulerOptions): NormalSource {
  const { randn, rng } = opts;
  if (randn) {
    return (n) => {
      const values = randn(n);
      if (values.length !== n) throw new Error(`randn(${n}) returned ${values.length} values`);
      return values;
    };
  }
  if (rng) return (n) => Float32Array.from({ length: n }, () => rng());
  return seededNormals(0);
}

/** Standard normals from mulberry32 uniforms by Box–Muller: reproducible, not torch's stream. */
export function seededNormals(seed: number): NormalSource {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
  return (n) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
      const theta = 2 * Math.PI * uniform();
      out[i] = radius * Math.cos(theta);
      if (i + 1 < n) out[i + 1] = radius * Math.sin(theta);
    }
    return out;
  };
}
