/**
 * LMS: the linear multistep method of k-diffusion (`sample_lms`, Karras et al. 2022's ODE) as
 * diffusers' `LMSDiscreteScheduler`. With the ODE derivatives d_i, …, d_{i−k+1} of the last
 * k ≤ 4 steps, x_{i+1} = x_i + Σ_j c_j·d_{i−j}, where c_j integrates the Lagrange basis
 * polynomial of node σ_{i−j} over [σ_i, σ_{i+1}]. diffusers integrates numerically
 * (`scipy.integrate.quad`); the integrand is a polynomial of degree ≤ 3, integrated here exactly.
 *
 * @module
 */

import { requireOneOf, type SchedulerConfig } from "./config.ts";
import { DiscreteSigmaScheduler } from "./discrete_sigma.ts";
import { odeDerivative, predictX0VE } from "./euler.ts";
import { checkSameLength } from "./scheduler.ts";
import type { SigmaScheduleOptions } from "./sigmas.ts";

/** `LMSDiscreteScheduler.__init__`'s defaults (diffusers). */
export const LMS_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  prediction_type: "epsilon",
  timestep_spacing: "linspace",
  steps_offset: 0,
};

/** A complete LMS config. */
export type LmsConfig = SchedulerConfig & typeof LMS_DEFAULTS;

/** The highest order LMS uses (diffusers' default `order=4`). */
const LMS_ORDER = 4;

/**
 * ∫_a^b ℓ_j(τ) dτ for the Lagrange basis polynomial ℓ_j(τ) = ∏_{k≠j} (τ − nodes[k])/(nodes[j] − nodes[k]).
 */
export function lagrangeBasisIntegral(nodes: number[], j: number, a: number, b: number): number {
  // Expand ∏_{k≠j} (τ − nodes[k]) into coefficients, lowest degree first.
  let poly = [1];
  let denominator = 1;
  nodes.forEach((node, k) => {
    if (k === j) return;
    const next = new Array<number>(poly.length + 1).fill(0);
    poly.forEach((c, m) => {
      next[m + 1] += c; // τ·c τ^m
      next[m] -= node * c; // −node·c τ^m
    });
    poly = next;
    denominator *= nodes[j] - node;
  });
  const integral = poly.reduce((sum, c, m) => sum + c * (b ** (m + 1) - a ** (m + 1)) / (m + 1), 0);
  return integral / denominator;
}

/**
 * The LMS coefficients c_0 … c_{order−1} of step `i` over the σ table: c_j weights d_{i−j}.
 */
export function lmsCoefficients(sigmas: readonly number[], i: number, order: number): number[] {
  const nodes = Array.from({ length: order }, (_, k) => sigmas[i - k]);
  return nodes.map((_, j) => lagrangeBasisIntegral(nodes, j, sigmas[i], sigmas[i + 1]));
}

/** LMS (deterministic, up to 4th order). */
export class LmsScheduler extends DiscreteSigmaScheduler<LmsConfig> {
  readonly name = "lms";
  /** ODE derivatives of the last steps, oldest first. */
  #derivatives: Float32Array[] = [];

  constructor(config: LmsConfig) {
    super(config);
    requireOneOf(this.name, config, "prediction_type", ["epsilon"]);
    requireOneOf(this.name, config, "use_exponential_sigmas", [false]);
    requireOneOf(this.name, config, "use_beta_sigmas", [false]);
  }

  protected sigmaOptions(): SigmaScheduleOptions {
    return {
      karras: this.config.use_karras_sigmas ? { sigmaMin: null, sigmaMax: null } : undefined,
      finalSigma: 0,
    };
  }

  protected override resetHistory(): void {
    this.#derivatives = [];
  }

  step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer> {
    const s = this.need();
    checkSameLength(this.name, "eps and x", eps, x);
    const i = this.index.current(this.name, s.timesteps, t, "throw");
    const sigma = s.sigmas[i];
    const x0 = predictX0VE(x, eps, sigma);
    this.#derivatives = [...this.#derivatives.slice(-(LMS_ORDER - 1)), odeDerivative(x, x0, sigma)];
    const order = Math.min(i + 1, LMS_ORDER);
    const coeffs = lmsCoefficients(s.sigmas, i, order);
    const d = this.#derivatives.slice().reverse(); // d[j] = d_{i−j}
    const prev = x.map((v, k) => {
      let sum = v;
      for (let j = 0; j < order; j++) sum += coeffs[j] * d[j][k];
      return sum;
    });
    this.index.advance();
    return prev;
  }
}
