/**
 * The noise level σ of the variance-exploding view x = x₀ + σ·ε (Karras et al. 2022), in which
 * the σ-based samplers (Euler, Euler a, LMS, DPM-Solver) work: σ_t = √((1 − ᾱ_t)/ᾱ_t), its
 * interpolation at fractional timesteps, the Karras spacing, and the inverse map σ → t.
 *
 * @module
 */

import { f32, interpUnitGrid, linspace } from "./numeric.ts";

/** σ_t = √((1 − ᾱ_t)/ᾱ_t) for every training timestep, in float32 as torch computes it. */
export function trainSigmas(alphaBar: Float32Array): Float32Array {
  return alphaBar.map((a) => Math.sqrt(f32(f32(1 - a) / a)));
}

/** log σ_t in float32 (`np.log` of a float32 array). */
export function logSigmas(sigmas: Float32Array): Float32Array {
  return sigmas.map(Math.log);
}

/** σ at a (possibly fractional) timestep: linear interpolation of σ_t (`np.interp`), float64. */
export function sigmaAt(t: number, trainSigma: Float32Array): number {
  return interpUnitGrid(t, trainSigma);
}

/**
 * n noise levels from σ_max down to σ_min, evenly spaced in σ^(1/ρ) with ρ = 7 (Karras et al.
 * 2022, eq. 5), float64.
 */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number, rho = 7): number[] {
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  return linspace(0, 1, n).map((ramp) => (maxInvRho + ramp * (minInvRho - maxInvRho)) ** rho);
}

/**
 * The fractional timestep whose σ is `sigma`: linear interpolation in log σ between the two
 * training timesteps around it (diffusers' `_sigma_to_t`, with its float32 `log σ_t` table and
 * float32 denominator), clamped to [0, T−1].
 */
export function sigmaToT(sigma: number, logSigma: Float32Array): number {
  const target = Math.log(Math.max(sigma, 1e-10));
  let low = 0;
  for (let i = 0; i < logSigma.length; i++) if (target - logSigma[i] >= 0) low = i;
  low = Math.min(low, logSigma.length - 2);
  const high = low + 1;
  const w = (logSigma[low] - target) / f32(logSigma[low] - logSigma[high]);
  const wClamped = Math.min(Math.max(w, 0), 1);
  return (1 - wClamped) * low + wClamped * high;
}

/** Timesteps and σ (one more than timesteps: the σ after the last step), float32 values. */
export interface SigmaSchedule {
  timesteps: number[];
  sigmas: number[];
}

/** How `discreteSigmaSchedule` spaces σ. */
export interface SigmaScheduleOptions {
  /** Karras spacing between these bounds (null: the interpolated schedule's own ends). */
  karras?: { sigmaMin: number | null; sigmaMax: number | null };
  /** σ after the last step (0, or σ_min for `final_sigmas_type: "sigma_min"`). */
  finalSigma: number;
}

/**
 * The σ schedule of Euler, Euler a and LMS (k-diffusion's discrete schedule, as diffusers
 * builds it): σ interpolated at the given timesteps; with Karras spacing, the σ respaced
 * between that schedule's ends and the timesteps mapped back from them; then the final σ.
 */
export function discreteSigmaSchedule(
  timesteps: number[],
  trainSigma: Float32Array,
  opts: SigmaScheduleOptions,
): SigmaSchedule {
  let sigmas = timesteps.map((t) => sigmaAt(t, trainSigma));
  let ts = timesteps;
  if (opts.karras) {
    const sigmaMin = opts.karras.sigmaMin ?? sigmas[sigmas.length - 1];
    const sigmaMax = opts.karras.sigmaMax ?? sigmas[0];
    sigmas = karrasSigmas(sigmaMin, sigmaMax, timesteps.length);
    const logSigma = logSigmas(trainSigma);
    ts = sigmas.map((s) => sigmaToT(s, logSigma));
  }
  return { timesteps: ts.map(f32), sigmas: [...sigmas, opts.finalSigma].map(f32) };
}

/**
 * The initial noise's standard deviation for σ-based schedulers: σ_max with "linspace"/"trailing"
 * spacing (which start at t = T−1), else √(σ_max² + 1) (float32, as diffusers).
 */
export function initNoiseSigmaOf(sigmas: ArrayLike<number>, spacing: string): number {
  let max = 0;
  for (let i = 0; i < sigmas.length; i++) max = Math.max(max, sigmas[i]);
  if (spacing === "linspace" || spacing === "trailing") return max;
  return f32(Math.sqrt(f32(f32(max * max) + 1)));
}

/** √(σ² + 1), what `scale_model_input` divides by (float32, as diffusers). */
export function inputDivisor(sigma: number): number {
  return f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
}
