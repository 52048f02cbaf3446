/**
 * Scheduler configuration as diffusers writes it (`scheduler/scheduler_config.json`): the field
 * names are diffusers' own, so a model folder's file loads as is.
 *
 * @module
 */

import { UserError } from "../src/errors.ts";
import { join } from "../src/std/path.ts";

/**
 * The fields of diffusers' `scheduler_config.json` that the schedulers here read (any other key
 * is kept and ignored, as diffusers keeps unused keys). All are optional: a scheduler fills in
 * its diffusers class defaults (see `schedulerConfigFor`).
 */
export interface SchedulerConfig {
  /** The diffusers class that wrote the file, e.g. "PNDMScheduler". */
  _class_name?: string;
  /** T, the number of diffusion steps the model was trained with (1000). */
  num_train_timesteps?: number;
  /** β_0. */
  beta_start?: number;
  /** β_{T−1}. */
  beta_end?: number;
  /** "linear", "scaled_linear" (SD: linear in √β) or "squaredcos_cap_v2". */
  beta_schedule?: string;
  /** β_t given directly, overriding the three fields above. */
  trained_betas?: number[] | null;
  /** Added to every "leading" timestep (SD: 1, so the last step is t = 1). */
  steps_offset?: number;
  /** DDIM/PNDM: ᾱ before t = 0 is 1 (true) or ᾱ_0 (false, SD). */
  set_alpha_to_one?: boolean;
  /** PNDM: skip the Runge–Kutta warm-up (SD: true, the PLMS sampler). */
  skip_prk_steps?: boolean;
  /** "leading", "linspace" or "trailing" (Lin et al. 2023, Table 2). */
  timestep_spacing?: string;
  /** What the UNet predicts: "epsilon" for SD 1.x. */
  prediction_type?: string;
  /** DDIM: clamp the x₀ prediction to ±`clip_sample_range`. */
  clip_sample?: boolean;
  /** DDIM: the clamp bound. */
  clip_sample_range?: number;
  /** DDIM/DPM-Solver/LCM: dynamic thresholding of x₀ (not supported here; must be false). */
  thresholding?: boolean;
  /** Dynamic thresholding's percentile (unused while `thresholding` is false). */
  dynamic_thresholding_ratio?: number;
  /** Dynamic thresholding's largest bound (unused while `thresholding` is false). */
  sample_max_value?: number;
  /** LCM: the length of the schedule its timesteps are taken from (Luo et al. 2023: 50). */
  original_inference_steps?: number;
  /** LCM: t is multiplied by this in the boundary-condition scalings c_skip, c_out (10). */
  timestep_scaling?: number;
  /** Zero-terminal-SNR rescaling of β (not supported here; must be false). */
  rescale_betas_zero_snr?: boolean;
  /** Euler: how σ is interpolated between training timesteps ("linear"). */
  interpolation_type?: string;
  /** Euler, LMS, DPM-Solver: σ spaced as Karras et al. (2022), ρ = 7. */
  use_karras_sigmas?: boolean;
  /** Exponential σ spacing (not supported here; must be false). */
  use_exponential_sigmas?: boolean;
  /** Beta-distribution σ spacing (not supported here; must be false). */
  use_beta_sigmas?: boolean;
  /** DPM-Solver: uniform-λ spacing (not supported here; must be false). */
  use_lu_lambdas?: boolean;
  /** DPM-Solver: flow-matching σ (not supported here; must be false). */
  use_flow_sigmas?: boolean;
  /** Euler: the Karras schedule's σ_min (default: the schedule's smallest σ). */
  sigma_min?: number | null;
  /** Euler: the Karras schedule's σ_max (default: the schedule's largest σ). */
  sigma_max?: number | null;
  /** Euler: "discrete" timesteps (continuous ones are not supported here). */
  timestep_type?: string;
  /** Euler, DPM-Solver: the σ after the last step, "zero" or "sigma_min". */
  final_sigmas_type?: string;
  /** DPM-Solver: 1 or 2 (2M). */
  solver_order?: number;
  /** DPM-Solver: "dpmsolver++" (data prediction; the only one supported here). */
  algorithm_type?: string;
  /** DPM-Solver: second-order update "midpoint" or "heun". */
  solver_type?: string;
  /** DPM-Solver: lower the order in the last steps when fewer than 15 steps. */
  lower_order_final?: boolean;
  /** DPM-Solver: always take an Euler (first-order) last step. */
  euler_at_final?: boolean;
  /** DPM-Solver: timesteps whose λ = log(α/σ) is below this are not used (−∞: none dropped). */
  lambda_min_clipped?: number;
  /** DPM-Solver: learned-variance outputs (not supported here; must be null). */
  variance_type?: string | null;
  /** Any other key diffusers writes. */
  [key: string]: unknown;
}

