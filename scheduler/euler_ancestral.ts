/**
 * Euler ancestral ("Euler a"; k-diffusion's `sample_euler_ancestral`, Karras et al. 2022) as
 * diffusers' `EulerAncestralDiscreteScheduler`: each step goes deterministically down to
 * σ_down and adds fresh noise of size σ_up, with σ_down² + σ_up² = σ_{i+1}² and
 * σ_up = σ_{i+1}·√(σ_i² − σ_{i+1}²)/σ_i (the DDPM posterior's variance, in σ units).
 *
 * The noise must come from the same torch-compatible generator as the initial latents (the
 * pipeline's `randn`) for a seed to give diffusers' image; it is drawn at every step, the last
 * included (σ_up = 0 there), so the generator advances as torch's does.
 *
 * @module
 */

import { requireOneOf, type SchedulerConfig } from "./config.ts";
import { DiscreteSigmaScheduler } from "./discrete_sigma.ts";
import { eulerUpdate, odeDerivative, predictX0VE } from "./euler.ts";
import { type NormalSource, normalSource } from "./noise.ts";
import { f32 } from "./numeric.ts";
import { checkSameLength, type SchedulerOptions } from "./scheduler.ts";
import type { SigmaScheduleOptions } from "./sigmas.ts";

/** `EulerAncestralDiscreteScheduler.__init__`'s defaults (diffusers). */
export const EULER_ANCESTRAL_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  prediction_type: "epsilon",
  timestep_spacing: "linspace",
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

/** A complete Euler a config. */
export type EulerAncestralConfig = SchedulerConfig & typeof EULER_ANCESTRAL_DEFAULTS;

/** σ_up and σ_down of an ancestral step from σ_from to σ_to. */
export function ancestralSigmas(sigmaFrom: number, sigmaTo: number): { up: number; down: number } {
  const up = Math.sqrt(sigmaTo ** 2 * (sigmaFrom ** 2 - sigmaTo ** 2) / sigmaFrom ** 2);
  const down = Math.sqrt(sigmaTo ** 2 - up ** 2);
  return { up, down };
}

/** Euler ancestral (stochastic). */
export class EulerAncestralScheduler extends DiscreteSigmaScheduler<EulerAncestralConfig> {
  readonly name = "euler-a";
  readonly #noise: NormalSource;

  /**
   * `opts.randn` (preferred) or `opts.rng` supplies the noise; without either a fixed-seed
   * fallback is used, reproducible but not torch's stream.
   */
  constructor(config: EulerAncestralConfig, opts: SchedulerOptions = {}) {
    super(config);
    requireOneOf(this.name, config, "prediction_type", ["epsilon"]);
    requireOneOf(this.name, config, "rescale_betas_zero_snr", [false]);
    this.#noise = normalSource(opts);
  }

  protected sigmaOptions(): SigmaScheduleOptions {
    return { finalSigma: 0 };
  }

  step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer> {
    const s = this.need();
    checkSameLength(this.name, "eps and x", eps, x);
    const i = this.index.current(this.name, s.timesteps, t, "throw");
    const sigma = s.sigmas[i];
    const { up, down } = ancestralSigmas(sigma, s.sigmas[i + 1]);
    const x0 = predictX0VE(x, eps, sigma);
    const prev = eulerUpdate(x, odeDerivative(x, x0, sigma), f32(down - sigma));
    const z = this.#noise(prev.length);
    prev.forEach((v, k) => prev[k] = v + z[k] * up);
    this.index.advance();
    return prev;
  }
}
