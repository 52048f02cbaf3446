/**
 * Error metrics against a reference, as `../shared/fixtures/README.md` states its tolerances:
 * relative L2 (‖a−b‖/‖b‖), max and mean absolute difference. Used by tests and by
 * `scripts/check_golden.ts`.
 *
 * @module
 */

/** Relative L2 error ‖a−b‖/‖b‖ (‖a−b‖ when b is all zeros). */
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

/** Largest and mean absolute difference. */
export function absDiff(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; mean: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0, sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    sum += d;
  }
  return { max, mean: sum / (a.length || 1) };
}
