/**
 * The config each scheduler runs with when swapped in as diffusers users do,
 * `X.from_config(pipe.scheduler.config)`: X's own `__init__` defaults, overridden by every field
 * the model's file sets (fields the file lacks — SD 1.5's has no `timestep_spacing` — keep X's
 * default: "linspace" for Euler/LMS/DPM-Solver, "leading" for DDIM/PNDM/LCM; fields it sets are
 * kept, as diffusers keeps them), plus the option
 * that makes the named variant ("dpm++2m-karras": `use_karras_sigmas=True`). Defaults and
 * overrides are columns of the scheduler table (`table.ts`).
 *
 * @module
 */

import type { SchedulerConfig } from "./config.ts";
import { type SchedulerConfigs, type SchedulerName, schedulerRow } from "./table.ts";

/**
 * Whether `key` of `source` holds a value diffusers took from the source class's defaults rather
 * than from a file: such values are not passed on by `X.from_config` (diffusers lists them in
 * `_use_default_values`, which `save_pretrained` drops). A field written in the model's file is
 * explicit, as diffusers reads it: a folder saved by a recent diffusers (tiny-sd's) sets
 * `timestep_spacing: "leading"`, and its Euler then runs "leading", while SD 1.5's file lacks the
 * field and its Euler runs "linspace".
 */
function usedDefault(source: SchedulerConfig, key: string): boolean {
  const listed = (source as Record<string, unknown>)["_use_default_values"];
  return Array.isArray(listed) && listed.includes(key);
}

/**
 * The complete config of scheduler `name` built from `source` (a model's scheduler config, e.g.
 * SD 1.5's PNDM one): class defaults ← fields set in `source` (not undefined; keys starting with
 * "_", like `_class_name`, are dropped) ← the name's overrides. Fields the class does not know are
 * kept and ignored (diffusers keeps them in the config too).
 *
 * @example
 * ```ts
 * schedulerConfigFor("euler", SD15_SCHEDULER_CONFIG).timestep_spacing; // "linspace"
 * schedulerConfigFor("ddim", SD15_SCHEDULER_CONFIG).timestep_spacing; // "leading"
 * ```
 */
export function schedulerConfigFor<N extends SchedulerName>(
  name: N,
  source: SchedulerConfig,
): SchedulerConfigs[N] {
  const explicit = Object.fromEntries(
    Object.entries(source).filter(([key, value]) =>
      value !== undefined && !key.startsWith("_") && !usedDefault(source, key)
    ),
  );
  const { defaults, overrides } = schedulerRow(name);
  return { ...defaults, ...explicit, ...overrides } as SchedulerConfigs[N];
}
