/**
 * The training noise schedule: β_t for t = 0 … T−1 and ᾱ_t = ∏_{s≤t} (1 − β_s), in float32 as
 * diffusers holds them (`self.betas`, `self.alphas_cumprod`).
 *
 * Float32 details that move ᾱ (and so every σ) by an ulp: `torch.linspace` on the CPU computes
 * `start + step·i` for the first half and `end − step·(T−1−i)` for the second with `step` in
 * float32; `torch.cumprod` on the CPU accumulates in double and stores float32.
 *
 * @module
 */

import { f32 } from "./numeric.ts";

/** The fields of a scheduler config that define β. */
export interface BetaConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: string;
  trained_betas: number[] | null;
}

/** `torch.linspace(start, end, steps, dtype=torch.float32)` on the CPU. */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) out[0] = start;
  if (steps <= 1) return out;
  const s = f32(start), e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < halfway ? s + step * i : e - step * (steps - 1 - i);
  }
  return out;
}

/** ᾱ(τ) of the cosine schedule (Nichol & Dhariwal 2021), τ ∈ [0, 1]. */
function cosineAlphaBar(tau: number): number {
  return Math.cos((tau + 0.008) / 1.008 * Math.PI / 2) ** 2;
}

/**
 * β_t for the config's `beta_schedule` ("linear", "scaled_linear" — SD's, linear in √β —,
 * "squaredcos_cap_v2") or its `trained_betas`.
 */
export function betaSchedule(config: BetaConfig): Float32Array {
  const T = config.num_train_timesteps;
  if (config.trained_betas != null) return Float32Array.from(config.trained_betas);
  switch (config.beta_schedule) {
    case "linear":
      return torchLinspaceF32(config.beta_start, config.beta_end, T);
    case "scaled_linear":
      return torchLinspaceF32(config.beta_start ** 0.5, config.beta_end ** 0.5, T)
        .map((sqrtBeta) => sqrtBeta * sqrtBeta);
    case "squaredcos_cap_v2": {
      const betas = new Float32Array(T);
      for (let i = 0; i < T; i++) {
        betas[i] = Math.min(1 - cosineAlphaBar((i + 1) / T) / cosineAlphaBar(i / T), 0.999);
      }
      return betas;
    }
    default:
      throw new Error(
        `beta_schedule "${config.beta_schedule}" is not supported ` +
          `(supported: linear, scaled_linear, squaredcos_cap_v2)`,
      );
  }
}

/** ᾱ_t = ∏_{s≤t} (1 − β_s): float32 α, double accumulation, float32 result. */
export function alphaBars(betas: Float32Array): Float32Array {
  const alphaBar = new Float32Array(betas.length);
  let product = 1;
  for (let t = 0; t < betas.length; t++) {
    product *= f32(1 - betas[t]);
    alphaBar[t] = product;
  }
  return alphaBar;
}
