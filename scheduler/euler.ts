/**
 * Euler (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models",
 * arXiv 2206.00364, Algorithm 2 without churn) as diffusers' `EulerDiscreteScheduler`: in the
 * variance-exploding view x = x₀ + σ·ε, one Euler step of the probability-flow ODE
 * dx/dσ = (x − x̂₀)/σ from σ_i to σ_{i+1}.
 *
 * @module
 */

import { f32 } from "./numeric.ts";
import { requireOneOf, type SchedulerConfig } from "./config.ts";
import { DiscreteSigmaScheduler } from "./discrete_sigma.ts";
import { checkSameLength } from "./scheduler.ts";
import type { SigmaScheduleOptions } from "./sigmas.ts";

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

/** Euler (deterministic). */
export class EulerScheduler extends DiscreteSigmaScheduler<EulerConfig> {
  readonly name = "euler";

  constructor(config: EulerConfig) {
    super(config);
    requireOneOf(this.name, config, "prediction_type", ["epsilon"]);
    requireOneOf(this.name, config, "interpolation_type", ["linear"]);
    requireOneOf(this.name, config, "timestep_type", ["discrete"]);
    requireOneOf(this.name, config, "final_sigmas_type", ["zero", "sigma_min"]);
    requireOneOf(this.name, config, "use_exponential_sigmas", [false]);
    requireOneOf(this.name, config, "use_beta_sigmas", [false]);
    requireOneOf(this.name, config, "rescale_betas_zero_snr", [false]);
  }

  protected sigmaOptions(): SigmaScheduleOptions {
    const c = this.config;
    return {
      karras: c.use_karras_sigmas ? { sigmaMin: c.sigma_min, sigmaMax: c.sigma_max } : undefined,
      finalSigma: c.final_sigmas_type === "sigma_min" ? this.trainSigma[0] : 0,
    };
  }

  step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer> {
    const s = this.need();
    checkSameLength(this.name, "eps and x", eps, x);
    const i = this.index.current(this.name, s.timesteps, t, "throw");
    const sigma = s.sigmas[i];
    const x0 = predictX0VE(x, eps, sigma);
    const prev = eulerUpdate(x, odeDerivative(x, x0, sigma), f32(s.sigmas[i + 1] - sigma));
    this.index.advance();
    return prev;
  }
}
