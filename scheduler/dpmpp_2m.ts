/**
 * DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
 * Probabilistic Models", arXiv 2211.01095, Algorithm 2) as diffusers'
 * `DPMSolverMultistepScheduler` with `algorithm_type="dpmsolver++"`, `solver_order=2`: in
 * λ = log(α/σ) (half the log-SNR), a second-order multistep update from the data predictions
 * x̂₀ of the current and previous step; "DPM++ 2M Karras" is the same with Karras-spaced σ.
 *
 * Here α_t = 1/√(σ²+1) and σ_t = σ·α_t are the variance-preserving coefficients of the
 * variance-exploding σ the schedule is kept in.
 *
 * @module
 */

import { alphaBars, betaSchedule } from "./betas.ts";
import { requireOneOf, type SchedulerConfig } from "./config.ts";
import { f32, roundHalfEven } from "./numeric.ts";
import { checkSameLength, checkStepCount, notSetError, type Scheduler } from "./scheduler.ts";
import { karrasSigmas, logSigmas, sigmaAt, sigmaToT, trainSigmas } from "./sigmas.ts";
import { dpmSolverTimesteps } from "./spacing.ts";
import { indexForTimestep, StepIndex } from "./step_index.ts";

/** `DPMSolverMultistepScheduler.__init__`'s defaults (diffusers), for the fields used here. */
export const DPM_SOLVER_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  solver_order: 2,
  prediction_type: "epsilon",
  thresholding: false,
  algorithm_type: "dpmsolver++",
  solver_type: "midpoint",
  lower_order_final: true,
  euler_at_final: false,
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  use_lu_lambdas: false,
  use_flow_sigmas: false,
  final_sigmas_type: "zero",
  lambda_min_clipped: -Infinity,
  variance_type: null as string | null,
  timestep_spacing: "linspace",
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

/** A complete DPM-Solver config. */
export type DpmSolverConfig = SchedulerConfig & typeof DPM_SOLVER_DEFAULTS;

/** The VP coefficients (α_t, σ_t) of a VE noise level σ: α_t = 1/√(σ²+1), σ_t = σ·α_t. */
export function alphaSigma(sigma: number): { alpha: number; sigma: number } {
  const alpha = 1 / Math.sqrt(sigma * sigma + 1);
  return { alpha, sigma: sigma * alpha };
}

/** λ = log α_t − log σ_t (+∞ at σ = 0). */
export function lambdaOf(sigma: number): number {
  const c = alphaSigma(sigma);
  return Math.log(c.alpha) - Math.log(c.sigma);
}

/** λ_t = log √ᾱ_t − log √(1−ᾱ_t) of a training timestep, each operation in float32 as torch. */
export function trainLambda(alphaBar: number): number {
  const logAlpha = f32(Math.log(f32(Math.sqrt(alphaBar))));
  const logSigma = f32(Math.log(f32(Math.sqrt(f32(1 - alphaBar)))));
  return f32(logAlpha - logSigma);
}

/** x̂₀ = (x − σ_t·ε)/α_t: the data prediction DPM-Solver++ integrates. */
export function dataPrediction(
  x: Float32Array,
  eps: Float32Array,
  sigma: number,
): Float32Array<ArrayBuffer> {
  const c = alphaSigma(sigma);
  return x.map((v, i) => (v - c.sigma * eps[i]) / c.alpha);
}

/**
 * DPM-Solver++ first order (= DDIM) from σ_s to σ_t, h = λ_t − λ_s:
 * x_t = (σ_t/σ_s)·x − α_t·(e^{−h} − 1)·x̂₀.
 */
export function firstOrderUpdate(
  x: Float32Array,
  x0: Float32Array,
  sigmaS: number,
  sigmaT: number,
): Float32Array<ArrayBuffer> {
  const s = alphaSigma(sigmaS), t = alphaSigma(sigmaT);
  const h = lambdaOf(sigmaT) - lambdaOf(sigmaS);
  const ratio = t.sigma / s.sigma, d0Coeff = t.alpha * (Math.exp(-h) - 1);
  return x.map((v, i) => ratio * v - d0Coeff * x0[i]);
}

