/**
 * Schedulers for Stable Diffusion 1.x, matching diffusers step for step: DDIM, PNDM (PLMS,
 * SD's default), Euler, Euler a, LMS, DPM++ 2M, DPM++ 2M Karras and LCM — one row each in
 * `SCHEDULERS` (`table.ts`). Pure TypeScript on `Float32Array`s; no GPU.
 *
 * @example
 * ```ts
 * import { createScheduler, loadSchedulerConfig } from "./scheduler/mod.ts";
 * const scheduler = createScheduler("dpm++2m-karras", await loadSchedulerConfig(modelDir));
 * scheduler.setTimesteps(20);
 * let x = latents.map((v) => v * scheduler.initNoiseSigma);
 * for (const t of scheduler.timesteps) {
 *   x = scheduler.step(unet(scheduler.scaleModelInput(x, t), t), t, x);
 * }
 * ```
 *
 * @module
 */

import type { SchedulerConfig } from "./config.ts";
import { schedulerConfigFor } from "./from_config.ts";
import type { Scheduler, SchedulerOptions } from "./scheduler.ts";
import { type SchedulerName, schedulerRow } from "./table.ts";

export {
  loadSchedulerConfig,
  parseSchedulerConfig,
  type SchedulerConfig,
  SD15_SCHEDULER_CONFIG,
} from "./config.ts";
export { schedulerConfigFor } from "./from_config.ts";
export {
  DIFFUSERS_CLASSES,
  DISPLAY_NAMES,
  IDENTIFIERS,
  isSchedulerName,
  SCHEDULER_NAMES,
  type SchedulerConfigs,
  schedulerFromIdentifier,
  type SchedulerName,
  type SchedulerRow,
  SCHEDULERS,
} from "./table.ts";
export type { Scheduler, SchedulerOptions } from "./scheduler.ts";

/**
 * Builds scheduler `name` from a model's scheduler config (as loaded from its
 * `scheduler_config.json`, or `SD15_SCHEDULER_CONFIG`), the way diffusers users swap one in:
 * `X.from_config(config)` (see `schedulerConfigFor`), with the class of its row in `SCHEDULERS`.
 * Options: `eta` for DDIM; `randn` (the torch-compatible generator's `(n) => Float32Array`,
 * preferred) or `rng` (one standard normal a call) for the noise of Euler a, LCM and DDIM with
 * η > 0 — without either, a fixed-seed fallback that does not reproduce torch.
 *
 * Throws on an unknown name and on config options this implementation does not support.
 */
export function createScheduler(
  name: SchedulerName,
  config: SchedulerConfig,
  opts: SchedulerOptions = {},
): Scheduler {
  const { scheduler } = schedulerRow(name);
  return new scheduler(schedulerConfigFor(name, config), opts);
}
