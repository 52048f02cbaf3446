/**
 * Euler (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models",
 * arXiv 2206.00364, Algorithm 2 without churn) as diffusers' `EulerDiscreteScheduler`: in the
 * variance-exploding view x = x₀ + σ·ε, one Euler step of the probability-flow ODE
 * dx/dσ = (x − x̂₀)/σ from σ_i to σ_{i+1}.
 *
 * @module
 */

import { alphaBars, betaSchedule } from "./betas.ts";
import { f32 } from "./numeric.ts";
import { requireOneOf, type SchedulerConfig } from "./config.ts";
import { diffuseVE } from "./forward.ts";
import { checkSameLength, checkStepCount, notSetError, type Scheduler } from "./scheduler.ts";
import {
  discreteSigmaSchedule,
  initNoiseSigmaOf,
  inputDivisor,
  type SigmaSchedule,
  trainSigmas,
} from "./sigmas.ts";
import { spacedTimesteps } from "./spacing.ts";
import { indexForTimestep, StepIndex } from "./step_index.ts";

/** `EulerDiscreteScheduler.__init__`'s defaults (diffusers). */
export const EULER_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  prediction_type: "epsilon",
  interpolation_type: "linear",
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  sigma_min: null as number | null,
  sigma_max: null as number | null,
  timestep_spacing: "linspace",
  timestep_type: "discrete",
  steps_offset: 0,
  rescale_betas_zero_snr: false,
  final_sigmas_type: "zero",
};

/** A complete Euler config. */
export type EulerConfig = SchedulerConfig & typeof EULER_DEFAULTS;

/** x̂₀ = x − σ·ε: the clean latent the noise prediction implies at noise level σ. */
export function predictX0VE(
  x: Float32Array,
  eps: Float32Array,
  sigma: number,
): Float32Array<ArrayBuffer> {
  return x.map((v, i) => v - sigma * eps[i]);
}

/** d = (x − x̂₀)/σ: the probability-flow ODE's derivative dx/dσ. */
export function odeDerivative(
  x: Float32Array,
  x0: Float32Array,
  sigma: number,
): Float32Array<ArrayBuffer> {
  return x.map((v, i) => (v - x0[i]) / sigma);
}

/** x + d·Δσ: an Euler step. */
export function eulerUpdate(
  x: Float32Array,
  d: Float32Array,
  dSigma: number,
): Float32Array<ArrayBuffer> {
  return x.map((v, i) => v + d[i] * dSigma);
}

/** Divides `x` by √(σ²+1) (the UNet sees unit-variance input). */
export function scaleBySigma(x: Float32Array, sigma: number): Float32Array<ArrayBuffer> {
  const divisor = inputDivisor(sigma);
  return x.map((v) => v / divisor);
}

/** Euler (deterministic). */
export class EulerScheduler implements Scheduler {
  readonly name = "euler";
  readonly displayName = "Euler";
  readonly #config: EulerConfig;
  readonly #trainSigma: Float32Array;
  #schedule: SigmaSchedule | null = null;
  readonly #index = new StepIndex();

  constructor(config: EulerConfig) {
    requireOneOf(this.name, config, "prediction_type", ["epsilon"]);
    requireOneOf(this.name, config, "interpolation_type", ["linear"]);
    requireOneOf(this.name, config, "timestep_type", ["discrete"]);
    requireOneOf(this.name, config, "final_sigmas_type", ["zero", "sigma_min"]);
    requireOneOf(this.name, config, "use_exponential_sigmas", [false]);
    requireOneOf(this.name, config, "use_beta_sigmas", [false]);
    requireOneOf(this.name, config, "rescale_betas_zero_snr", [false]);
    this.#config = config;
    this.#trainSigma = trainSigmas(alphaBars(betaSchedule(config)));
  }

  setTimesteps(n: number): void {
    const c = this.#config;
    checkStepCount(this.name, n, c.num_train_timesteps);
    const timesteps = spacedTimesteps(
      c.timestep_spacing,
      n,
      c.num_train_timesteps,
      c.steps_offset,
      "f32",
    );
    this.#schedule = discreteSigmaSchedule(timesteps, this.#trainSigma, {
      karras: c.use_karras_sigmas ? { sigmaMin: c.sigma_min, sigmaMax: c.sigma_max } : undefined,
      finalSigma: c.final_sigmas_type === "sigma_min" ? this.#trainSigma[0] : 0,
    });
    this.#index.reset();
  }

  get timesteps(): number[] {
    return [...(this.#schedule?.timesteps ?? [])];
  }

  get sigmas(): number[] {
    return [...(this.#schedule?.sigmas ?? [])];
  }

  get initNoiseSigma(): number {
    return initNoiseSigmaOf(
      this.#schedule?.sigmas ?? this.#trainSigma,
      this.#config.timestep_spacing,
    );
  }

  scaleModelInput(x: Float32Array, t: number): Float32Array<ArrayBuffer> {
    const s = this.#need();
    return scaleBySigma(x, s.sigmas[this.#index.current(this.name, s.timesteps, t, "throw")]);
  }

  step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer> {
    const s = this.#need();
    checkSameLength(this.name, "eps and x", eps, x);
    const i = this.#index.current(this.name, s.timesteps, t, "throw");
    const sigma = s.sigmas[i];
    const x0 = predictX0VE(x, eps, sigma);
    const prev = eulerUpdate(x, odeDerivative(x, x0, sigma), f32(s.sigmas[i + 1] - sigma));
    this.#index.advance();
    return prev;
  }

  addNoise(x0: Float32Array, noise: Float32Array, t: number): Float32Array<ArrayBuffer> {
    const s = this.#need();
    checkSameLength(this.name, "x0 and noise", x0, noise);
    return diffuseVE(x0, noise, s.sigmas[indexForTimestep(this.name, s.timesteps, t, "throw")]);
  }

  #need(): SigmaSchedule {
    if (!this.#schedule) throw notSetError(this.name);
    return this.#schedule;
  }
}
