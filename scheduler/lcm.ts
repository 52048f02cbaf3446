/**
 * Latent Consistency Model sampling (Luo et al. 2023, "Latent Consistency Models: Synthesizing
 * High-Resolution Images with Few-Step Inference", arXiv 2310.04378, Algorithm 1 "Multistep
 * Latent Consistency Sampling") as diffusers' `LCMScheduler` — the sampler of LCM and LCM-LoRA
 * models, 2 to 8 steps. Each step evaluates the consistency function in the parameterization of
 * Song et al. 2023 ("Consistency Models", arXiv 2303.01469), f(x_t, t) = c_skip(t)·x_t +
 * c_out(t)·x̂₀ with x̂₀ the clean latent the noise prediction implies — the boundary condition
 * f(x, 0) = x holds because c_skip(0) = 1, c_out(0) = 0 —, whose value is the step's `denoised`
 * sample, then diffuses it forward to the next timestep with fresh noise:
 * x_{t'} = √ᾱ_{t'}·denoised + √(1−ᾱ_{t'})·z. The last step returns `denoised`.
 *
 * The timesteps are taken from the `original_inference_steps`-long schedule the model was
 * distilled on (50: 999, 979, …, 19), evenly by index.
 *
 * The noise z must come from the same torch-compatible generator as the initial latents (the
 * pipeline's `randn`) for a seed to give diffusers' image; as diffusers, nothing is drawn at the
 * last step.
 *
 * @module
 */

import { UserError } from "../src/errors.ts";
import { AlphaBarScheduler, diffuseVP } from "./alpha_bar.ts";
import { requireOneOf, type SchedulerConfig } from "./config.ts";
import { predictX0 } from "./ddim.ts";
import { type NormalSource, normalSource } from "./noise.ts";
import { checkStepCount, type SchedulerOptions } from "./scheduler.ts";
import { StepIndex } from "./step_index.ts";

/** `LCMScheduler.__init__`'s defaults (diffusers). */
export const LCM_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  trained_betas: null as number[] | null,
  original_inference_steps: 50,
  clip_sample: false,
  clip_sample_range: 1.0,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: "epsilon",
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  timestep_spacing: "leading",
  timestep_scaling: 10.0,
  rescale_betas_zero_snr: false,
};

/** A complete LCM config. */
export type LcmConfig = SchedulerConfig & typeof LCM_DEFAULTS;

/** σ_data of the consistency-model parameterization (Song et al. 2023). */
const SIGMA_DATA = 0.5;

/**
 * The boundary-condition scalings at timestep t, with t scaled by `timestepScaling`:
 * c_skip = σ_data² / ((s·t)² + σ_data²), c_out = s·t / √((s·t)² + σ_data²)
 * (diffusers' `get_scalings_for_boundary_condition_discrete`).
 */
export function boundaryScalings(
  t: number,
  timestepScaling: number,
): { cSkip: number; cOut: number } {
  const scaled = t * timestepScaling;
  const cSkip = SIGMA_DATA ** 2 / (scaled ** 2 + SIGMA_DATA ** 2);
  const cOut = scaled / Math.sqrt(scaled ** 2 + SIGMA_DATA ** 2);
  return { cSkip, cOut };
}

/** f(x_t, t) = c_skip·x_t + c_out·x̂₀: the consistency function's value, LCM's `denoised`. */
export function consistencyDenoised(
  x: Float32Array,
  x0: Float32Array,
  cSkip: number,
  cOut: number,
): Float32Array<ArrayBuffer> {
  return x0.map((v, i) => cOut * v + cSkip * x[i]);
}

/**
 * The timesteps of `n` LCM steps: the distillation schedule
 * τ_j = j·⌊T/original_inference_steps⌋ − 1 (j = 1 … original_inference_steps), descending, taken
 * at indices ⌊i·len/n⌋ (`np.linspace(0, len, n, endpoint=False)`, floored).
 */
export function lcmTimesteps(n: number, trainTimesteps: number, originalSteps: number): number[] {
  const k = Math.floor(trainTimesteps / originalSteps);
  const origin = Array.from({ length: originalSteps }, (_, j) => (j + 1) * k - 1).reverse();
  const stride = origin.length / n;
  return Array.from({ length: n }, (_, i) => origin[Math.floor(i * stride)]);
}

/** LCM (stochastic between steps: fresh noise is injected after every step but the last). */
export class LcmScheduler extends AlphaBarScheduler<LcmConfig> {
  readonly name = "lcm";
  readonly #noise: NormalSource;
  readonly #index = new StepIndex();

  /**
   * `opts.randn` (preferred) or `opts.rng` supplies the injected noise; without either a
   * fixed-seed fallback is used, reproducible but not torch's stream.
   */
  constructor(config: LcmConfig, opts: SchedulerOptions = {}) {
    super(config);
    requireOneOf(this.name, config, "prediction_type", ["epsilon"]);
    requireOneOf(this.name, config, "clip_sample", [false]);
    requireOneOf(this.name, config, "thresholding", [false]);
    requireOneOf(this.name, config, "rescale_betas_zero_snr", [false]);
    const original = config.original_inference_steps;
    if (!Number.isInteger(original) || original < 1 || original > config.num_train_timesteps) {
      throw new Error(
        `scheduler "lcm": original_inference_steps must be an integer from 1 to ` +
          `${config.num_train_timesteps} (num_train_timesteps), got ${original}`,
      );
    }
    this.#noise = normalSource(opts);
  }

  setTimesteps(n: number): void {
    const { num_train_timesteps: T, original_inference_steps: original } = this.config;
    checkStepCount(this.name, n, T);
    if (n > original) {
      throw new UserError(
        `scheduler "lcm" takes at most ${original} steps (its timesteps are a subset of the ` +
          `${original}-step schedule the model was distilled on), got ${n}; use 2 to 8 steps`,
        { kind: "usage" },
      );
    }
    this.visits = lcmTimesteps(n, T, original);
    this.steps = n;
    this.#index.reset();
  }

  step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer> {
    this.checkStep(eps, t, x);
    const i = this.#index.current(this.name, this.visits, t, "throw");
    const last = i === this.visits.length - 1;
    const alphaBar = this.alphaBar[t];

    const x0 = predictX0(x, eps, alphaBar);
    const { cSkip, cOut } = boundaryScalings(t, this.config.timestep_scaling);
    const denoised = consistencyDenoised(x, x0, cSkip, cOut);
    this.#index.advance();
    if (last) return denoised;

    // Forward to the next timestep: x_{t'} = √ᾱ_{t'}·denoised + √(1−ᾱ_{t'})·z.
    return diffuseVP(denoised, this.#noise(denoised.length), this.alphaBarAt(this.visits[i + 1]));
  }
}
