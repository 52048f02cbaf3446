/**
 * Test helpers for GPU suites: one shared device, and the CI rule — with CI=true a missing
 * adapter fails the test instead of skipping it.
 *
 * @module
 */

import { Gpu } from "../src/gpu/device.ts";

let shared: Promise<Gpu | null> | null = null;

/** The shared test device, or null when there is no adapter outside CI. */
export function testGpu(): Promise<Gpu | null> {
  shared ??= (async () => {
    try {
      return await Gpu.create({ profile: false });
    } catch (e) {
      if (Deno.env.get("CI") === "true") throw e;
      console.error(`skipping GPU tests: ${(e as Error).message}`);
      return null;
    }
  })();
  return shared;
}

/** Whether GPU tests should be registered (always under CI; else only with an adapter). */
export const hasGpu: boolean = Deno.env.get("CI") === "true" ||
  (await navigator.gpu?.requestAdapter()) != null;

/** Relative L2 error ‖a−b‖/‖b‖. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return Math.sqrt(num / (den || 1));
}

/** Largest absolute difference. */
export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Deterministic uniform values in [-scale, scale) (xorshift32). */
export function randomData(n: number, seed = 1, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}