/**
 * Stable Diffusion 1.5's scheduler config, field for field its repository's file
 * (https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/451f4fe16113bff5a5d2269ed5ad43b0592e9a14/scheduler/scheduler_config.json,
 * 308 bytes, sha256 699cce92…e091 as pinned in weights.lock; the runwayml repo had the same
 * file): PNDM, scaled-linear β from 0.00085 to 0.012 over 1000 steps, `steps_offset` 1. The file
 * has no `timestep_spacing` or `prediction_type`, so every scheduler built from it takes its own
 * defaults for those ("leading" for DDIM/PNDM, "linspace" for the σ-based ones; "epsilon").
 */
export const SD15_SCHEDULER_CONFIG: Readonly<SchedulerConfig> = Object.freeze({
  _class_name: "PNDMScheduler",
  _diffusers_version: "0.6.0",
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
  clip_sample: false,
});

type FieldKind = "number" | "boolean" | "string" | "number[]";

/** The JSON type of each known field, and whether `null` is allowed. */
const FIELDS: Record<string, [FieldKind, nullable: boolean]> = {
  _class_name: ["string", false],
  num_train_timesteps: ["number", false],
  beta_start: ["number", false],
  beta_end: ["number", false],
  beta_schedule: ["string", false],
  trained_betas: ["number[]", true],
  steps_offset: ["number", false],
  set_alpha_to_one: ["boolean", false],
  skip_prk_steps: ["boolean", false],
  timestep_spacing: ["string", false],
  prediction_type: ["string", false],
  clip_sample: ["boolean", false],
  clip_sample_range: ["number", false],
  thresholding: ["boolean", false],
  dynamic_thresholding_ratio: ["number", false],
  sample_max_value: ["number", false],
  original_inference_steps: ["number", false],
  timestep_scaling: ["number", false],
  rescale_betas_zero_snr: ["boolean", false],
  interpolation_type: ["string", false],
  use_karras_sigmas: ["boolean", false],
  use_exponential_sigmas: ["boolean", false],
  use_beta_sigmas: ["boolean", false],
  use_lu_lambdas: ["boolean", false],
  use_flow_sigmas: ["boolean", false],
  sigma_min: ["number", true],
  sigma_max: ["number", true],
  timestep_type: ["string", false],
  final_sigmas_type: ["string", false],
  solver_order: ["number", false],
  algorithm_type: ["string", false],
  solver_type: ["string", false],
  lower_order_final: ["boolean", false],
  euler_at_final: ["boolean", false],
  lambda_min_clipped: ["number", false],
  variance_type: ["string", true],
};

/** Python's `json.dumps` writes ±Infinity and NaN bare; JSON.parse needs them quoted. */
function quoteNonFinite(text: string): string {
  return text.replace(/(:\s*)(-?Infinity|NaN)(\s*[,}\]])/g, '$1"$2"$3');
}

function isKind(value: unknown, kind: FieldKind): boolean {
  switch (kind) {
    case "number[]":
      return Array.isArray(value) && value.every((v) => typeof v === "number");
    case "number":
      return typeof value === "number";
    case "boolean":
      return typeof value === "boolean";
    case "string":
      return typeof value === "string";
  }
}

/**
 * Checks the known fields' JSON types of a parsed config (turning "Infinity"/"-Infinity"/"NaN"
 * strings into numbers) and returns it typed; `source` names the file in errors.
 */
export function parseSchedulerConfig(json: unknown, source = "scheduler config"): SchedulerConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new UserError(`${source}: expected a JSON object`);
  }
  const config: Record<string, unknown> = { ...json };
  for (const [key, [kind, nullable]] of Object.entries(FIELDS)) {
    let value = config[key];
    if (value === undefined || (value === null && nullable)) continue;
    if (kind === "number" && typeof value === "string" && /^-?Infinity$|^NaN$/.test(value)) {
      value = config[key] = Number(value);
    }
    if (!isKind(value, kind)) {
      throw new UserError(`${source}: "${key}" must be a ${kind}, got ${JSON.stringify(value)}`);
    }
  }
  return config as SchedulerConfig;
}

/**
 * Reads a model folder's `scheduler/scheduler_config.json` (or the JSON file itself when `path`
 * ends in `.json`).
 *
 * @example
 * ```ts
 * const config = await loadSchedulerConfig("models/sd15");
 * const scheduler = createScheduler("euler-a", config);
 * ```
 */
export async function loadSchedulerConfig(path: string): Promise<SchedulerConfig> {
  const file = path.endsWith(".json") ? path : join(path, "scheduler", "scheduler_config.json");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new UserError(`cannot read scheduler config ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(quoteNonFinite(text));
  } catch (e) {
    throw new UserError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  return parseSchedulerConfig(json, file);
}

/**
 * Throws a clear error when `config[key]` is not one of `supported` — for the diffusers options
 * this implementation does not carry.
 */
export function requireOneOf<C extends SchedulerConfig, K extends keyof C & string>(
  scheduler: string,
  config: C,
  key: K,
  supported: readonly C[K][],
): void {
  if (!supported.includes(config[key])) {
    throw new Error(
      `scheduler "${scheduler}": ${key} ${JSON.stringify(config[key])} is not supported ` +
        `(supported: ${supported.map((v) => JSON.stringify(v)).join(", ")})`,
    );
  }
}
