/**
 * The scheduler names of the command line, the sampler names other Stable Diffusion tools write
 * in PNG `parameters` ("Sampler: Euler a"), and the diffusers class behind each.
 *
 * @module
 */

/** Every scheduler, by its command-line name. */
export const SCHEDULER_NAMES = [
  "ddim",
  "pndm",
  "euler",
  "euler-a",
  "lms",
  "dpm++2m",
  "dpm++2m-karras",
] as const;

/** A scheduler's command-line name. */
export type SchedulerName = typeof SCHEDULER_NAMES[number];

/** The sampler name AUTOMATIC1111-style tools write in a PNG's `parameters` text. */
export const DISPLAY_NAMES: Readonly<Record<SchedulerName, string>> = {
  "ddim": "DDIM",
  "pndm": "PNDM",
  "euler": "Euler",
  "euler-a": "Euler a",
  "lms": "LMS",
  "dpm++2m": "DPM++ 2M",
  "dpm++2m-karras": "DPM++ 2M Karras",
};

/** The diffusers class each name stands for (the Karras variant is `use_karras_sigmas=True`). */
export const DIFFUSERS_CLASSES: Readonly<Record<SchedulerName, string>> = {
  "ddim": "DDIMScheduler",
  "pndm": "PNDMScheduler",
  "euler": "EulerDiscreteScheduler",
  "euler-a": "EulerAncestralDiscreteScheduler",
  "lms": "LMSDiscreteScheduler",
  "dpm++2m": "DPMSolverMultistepScheduler",
  "dpm++2m-karras": "DPMSolverMultistepScheduler",
};

/**
 * Each name as an identifier (`euler_a`, `dpmpp_2m_karras`): the form the reference fixtures use
 * in their keys (`sched.<id>.…`, `pipe.<id>.…`).
 */
export const IDENTIFIERS: Readonly<Record<SchedulerName, string>> = {
  "ddim": "ddim",
  "pndm": "pndm",
  "euler": "euler",
  "euler-a": "euler_a",
  "lms": "lms",
  "dpm++2m": "dpmpp_2m",
  "dpm++2m-karras": "dpmpp_2m_karras",
};

/** The scheduler whose {@linkcode IDENTIFIERS} entry is `id`. */
export function schedulerFromIdentifier(id: string): SchedulerName {
  const name = SCHEDULER_NAMES.find((n) => IDENTIFIERS[n] === id);
  if (!name) throw new Error(`unknown scheduler identifier "${id}"`);
  return name;
}

/** Whether `name` is a scheduler name. */
export function isSchedulerName(name: string): name is SchedulerName {
  return (SCHEDULER_NAMES as readonly string[]).includes(name);
}
