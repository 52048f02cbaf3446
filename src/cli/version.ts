/**
 * The program's version, printed by `sd --version` and recorded in every PNG's `parameters`
 * (`Version: sd 0.1.0`).
 *
 * @module
 */

/** The version of `sd` (semver). */
export const VERSION = "0.1.0";
