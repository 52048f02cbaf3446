/**
 * What Euler, Euler a and LMS share — diffusers' discrete-σ schedulers (k-diffusion's view
 * x = x₀ + σ·ε): σ of the training schedule, the spaced timesteps and their σ table, the input
 * scaling x/√(σ²+1), the step index and the forward process for image-to-image. Subclasses add
 * their step rule and, where they have one, history.
 *
 * @module
 */

import { alphaBars, type BetaConfig, betaSchedule } from "./betas.ts";
import type { SchedulerConfig } from "./config.ts";
import { checkSameLength, checkStepCount, notSetError, type Scheduler } from "./scheduler.ts";
import {
  discreteSigmaSchedule,
  initNoiseSigmaOf,
  inputDivisor,
  type SigmaSchedule,
  type SigmaScheduleOptions,
  trainSigmas,
} from "./sigmas.ts";
import { spacedTimesteps } from "./spacing.ts";
import { indexForTimestep, StepIndex } from "./step_index.ts";

/** The config fields every discrete-σ scheduler reads. */
export type DiscreteSigmaConfig = SchedulerConfig & BetaConfig & {
  timestep_spacing: string;
  steps_offset: number;
};

/** Divides `x` by √(σ²+1) (the UNet sees unit-variance input). */
export function scaleBySigma(x: Float32Array, sigma: number): Float32Array<ArrayBuffer> {
  const divisor = inputDivisor(sigma);
  return x.map((v) => v / divisor);
}

/**
 * The forward process of the variance-exploding view (image-to-image starts from there):
 * x = x₀ + σ·ε.
 */
function diffuseVE(
  x0: Float32Array,
  noise: Float32Array,
  sigma: number,
): Float32Array<ArrayBuffer> {
  return x0.map((v, i) => v + sigma * noise[i]);
}

/** The shared half of Euler, Euler a and LMS. */
export abstract class DiscreteSigmaScheduler<C extends DiscreteSigmaConfig> implements Scheduler {
  abstract readonly name: string;
  /** σ of every training timestep. */
  protected readonly trainSigma: Float32Array;
  /** The σ table of the current `setTimesteps`. */
  protected schedule: SigmaSchedule | null = null;
  /** Which step of the table comes next. */
  protected readonly index = new StepIndex();

  constructor(protected readonly config: C) {
    this.trainSigma = trainSigmas(alphaBars(betaSchedule(config)));
  }

  /** How this scheduler spaces σ (Karras or not, the final σ). */
  protected abstract sigmaOptions(): SigmaScheduleOptions;

  /** Clears per-run history (multistep schedulers); called by {@linkcode setTimesteps}. */
  protected resetHistory(): void {}

  setTimesteps(n: number): void {
    const c = this.config;
    checkStepCount(this.name, n, c.num_train_timesteps);
    const timesteps = spacedTimesteps(
      c.timestep_spacing,
      n,
      c.num_train_timesteps,
      c.steps_offset,
      "f32",
    );
    this.schedule = discreteSigmaSchedule(timesteps, this.trainSigma, this.sigmaOptions());
    this.index.reset();
    this.resetHistory();
  }

  get timesteps(): number[] {
    return [...(this.schedule?.timesteps ?? [])];
  }

  get sigmas(): number[] {
    return [...(this.schedule?.sigmas ?? [])];
  }

  get initNoiseSigma(): number {
    return initNoiseSigmaOf(this.schedule?.sigmas ?? this.trainSigma, this.config.timestep_spacing);
  }

  scaleModelInput(x: Float32Array, t: number): Float32Array<ArrayBuffer> {
    const s = this.need();
    return scaleBySigma(x, s.sigmas[this.index.current(this.name, s.timesteps, t, "throw")]);
  }

  abstract step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer>;

  addNoise(x0: Float32Array, noise: Float32Array, t: number): Float32Array<ArrayBuffer> {
    const s = this.need();
    checkSameLength(this.name, "x0 and noise", x0, noise);
    return diffuseVE(x0, noise, s.sigmas[indexForTimestep(this.name, s.timesteps, t, "throw")]);
  }

  /** The current σ table; an error before `setTimesteps`. */
  protected need(): SigmaSchedule {
    if (!this.schedule) throw notSetError(this.name);
    return this.schedule;
  }
}
