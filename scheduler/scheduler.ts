/**
 * What every scheduler offers the denoising loop, and the checks they share.
 *
 * The loop, as diffusers' pipelines run it:
 * ```ts
 * scheduler.setTimesteps(steps);
 * let x = noise.map((v) => v * scheduler.initNoiseSigma);
 * for (const t of scheduler.timesteps) {
 *   const eps = unet(scheduler.scaleModelInput(x, t), t);
 *   x = scheduler.step(eps, t, x);
 * }
 * ```
 *
 * @module
 */

/** A sampler over the diffusion process: timesteps, input scaling, and x_t → x_{t−1}. */
export interface Scheduler {
  /** The command-line name, e.g. "euler-a". */
  readonly name: string;
  /**
   * Chooses `n` inference steps (1 … num_train_timesteps) and resets all per-run state
   * (multistep history, PNDM's counter, the step index), so one scheduler can run many images.
   */
  setTimesteps(n: number): void;
  /** The timesteps to visit, in diffusers' order (PNDM's repeated step included). */
  readonly timesteps: number[];
  /** σ for each timestep plus the final one (σ-based schedulers only), float32 values. */
  readonly sigmas?: number[];
  /** The standard deviation of the initial latent noise (1 for DDIM/PNDM/DPM++, σ_max for Euler/LMS). */
  readonly initNoiseSigma: number;
  /** The UNet's input for `x` at timestep `t` (x / √(σ²+1) for σ-based schedulers, else x). */
  scaleModelInput(x: Float32Array, t: number): Float32Array<ArrayBuffer>;
  /** One step: from the model's noise prediction `eps` at timestep `t` and x_t, x at the next timestep. */
  step(eps: Float32Array, t: number, x: Float32Array): Float32Array<ArrayBuffer>;
  /** Forward diffusion of a clean latent to timestep `t` (image-to-image). */
  addNoise(x0: Float32Array, noise: Float32Array, t: number): Float32Array<ArrayBuffer>;
}

/** Options of `createScheduler`. */
export interface SchedulerOptions {
  /** DDIM's η (0: deterministic DDIM, the default; 1: DDPM-like). Ignored by the others. */
  eta?: number;
  /** A source of standard-normal values, one a call. */
  rng?: () => number;
  /**
   * `n` standard-normal values a call — the pipeline passes its torch-compatible generator
   * (`(n) => gen.randn(n)`) so that Euler a matches diffusers for a seed. Takes precedence over `rng`.
   */
  randn?: (n: number) => Float32Array;
}

/** Throws unless `n` is a whole number of steps from 1 to the number of training timesteps. */
export function checkStepCount(scheduler: string, n: number, trainTimesteps: number): void {
  if (!Number.isInteger(n) || n < 1 || n > trainTimesteps) {
    throw new Error(
      `scheduler "${scheduler}": the number of steps must be an integer from 1 to ` +
        `${trainTimesteps} (num_train_timesteps), got ${n}`,
    );
  }
}

/** Throws unless the arrays have the same length. */
export function checkSameLength(
  scheduler: string,
  what: string,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
): void {
  if (a.length !== b.length) {
    throw new Error(
      `scheduler "${scheduler}": ${what} have different sizes (${a.length} vs ${b.length})`,
    );
  }
}

/** Throws unless `t` is an integer training timestep (DDIM, PNDM). */
export function checkIntegerTimestep(scheduler: string, t: number, trainTimesteps: number): void {
  if (!Number.isInteger(t) || t < 0 || t >= trainTimesteps) {
    throw new Error(
      `scheduler "${scheduler}": timestep ${t} is not an integer from 0 to ${trainTimesteps - 1}`,
    );
  }
}

/** The error for using a scheduler before `setTimesteps`. */
export function notSetError(scheduler: string): Error {
  return new Error(`scheduler "${scheduler}": call setTimesteps(n) before stepping`);
}
