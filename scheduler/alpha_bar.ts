/**
 * What DDIM, PNDM and LCM share — diffusers' ᾱ-based (variance-preserving) schedulers: ᾱ of the
 * training schedule and the ᾱ "before" t = 0 (`set_alpha_to_one`), integer spaced timesteps and
 * their stride, the unscaled model input, the argument checks of a step and the forward process
 * for image-to-image. Subclasses add their timestep order and step rule.
 *
 * @module
 */

import { alphaBars, type BetaConfig, betaSchedule } from "./betas.ts";
import type { SchedulerConfig } from "./config.ts";
import {
  checkIntegerTimestep,
  checkSameLength,
  checkStepCount,
  notSetError,
  type Scheduler,
} from "./scheduler.ts";
import { spacedTimesteps } from "./spacing.ts";

/** The config fields every ᾱ scheduler reads. */
export type AlphaBarConfig = SchedulerConfig & BetaConfig & {
  timestep_spacing: string;
  steps_offset: number;
  set_alpha_to_one: boolean;
};

/**
 * The forward process q(x_t | x₀) of a variance-preserving scheduler (image-to-image starts from
 * there): x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε.
 */
export function diffuseVP(
  x0: Float32Array,
  noise: Float32Array,
  alphaBar: number,
): Float32Array<ArrayBuffer> {
  const a = Math.sqrt(alphaBar), s = Math.sqrt(1 - alphaBar);
  return x0.map((v, i) => a * v + s * noise[i]);
}

/** The shared half of DDIM, PNDM and LCM. */
export abstract class AlphaBarScheduler<C extends AlphaBarConfig> implements Scheduler {
  abstract readonly name: string;
  readonly initNoiseSigma = 1;
  /** ᾱ_t of every training timestep. */
  protected readonly alphaBar: Float32Array;
  /** ᾱ "before" t = 0, used by the last step: 1 or ᾱ_0 (`set_alpha_to_one`). */
  protected readonly finalAlphaBar: number;
  /** The timesteps of the current `setTimesteps`, in visiting order. */
  protected visits: number[] = [];
  /** Inference steps of the current `setTimesteps` (0: not set). */
  protected steps = 0;

  constructor(protected readonly config: C) {
    this.alphaBar = alphaBars(betaSchedule(config));
    this.finalAlphaBar = config.set_alpha_to_one ? 1 : this.alphaBar[0];
  }

  abstract setTimesteps(n: number): void;

  abstract step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer>;

  /** The `n` integer timesteps of the config's spacing, descending; records `n`. */
  protected spaced(n: number): number[] {
    const { num_train_timesteps: T, timestep_spacing, steps_offset } = this.config;
    checkStepCount(this.name, n, T);
    const ts = spacedTimesteps(timestep_spacing, n, T, steps_offset, "int");
    this.steps = n;
    return ts;
  }

  /** Checks a step's arguments; returns the timestep stride ⌊T / steps⌋. */
  protected checkStep(eps: Float32Array, t: number, x: Float32Array): number {
    if (this.steps === 0) throw notSetError(this.name);
    const T = this.config.num_train_timesteps;
    checkIntegerTimestep(this.name, t, T);
    checkSameLength(this.name, "eps and x", eps, x);
    return Math.floor(T / this.steps);
  }

  /** ᾱ at `t`, or the final ᾱ for t < 0 (the step past the last timestep). */
  protected alphaBarAt(t: number): number {
    return t >= 0 ? this.alphaBar[t] : this.finalAlphaBar;
  }

  get timesteps(): number[] {
    return [...this.visits];
  }

  scaleModelInput(x: Float32Array, _t: number): Float32Array<ArrayBuffer> {
    return x.slice();
  }

  addNoise(x0: Float32Array, noise: Float32Array, t: number): Float32Array<ArrayBuffer> {
    checkIntegerTimestep(this.name, t, this.config.num_train_timesteps);
    checkSameLength(this.name, "x0 and noise", x0, noise);
    return diffuseVP(x0, noise, this.alphaBar[t]);
  }
}
