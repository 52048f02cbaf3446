/**
 * The one table of schedulers: a row per command-line name, with the sampler name AUTOMATIC1111
 * writes in a PNG's `parameters` ("Sampler: Euler a"), the diffusers class it reproduces, that
 * class's `__init__` defaults, what the name sets over a model's config, and the class here.
 * Everything else — the CLI's choices and help, the fixtures' key names, `from_config`,
 * `createScheduler` — derives from it; adding a scheduler is adding a row.
 *
 * A1111's names, as its "PNG info" reads them (modules/sd_samplers_kdiffusion.py,
 * sd_samplers_timesteps.py — DDIM, PLMS —, sd_samplers_lcm.py): PNDM with `skip_prk_steps` is
 * the PLMS sampler; "DPM++ 2M Karras" is the pre-1.9 combined name, which A1111 ≥ 1.9 still reads
 * (it splits a known schedule suffix into "Schedule type: Karras").
 *
 * @module
 */

import type { SchedulerConfig } from "./config.ts";
import { DDIM_DEFAULTS, DdimScheduler } from "./ddim.ts";
import { DPM_SOLVER_DEFAULTS, DpmSolverMultistepScheduler } from "./dpmpp_2m.ts";
import { EULER_ANCESTRAL_DEFAULTS, EulerAncestralScheduler } from "./euler_ancestral.ts";
import { EULER_DEFAULTS, EulerScheduler } from "./euler.ts";
import { LCM_DEFAULTS, LcmScheduler } from "./lcm.ts";
import { LMS_DEFAULTS, LmsScheduler } from "./lms.ts";
import { PNDM_DEFAULTS, PndmScheduler } from "./pndm.ts";
import type { Scheduler, SchedulerOptions } from "./scheduler.ts";

/** One scheduler: its names, its diffusers counterpart and how it is built. */
export interface SchedulerRow<
  N extends string = string,
  C extends SchedulerConfig = SchedulerConfig,
> {
  /** The command-line name (`--scheduler euler-a`). */
  readonly name: N;
  /** The sampler name A1111 writes and reads in PNG `parameters` (`Sampler: Euler a`). */
  readonly a1111: string;
  /** The diffusers class the scheduler reproduces step for step. */
  readonly diffusers: string;
  /** That class's `__init__` defaults: what a model's config does not set. */
  readonly defaults: C;
  /** What the name sets over the model's config (`X.from_config(config, **overrides)`). */
  readonly overrides: SchedulerConfig;
  /** The implementation: `new scheduler(config, options)`. */
  readonly scheduler: new (config: C, opts: SchedulerOptions) => Scheduler;
}

function row<const N extends string, C extends SchedulerConfig>(
  r: SchedulerRow<N, C>,
): SchedulerRow<N, C> {
  return r;
}

/** Every scheduler, in the order the CLI lists them. */
export const SCHEDULERS = [
  row({
    name: "ddim",
    a1111: "DDIM",
    diffusers: "DDIMScheduler",
    defaults: DDIM_DEFAULTS,
    overrides: {},
    scheduler: DdimScheduler,
  }),
  row({
    name: "pndm",
    a1111: "PLMS",
    diffusers: "PNDMScheduler",
    defaults: PNDM_DEFAULTS,
    overrides: {},
    scheduler: PndmScheduler,
  }),
  row({
    name: "euler",
    a1111: "Euler",
    diffusers: "EulerDiscreteScheduler",
    defaults: EULER_DEFAULTS,
    overrides: {},
    scheduler: EulerScheduler,
  }),
  row({
    name: "euler-a",
    a1111: "Euler a",
    diffusers: "EulerAncestralDiscreteScheduler",
    defaults: EULER_ANCESTRAL_DEFAULTS,
    overrides: {},
    scheduler: EulerAncestralScheduler,
  }),
  row({
    name: "lms",
    a1111: "LMS",
    diffusers: "LMSDiscreteScheduler",
    defaults: LMS_DEFAULTS,
    overrides: {},
    scheduler: LmsScheduler,
  }),
  row({
    name: "dpm++2m",
    a1111: "DPM++ 2M",
    diffusers: "DPMSolverMultistepScheduler",
    defaults: DPM_SOLVER_DEFAULTS,
    overrides: { use_karras_sigmas: false },
    scheduler: DpmSolverMultistepScheduler,
  }),
  row({
    name: "dpm++2m-karras",
    a1111: "DPM++ 2M Karras",
    diffusers: "DPMSolverMultistepScheduler",
    defaults: DPM_SOLVER_DEFAULTS,
    overrides: { use_karras_sigmas: true },
    scheduler: DpmSolverMultistepScheduler,
  }),
  row({
    name: "lcm",
    a1111: "LCM",
    diffusers: "LCMScheduler",
    defaults: LCM_DEFAULTS,
    overrides: {},
    scheduler: LcmScheduler,
  }),
] as const;

/** The rows' type. */
type Row = typeof SCHEDULERS[number];

/**
 * The rows with their config types erased, for lookups by a name known only at run time (each
 * row's class is only ever given a config built from that row's defaults).
 */
const ROWS = SCHEDULERS as readonly unknown[] as readonly SchedulerRow[];

/** A scheduler's command-line name. */
export type SchedulerName = Row["name"];

/** The complete config type of each scheduler: its class's defaults, all set. */
export type SchedulerConfigs = {
  [R in Row as R["name"]]: R extends SchedulerRow<string, infer C> ? SchedulerConfig & C : never;
};

/** Every command-line name, in table order. */
export const SCHEDULER_NAMES: readonly SchedulerName[] = SCHEDULERS.map((r) => r.name);

/** Whether `name` is a scheduler name. */
export function isSchedulerName(name: string): name is SchedulerName {
  return (SCHEDULER_NAMES as readonly string[]).includes(name);
}

/** The row of `name`; an error naming the choices for an unknown one. */
export function schedulerRow(name: string): SchedulerRow {
  const found = ROWS.find((r) => r.name === name);
  if (!found) {
    throw new Error(`unknown scheduler "${name}" (expected one of: ${SCHEDULER_NAMES.join(", ")})`);
  }
  return found;
}

function column<V>(value: (r: SchedulerRow) => V): Readonly<Record<SchedulerName, V>> {
  return Object.fromEntries(ROWS.map((r) => [r.name, value(r)])) as Record<SchedulerName, V>;
}

/** The sampler name A1111 writes in a PNG's `parameters` text, by command-line name. */
export const DISPLAY_NAMES: Readonly<Record<SchedulerName, string>> = column((r) => r.a1111);

/** The diffusers class each name stands for (the Karras variant is `use_karras_sigmas=True`). */
export const DIFFUSERS_CLASSES: Readonly<Record<SchedulerName, string>> = column((r) =>
  r.diffusers
);

/**
 * Each name as an identifier, the form the reference fixtures use in their keys
 * (`sched.<id>.…`, `pipe.<id>.…`): `++` as `pp_`, `-` as `_` (`euler_a`, `dpmpp_2m_karras`).
 */
export const IDENTIFIERS: Readonly<Record<SchedulerName, string>> = column((r) =>
  r.name.replace("++", "pp_").replaceAll("-", "_")
);

/** The scheduler whose {@linkcode IDENTIFIERS} entry is `id`. */
export function schedulerFromIdentifier(id: string): SchedulerName {
  const name = SCHEDULER_NAMES.find((n) => IDENTIFIERS[n] === id);
  if (!name) throw new Error(`unknown scheduler identifier "${id}"`);
  return name;
}
