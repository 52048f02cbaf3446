/**
 * PNDM in its PLMS form (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on
 * Manifolds", arXiv 2202.09778) as diffusers' `PNDMScheduler` with `skip_prk_steps` — Stable
 * Diffusion's default sampler. A linear multistep method over the noise predictions ε (Adams–
 * Bashforth up to 4th order) feeding the transfer φ of eq. 9. Without Runge–Kutta warm-up, the
 * first step is taken twice: a plain step from t₀, then the model is called again at the repeated
 * timestep and that step is redone from x_{t₀} with the mean of both predictions (a 2nd-order
 * start), which is why `timesteps` holds one more entry than steps.
 *
 * @module
 */

import { AlphaBarScheduler } from "./alpha_bar.ts";
import { requireOneOf, type SchedulerConfig } from "./config.ts";
import { checkIntegerTimestep } from "./scheduler.ts";

/** `PNDMScheduler.__init__`'s defaults (diffusers). */
export const PNDM_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  skip_prk_steps: false,
  set_alpha_to_one: false,
  prediction_type: "epsilon",
  timestep_spacing: "leading",
  steps_offset: 0,
};

/** A complete PNDM config. */
export type PndmConfig = SchedulerConfig & typeof PNDM_DEFAULTS;

/**
 * The transfer φ(x_t, ε, t → t') of PNDM eq. 9:
 * x_{t'} = √(ᾱ_{t'}/ᾱ_t)·x_t − (ᾱ_{t'} − ᾱ_t)·ε / (ᾱ_t·√(1−ᾱ_{t'}) + √(ᾱ_t·(1−ᾱ_t)·ᾱ_{t'})).
 */
export function pndmTransfer(
  x: Float32Array,
  eps: Float32Array,
  alphaBar: number,
  alphaBarPrev: number,
): Float32Array<ArrayBuffer> {
  const sampleCoeff = Math.sqrt(alphaBarPrev / alphaBar);
  const epsDenominator = alphaBar * Math.sqrt(1 - alphaBarPrev) +
    Math.sqrt(alphaBar * (1 - alphaBar) * alphaBarPrev);
  const epsCoeff = (alphaBarPrev - alphaBar) / epsDenominator;
  return x.map((v, i) => sampleCoeff * v - epsCoeff * eps[i]);
}

/**
 * The Adams–Bashforth combination of the last noise predictions (newest first): ε, (3ε₀−ε₁)/2,
 * (23ε₀−16ε₁+5ε₂)/12, (55ε₀−59ε₁+37ε₂−9ε₃)/24.
 */
export function adamsBashforth(history: Float32Array[]): Float32Array<ArrayBuffer> {
  const e = history.slice().reverse(); // e[0] newest
  switch (e.length) {
    case 1:
      return e[0].slice();
    case 2:
      return e[0].map((v, i) => (3 * v - e[1][i]) / 2);
    case 3:
      return e[0].map((v, i) => (23 * v - 16 * e[1][i] + 5 * e[2][i]) / 12);
    default:
      return e[0].map((v, i) => (55 * v - 59 * e[1][i] + 37 * e[2][i] - 9 * e[3][i]) / 24);
  }
}

/** PNDM (PLMS; `skip_prk_steps` must be true). */
export class PndmScheduler extends AlphaBarScheduler<PndmConfig> {
  readonly name = "pndm";
  /** Noise predictions of past steps, oldest first (diffusers' `ets`). */
  #history: Float32Array[] = [];
  /** Model calls so far this run. */
  #counter = 0;
  /** x at the first timestep, kept for the repeated first step. */
  #firstSample: Float32Array | null = null;

  constructor(config: PndmConfig) {
    super(config);
    requireOneOf(this.name, config, "skip_prk_steps", [true]);
    requireOneOf(this.name, config, "prediction_type", ["epsilon"]);
  }

  setTimesteps(n: number): void {
    const ts = this.spaced(n).reverse(); // ascending
    // PLMS order: all but the last, the second-to-last again, then the last — reversed.
    this.visits = [...ts.slice(0, -1), ...ts.slice(-2, -1), ...ts.slice(-1)].reverse();
    this.#history = [];
    this.#counter = 0;
    this.#firstSample = null;
  }

  step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer> {
    const stride = this.checkStep(eps, t, x);

    let from = t, to = t - stride, sample = x, epsCombined: Float32Array;
    if (this.#counter === 1) {
      // The repeated first timestep: redo the step from x_{t₀} (t₀ = t + stride) to t.
      from = t + stride;
      to = t;
      if (this.#firstSample === null || this.#history.length !== 1) {
        throw new Error(`scheduler "pndm": step out of order (repeated first step)`);
      }
      epsCombined = eps.map((v, i) => (v + this.#history[0][i]) / 2);
      sample = this.#firstSample;
      this.#firstSample = null;
    } else {
      this.#history = [...this.#history.slice(-3), eps.slice()];
      if (this.#counter === 0) this.#firstSample = x.slice();
      epsCombined = adamsBashforth(this.#history);
    }
    checkIntegerTimestep(this.name, from, this.config.num_train_timesteps);
    const prev = pndmTransfer(sample, epsCombined, this.alphaBar[from], this.alphaBarAt(to));
    this.#counter++;
    return prev;
  }
}
