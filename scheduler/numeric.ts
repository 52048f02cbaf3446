/**
 * The few NumPy / PyTorch numerics that decide timesteps and sigmas, reproduced bit for bit:
 * `np.linspace`, `np.arange` (float step), `np.round` (half to even), `np.interp` on the integer
 * grid, and float32 rounding. diffusers builds every schedule from these; a "close enough"
 * substitute moves a timestep by one (e.g. 498.5 rounds to 498 in NumPy, to 499 with `Math.round`).
 *
 * @module
 */

/** Rounds to the nearest float32 (PyTorch/NumPy `float32` storage). */
export const f32: (x: number) => number = Math.fround;

/**
 * `np.linspace(start, stop, num)` (endpoint included) in float64: `i * step + start`, the last
 * value set to `stop` exactly; a single point is `start`.
 */
export function linspace(start: number, stop: number, num: number): number[] {
  const div = num - 1;
  const step = (stop - start) / div;
  const out: number[] = [];
  for (let i = 0; i < num; i++) out.push(div > 0 ? i * step + start : start);
  if (num > 1) out[num - 1] = stop;
  return out;
}

/**
 * `np.arange(start, stop, step)` for a float step: length `ceil((stop - start) / step)`, values
 * `start + i * delta` where `delta = (start + step) - start`, as NumPy's fill does.
 */
export function arange(start: number, stop: number, step: number): number[] {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const out: number[] = [];
  if (length === 0) return out;
  const delta = (start + step) - start;
  out.push(start);
  for (let i = 1; i < length; i++) out.push(i === 1 ? start + step : start + i * delta);
  return out;
}

/** `np.round(x)`: to the nearest integer, ties to even (498.5 → 498, 499.5 → 500). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // ties toward +∞
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * `np.interp(x, np.arange(len(fp)), fp)`: linear interpolation of `fp` sampled at 0, 1, …,
 * clamped to the end values, in float64.
 */
export function interpUnitGrid(x: number, fp: ArrayLike<number>): number {
  const last = fp.length - 1;
  if (Number.isNaN(x)) return x;
  if (x <= 0) return fp[0];
  if (x >= last) return fp[last];
  const j = Math.floor(x);
  if (j === x) return fp[j];
  const slope = fp[j + 1] - fp[j]; // (fp[j+1] − fp[j]) / (j+1 − j)
  return slope * (x - j) + fp[j];
}
