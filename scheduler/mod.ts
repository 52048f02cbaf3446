/**
 * Schedulers for Stable Diffusion 1.x, matching diffusers step for step: DDIM, PNDM (PLMS,
 * SD's default), Euler, Euler a, LMS, DPM++ 2M and DPM++ 2M Karras. Pure TypeScript on
 * `Float32Array`s; no GPU.
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
import { DdimScheduler } from "./ddim.ts";
import { DpmSolverMultistepScheduler } from "./dpmpp_2m.ts";
import { EulerAncestralScheduler } from "./euler_ancestral.ts";
import { EulerScheduler } from "./euler.ts";
import { schedulerConfigFor } from "./from_config.ts";
import { LmsScheduler } from "./lms.ts";
import { isSchedulerName, SCHEDULER_NAMES, type SchedulerName } from "./names.ts";
import { PndmScheduler } from "./pndm.ts";
import type { Scheduler, SchedulerOptions } from "./scheduler.ts";

export {
  loadSchedulerConfig,
  parseSchedulerConfig,
  type SchedulerConfig,
  SD15_SCHEDULER_CONFIG,
} from "./config.ts";
export { NAME_OVERRIDES, schedulerConfigFor, type SchedulerConfigs } from "./from_config.ts";
export {
  DIFFUSERS_CLASSES,
  DISPLAY_NAMES,
  IDENTIFIERS,
  isSchedulerName,
  SCHEDULER_NAMES,
  schedulerFromIdentifier,
  type SchedulerName,
} from "./names.ts";
export type { Scheduler, SchedulerOptions } from "./scheduler.ts";

/**
 * Builds scheduler `name` from a model's scheduler config (as loaded from its
 * `scheduler_config.json`, or `SD15_SCHEDULER_CONFIG`), the way diffusers users swap one in:
 * `X.from_config(config)` (see `schedulerConfigFor`). Options: `eta` for DDIM; `randn` (the
 * torch-compatible generator's `(n) => Float32Array`, preferred) or `rng` (one standard normal a
 * call) for the noise of Euler a and of DDIM with η > 0 — without either, a fixed-seed fallback
 * that does not reproduce torch.
 *
 * Throws on an unknown name and on config options this implementation does not support.
 */
export function createScheduler(
  name: SchedulerName,
  config: SchedulerConfig,
  opts: SchedulerOptions = {},
): Scheduler {
  if (!isSchedulerName(name)) {
    throw new Error(`unknown scheduler "${name}" (expected one of: ${SCHEDULER_NAMES.join(", ")})`);
  }
  switch (name) {
    case "ddim":
      return new DdimScheduler(schedulerConfigFor(name, config), opts);
    case "pndm":
      return new PndmScheduler(schedulerConfigFor(name, config));
    case "euler":
      return new EulerScheduler(schedulerConfigFor(name, config));
    case "euler-a":
      return new EulerAncestralScheduler(schedulerConfigFor(name, config), opts);
    case "lms":
      return new LmsScheduler(schedulerConfigFor(name, config));
    case "dpm++2m":
    case "dpm++2m-karras":
      return new DpmSolverMultistepScheduler(schedulerConfigFor(name, config));
  }
}