/**
 * DPM-Solver++(2M) from σ_{s0} (current) to σ_t, with the previous step at σ_{s1}:
 * h = λ_t − λ_{s0}, r₀ = (λ_{s0} − λ_{s1})/h, D₀ = x̂₀(s0), D₁ = (x̂₀(s0) − x̂₀(s1))/r₀;
 * midpoint: x_t = (σ_t/σ_{s0})·x − α_t(e^{−h}−1)·D₀ − ½·α_t(e^{−h}−1)·D₁;
 * heun: … + α_t((e^{−h}−1)/h + 1)·D₁.
 */
export function secondOrderUpdate(
  x: Float32Array,
  x0Current: Float32Array,
  x0Previous: Float32Array,
  sigmaS1: number,
  sigmaS0: number,
  sigmaT: number,
  solverType: string,
): Float32Array<ArrayBuffer> {
  const s0 = alphaSigma(sigmaS0), t = alphaSigma(sigmaT);
  const lambdaT = lambdaOf(sigmaT), lambdaS0 = lambdaOf(sigmaS0), lambdaS1 = lambdaOf(sigmaS1);
  const h = lambdaT - lambdaS0, h0 = lambdaS0 - lambdaS1;
  const r0 = h0 / h;
  const ratio = t.sigma / s0.sigma;
  const d0Coeff = t.alpha * (Math.exp(-h) - 1);
  const d1Coeff = solverType === "heun"
    ? -t.alpha * ((Math.exp(-h) - 1) / h + 1) // enters as "+ α_t((e^{−h}−1)/h + 1)·D₁"
    : 0.5 * d0Coeff;
  return x.map((v, i) => {
    const d1 = (x0Current[i] - x0Previous[i]) / r0;
    return ratio * v - d0Coeff * x0Current[i] - d1Coeff * d1;
  });
}

/** DPM++ 2M, and DPM++ 2M Karras (`use_karras_sigmas`). */
export class DpmSolverMultistepScheduler implements Scheduler {
  readonly name: "dpm++2m" | "dpm++2m-karras";
  readonly initNoiseSigma = 1;
  readonly #config: DpmSolverConfig;
  readonly #alphaBar: Float32Array;
  readonly #trainSigma: Float32Array;
  #timesteps: number[] = [];
  #sigmas: number[] = [];
  readonly #index = new StepIndex();
  /** x̂₀ of the previous steps, oldest first (at most `solver_order`). */
  #x0History: Float32Array[] = [];
  /** Steps taken so far, capped at `solver_order` (diffusers' `lower_order_nums`). */
  #lowerOrderNums = 0;

  constructor(config: DpmSolverConfig) {
    this.name = config.use_karras_sigmas ? "dpm++2m-karras" : "dpm++2m";
    requireOneOf(this.name, config, "algorithm_type", ["dpmsolver++"]);
    requireOneOf(this.name, config, "solver_order", [1, 2]);
    requireOneOf(this.name, config, "solver_type", ["midpoint", "heun"]);
    requireOneOf(this.name, config, "prediction_type", ["epsilon"]);
    requireOneOf(this.name, config, "final_sigmas_type", ["zero", "sigma_min"]);
    requireOneOf(this.name, config, "thresholding", [false]);
    requireOneOf(this.name, config, "variance_type", [null]);
    requireOneOf(this.name, config, "use_exponential_sigmas", [false]);
    requireOneOf(this.name, config, "use_beta_sigmas", [false]);
    requireOneOf(this.name, config, "use_lu_lambdas", [false]);
    requireOneOf(this.name, config, "use_flow_sigmas", [false]);
    requireOneOf(this.name, config, "rescale_betas_zero_snr", [false]);
    this.#config = config;
    this.#alphaBar = alphaBars(betaSchedule(config));
    this.#trainSigma = trainSigmas(this.#alphaBar);
  }

