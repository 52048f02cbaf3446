/**
 * diffusers' step index (`_step_index`, `_init_step_index`, `index_for_timestep`) for schedulers
 * that walk a table of timesteps (Euler, Euler a, LMS, DPM-Solver, LCM): the first call locates the timestep in
 * the schedule, later calls just advance, so repeated timesteps (possible with Karras σ) work.
 *
 * @module
 */

/** What to do when the first timestep is not in the schedule. */
export type NotFound = "throw" | "last";

/** The position in the schedule of the step being taken. */
export class StepIndex {
  #index: number | null = null;

  /** Forgets the position (a new run). */
  reset(): void {
    this.#index = null;
  }

  /**
   * The index of the current step; on the first call, that of `t` in `timesteps` — its second
   * occurrence when `t` repeats (diffusers: "so we don't accidentally skip a sigma" in img2img).
   */
  current(scheduler: string, timesteps: readonly number[], t: number, notFound: NotFound): number {
    if (this.#index === null) this.#index = indexForTimestep(scheduler, timesteps, t, notFound);
    if (this.#index >= timesteps.length) {
      throw new Error(
        `scheduler "${scheduler}": all ${timesteps.length} steps are done; call setTimesteps(n) again`,
      );
    }
    return this.#index;
  }

  /** Moves to the next step. */
  advance(): void {
    if (this.#index !== null) this.#index++;
  }
}

/** The position of `t` in `timesteps` (the second one if it repeats). */
export function indexForTimestep(
  scheduler: string,
  timesteps: readonly number[],
  t: number,
  notFound: NotFound,
): number {
  const matches: number[] = [];
  timesteps.forEach((s, i) => s === t && matches.push(i));
  if (matches.length === 0) {
    if (notFound === "last") return timesteps.length - 1;
    throw new Error(`scheduler "${scheduler}": timestep ${t} is not in the schedule`);
  }
  return matches.length > 1 ? matches[1] : matches[0];
}
