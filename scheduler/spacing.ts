/**
 * Timestep spacing: which of the T training timesteps n inference steps visit, as diffusers
 * computes them ("leading", "linspace", "trailing": Lin et al. 2023, "Common Diffusion Noise
 * Schedules and Sample Steps are Flawed", Table 2). Largest timestep first.
 *
 * @module
 */

import { arange, f32, linspace, roundHalfEven } from "./numeric.ts";

/** The spacings diffusers offers. */
export const SPACINGS = ["leading", "linspace", "trailing"] as const;

/**
 * Timesteps for the one-model-call-a-step schedulers (DDIM, PNDM before its repeat, Euler,
 * Euler a, LMS):
 * - "leading": `arange(n)·⌊T/n⌋ + steps_offset` (SD, 20 steps: 951, 901, …, 1);
 * - "linspace": `linspace(0, T−1, n)`, rounded half-to-even for DDIM/PNDM (`linspaceAs: "int"`)
 *   or kept as float32 for the σ-based schedulers (`"f32"`: 999, 946.42108, …, 0);
 * - "trailing": `round(arange(T, 0, −T/n)) − 1` (999, 949, …).
 */
export function spacedTimesteps(
  spacing: string,
  n: number,
  trainTimesteps: number,
  stepsOffset: number,
  linspaceAs: "int" | "f32",
): number[] {
  switch (spacing) {
    case "leading": {
      const stepRatio = Math.floor(trainTimesteps / n);
      return arange(0, n, 1).map((i) => i * stepRatio + stepsOffset).reverse();
    }
    case "linspace": {
      const ts = linspace(0, trainTimesteps - 1, n);
      return (linspaceAs === "int" ? ts.map(roundHalfEven) : ts.map(f32)).reverse();
    }
    case "trailing":
      return arange(trainTimesteps, 0, -trainTimesteps / n).map((t) => roundHalfEven(t) - 1);
    default:
      throw unknownSpacing(spacing);
  }
}

/**
 * Timesteps of DPM-Solver's `set_timesteps`, which spaces n+1 points and drops the last, and
 * stops at `lastTimestep` (T unless λ clipping removes the noisiest ones):
 * - "linspace": `round(linspace(0, last−1, n+1))` reversed, last dropped (999, 949, …, 50);
 * - "leading": `arange(n+1)·⌊last/(n+1)⌋` reversed, last dropped, `+ steps_offset`;
 * - "trailing": `round(arange(last, 0, −T/n)) − 1`.
 */
export function dpmSolverTimesteps(
  spacing: string,
  n: number,
  trainTimesteps: number,
  lastTimestep: number,
  stepsOffset: number,
): number[] {
  switch (spacing) {
    case "linspace":
      return linspace(0, lastTimestep - 1, n + 1).map(roundHalfEven).reverse().slice(0, -1);
    case "leading": {
      const stepRatio = Math.floor(lastTimestep / (n + 1));
      return arange(0, n + 1, 1).map((i) => i * stepRatio).reverse().slice(0, -1)
        .map((t) => t + stepsOffset);
    }
    case "trailing":
      return arange(lastTimestep, 0, -trainTimesteps / n).map((t) => roundHalfEven(t) - 1);
    default:
      throw unknownSpacing(spacing);
  }
}

function unknownSpacing(spacing: string): Error {
  return new Error(
    `timestep_spacing "${spacing}" is not supported (supported: ${SPACINGS.join(", ")})`,
  );
}