  /**
   * The last usable timestep + 1: T minus the timesteps whose λ_t (float32, as diffusers) is
   * below `lambda_min_clipped` (`searchsorted` over λ from t = T−1 down).
   */
  #lastTimestep(): number {
    const clip = this.#config.lambda_min_clipped;
    let clipped = 0;
    for (let t = this.#alphaBar.length - 1; t >= 0; t--) {
      if (trainLambda(this.#alphaBar[t]) < clip) clipped++;
      else break;
    }
    return this.#config.num_train_timesteps - clipped;
  }

  setTimesteps(n: number): void {
    const c = this.#config;
    const T = c.num_train_timesteps;
    checkStepCount(this.name, n, T);
    let timesteps = dpmSolverTimesteps(
      c.timestep_spacing,
      n,
      T,
      this.#lastTimestep(),
      c.steps_offset,
    );
    let sigmas: number[];
    let sigmaLast: number;
    if (c.use_karras_sigmas) {
      sigmas = karrasSigmas(this.#trainSigma[0], this.#trainSigma[T - 1], n);
      const logSigma = logSigmas(this.#trainSigma);
      timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, logSigma)));
      sigmaLast = c.final_sigmas_type === "sigma_min" ? sigmas[sigmas.length - 1] : 0;
    } else {
      sigmas = timesteps.map((t) => sigmaAt(t, this.#trainSigma));
      sigmaLast = c.final_sigmas_type === "sigma_min" ? this.#trainSigma[0] : 0;
    }
    this.#timesteps = timesteps;
    this.#sigmas = [...sigmas, sigmaLast].map(f32);
    this.#index.reset();
    this.#x0History = [];
    this.#lowerOrderNums = 0;
  }

  get timesteps(): number[] {
    return [...this.#timesteps];
  }

  get sigmas(): number[] {
    return [...this.#sigmas];
  }

  scaleModelInput(x: Float32Array, _t: number): Float32Array<ArrayBuffer> {
    return x.slice();
  }

  step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer> {
    if (this.#timesteps.length === 0) throw notSetError(this.name);
    checkSameLength(this.name, "eps and x", eps, x);
    const c = this.#config;
    const n = this.#timesteps.length;
    const i = this.#index.current(this.name, this.#timesteps, t, "last");
    // Lower the order at the end for stability (diffusers' lower_order_final).
    const lowerOrderFinal = i === n - 1 &&
      (c.euler_at_final || (c.lower_order_final && n < 15) || c.final_sigmas_type === "zero");

    const x0 = dataPrediction(x, eps, this.#sigmas[i]);
    this.#x0History = [...this.#x0History, x0].slice(-c.solver_order);
    const [sigmaS1, sigmaS0, sigmaT] = [this.#sigmas[i - 1], this.#sigmas[i], this.#sigmas[i + 1]];
    const prev = c.solver_order === 1 || this.#lowerOrderNums < 1 || lowerOrderFinal
      ? firstOrderUpdate(x, x0, sigmaS0, sigmaT)
      : secondOrderUpdate(x, x0, this.#x0History[0], sigmaS1, sigmaS0, sigmaT, c.solver_type);
    if (this.#lowerOrderNums < c.solver_order) this.#lowerOrderNums++;
    this.#index.advance();
    return prev;
  }

  addNoise(x0: Float32Array, noise: Float32Array, t: number): Float32Array<ArrayBuffer> {
    if (this.#timesteps.length === 0) throw notSetError(this.name);
    checkSameLength(this.name, "x0 and noise", x0, noise);
    const { alpha, sigma } = alphaSigma(
      this.#sigmas[indexForTimestep(this.name, this.#timesteps, t, "last")],
    );
    return x0.map((v, i) => alpha * v + sigma * noise[i]);
  }
}
