/**
 * DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", arXiv 2010.02502) as
 * diffusers' `DDIMScheduler`: from the noise prediction ε at x_t, the x₀ prediction (eq. 12),
 * then x_{t−δ} = √ᾱ_{t−δ}·x̂₀ + √(1−ᾱ_{t−δ}−σ_t²)·ε + σ_t·z with σ_t = η·σ_t(1) (eq. 16);
 * η = 0 is deterministic.
 *
 * @module
 */

import { alphaBars, betaSchedule } from "./betas.ts";
import { requireOneOf, type SchedulerConfig } from "./config.ts";
import { diffuseVP } from "./forward.ts";
import { type NormalSource, normalSource } from "./noise.ts";
import {
  checkIntegerTimestep,
  checkSameLength,
  checkStepCount,
  notSetError,
  type Scheduler,
  type SchedulerOptions,
} from "./scheduler.ts";
import { spacedTimesteps } from "./spacing.ts";

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
export class DdimScheduler implements Scheduler {
  readonly name = "ddim";
  readonly displayName = "DDIM";
  readonly initNoiseSigma = 1;
  readonly #config: DdimConfig;
  readonly #alphaBar: Float32Array;
  /** ᾱ "before" t = 0, used by the last step: 1 or ᾱ_0 (`set_alpha_to_one`). */
  readonly #finalAlphaBar: number;
  readonly #eta: number;
  readonly #noise: NormalSource;
  #timesteps: number[] = [];
  #steps = 0;

  constructor(config: DdimConfig, opts: SchedulerOptions = {}) {
    requireOneOf(this.name, config, "prediction_type", ["epsilon"]);
    requireOneOf(this.name, config, "thresholding", [false]);
    requireOneOf(this.name, config, "rescale_betas_zero_snr", [false]);
    const eta = opts.eta ?? 0;
    if (!(eta >= 0 && Number.isFinite(eta))) {
      throw new Error(`scheduler "ddim": eta must be a number ≥ 0, got ${eta}`);
    }
    this.#config = config;
    this.#alphaBar = alphaBars(betaSchedule(config));
    this.#finalAlphaBar = config.set_alpha_to_one ? 1 : this.#alphaBar[0];
    this.#eta = eta;
    this.#noise = normalSource(opts);
  }

  setTimesteps(n: number): void {
    const { num_train_timesteps: T, timestep_spacing, steps_offset } = this.#config;
    checkStepCount(this.name, n, T);
    this.#timesteps = spacedTimesteps(timestep_spacing, n, T, steps_offset, "int");
    this.#steps = n;
  }

  get timesteps(): number[] {
    return [...this.#timesteps];
  }

  scaleModelInput(x: Float32Array, _t: number): Float32Array<ArrayBuffer> {
    return x.slice();
  }

  step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer> {
    if (this.#steps === 0) throw notSetError(this.name);
    const T = this.#config.num_train_timesteps;
    checkIntegerTimestep(this.name, t, T);
    checkSameLength(this.name, "eps and x", eps, x);
    const prevT = t - Math.floor(T / this.#steps);
    const alphaBar = this.#alphaBar[t];
    const alphaBarPrev = prevT >= 0 ? this.#alphaBar[prevT] : this.#finalAlphaBar;

    const x0 = predictX0(x, eps, alphaBar);
    if (this.#config.clip_sample) {
      const r = this.#config.clip_sample_range;
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

  addNoise(x0: Float32Array, noise: Float32Array, t: number): Float32Array<ArrayBuffer> {
    checkIntegerTimestep(this.name, t, this.#config.num_train_timesteps);
    checkSameLength(this.name, "x0 and noise", x0, noise);
    return diffuseVP(x0, noise, this.#alphaBar[t]);
  }
}
