/**
 * Test helpers for GPU suites: one shared device, and the CI rule — with CI=true a missing
 * adapter fails the test instead of skipping it. The shared device is destroyed when its test
 * module unloads (each test file runs in its own worker of one process). Without that, every
 * file's device with its buffer pool and pipelines stayed alive until the process exited and the
 * runtime freed them all at once; the one abort seen after the summary (glibc `corrupted size vs.
 * prev_size in fastbins`) happened in that teardown.
 *
 * @module
 */

import { Gpu, type LimitsMode } from "../src/gpu/device.ts";
import { absDiff } from "../src/compare.ts";

const shared = new Map<LimitsMode | "env", Promise<Gpu | null>>();

/**
 * One shared device per limits mode (`undefined`: as `SD_WEBGPU_LIMITS` says), destroyed on
 * unload; null when there is no adapter outside CI.
 */
function sharedGpu(limits?: LimitsMode): Promise<Gpu | null> {
  let gpu = shared.get(limits ?? "env");
  if (!gpu) {
    gpu = (async () => {
      try {
        const gpu = await Gpu.create({ profile: false, limits });
        globalThis.addEventListener("unload", () => gpu.destroy());
        return gpu;
      } catch (e) {
        if (Deno.env.get("CI") === "true") throw e;
        console.error(`skipping GPU tests: ${(e as Error).message}`);
        return null;
      }
    })();
    shared.set(limits ?? "env", gpu);
  }
  return gpu;
}

/**
 * The shared test device (limits as `SD_WEBGPU_LIMITS` says: CI runs the golden tests again with
 * `default`), or null when there is no adapter outside CI.
 */
export function testGpu(): Promise<Gpu | null> {
  return sharedGpu();
}

/**
 * A second shared test device with WebGPU's spec-default limits and no `shader-f16`
 * (`SD_WEBGPU_LIMITS=default`): what the smallest adapter grants. Op tests run their cases on
 * both devices; null when there is no adapter outside CI.
 */
export function defaultLimitsGpu(): Promise<Gpu | null> {
  return sharedGpu("default");
}

/** Whether GPU tests should be registered (always under CI; else only with an adapter). */
export const hasGpu: boolean = Deno.env.get("CI") === "true" ||
  (await navigator.gpu?.requestAdapter()) != null;

/** Error metrics (shared with scripts/check_golden.ts). */
export { relL2 } from "../src/compare.ts";

/** Largest absolute difference. */
export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return absDiff(a, b).max;
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
