/**
 * DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", arXiv 2010.02502) as
 * diffusers' `DDIMScheduler`: from the noise prediction ε at x_t, the x₀ prediction (eq. 12),
 * then x_{t−δ} = √ᾱ_{t−δ}·x̂₀ + √(1−ᾱ_{t−δ}−σ_t²)·ε + σ_t·z with σ_t = η·σ_t(1) (eq. 16);
 * η = 0 is deterministic.
 *
 * @module
 */

import { AlphaBarScheduler } from "./alpha_bar.ts";
import { requireOneOf, type SchedulerConfig } from "./config.ts";
import { type NormalSource, normalSource } from "./noise.ts";
import type { SchedulerOptions } from "./scheduler.ts";

/** `DDIMScheduler.__init__`'s defaults (diffusers). */
export const DDIM_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  clip_sample: true,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: "epsilon",
  thresholding: false,
  clip_sample_range: 1.0,
  timestep_spacing: "leading",
  rescale_betas_zero_snr: false,
};

/** A complete DDIM config. */
export type DdimConfig = SchedulerConfig & typeof DDIM_DEFAULTS;

/** x̂₀ = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t: the clean latent the noise prediction implies (eq. 12). */
export function predictX0(
  x: Float32Array,
  eps: Float32Array,
  alphaBar: number,
): Float32Array<ArrayBuffer> {
  const sqrtOneMinus = Math.sqrt(1 - alphaBar), sqrtAlphaBar = Math.sqrt(alphaBar);
  return x.map((v, i) => (v - sqrtOneMinus * eps[i]) / sqrtAlphaBar);
}

/** σ_t(η = 1) = √((1−ᾱ_prev)/(1−ᾱ_t)) · √(1 − ᾱ_t/ᾱ_prev) (eq. 16). */
export function ddimSigma(alphaBar: number, alphaBarPrev: number): number {
  const variance = (1 - alphaBarPrev) / (1 - alphaBar) * (1 - alphaBar / alphaBarPrev);
  return Math.sqrt(variance);
}

/** DDIM, with `eta` from the options (default 0). */
export class DdimScheduler extends AlphaBarScheduler<DdimConfig> {
  readonly name = "ddim";
  readonly #eta: number;
  readonly #noise: NormalSource;

  constructor(config: DdimConfig, opts: SchedulerOptions = {}) {
    super(config);
    requireOneOf(this.name, config, "prediction_type", ["epsilon"]);
    requireOneOf(this.name, config, "thresholding", [false]);
    requireOneOf(this.name, config, "rescale_betas_zero_snr", [false]);
    const eta = opts.eta ?? 0;
    if (!(eta >= 0 && Number.isFinite(eta))) {
      throw new Error(`scheduler "ddim": eta must be a number ≥ 0, got ${eta}`);
    }
    this.#eta = eta;
    this.#noise = normalSource(opts);
  }

  setTimesteps(n: number): void {
    this.visits = this.spaced(n);
  }

  step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer> {
    const stride = this.checkStep(eps, t, x);
    const alphaBar = this.alphaBar[t];
    const alphaBarPrev = this.alphaBarAt(t - stride);

    const x0 = predictX0(x, eps, alphaBar);
    if (this.config.clip_sample) {
      const r = this.config.clip_sample_range;
      x0.forEach((v, i) => x0[i] = Math.min(Math.max(v, -r), r));
    }
    const sigma = this.#eta * ddimSigma(alphaBar, alphaBarPrev);
    const sqrtAlphaBarPrev = Math.sqrt(alphaBarPrev);
    const direction = Math.sqrt(1 - alphaBarPrev - sigma * sigma); // "direction pointing to x_t"
    const prev = x0.map((v, i) => sqrtAlphaBarPrev * v + direction * eps[i]);
    if (this.#eta > 0) {
      const z = this.#noise(prev.length);
      prev.forEach((v, i) => prev[i] = v + sigma * z[i]);
    }
    return prev;
  }
}
