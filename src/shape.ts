/**
 * Shape arithmetic shared by the GPU runtime, safetensors and the synthetic weights.
 *
 * @module
 */

/** Number of elements of `shape` (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
