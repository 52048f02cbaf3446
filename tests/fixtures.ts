/**
 * Where the tests find their reference data: `fixture("tiny-sd/unet/config.json")` is the path of
 * that file among the fixtures (`SD_FIXTURES` when set, else the shared folder beside the
 * repository). Every test reads fixtures through this one function.
 *
 * @module
 */

import { fromFileUrl, join } from "../src/std/path.ts";

/** The fixtures folder: `SD_FIXTURES`, else `../shared/fixtures` beside the repository. */
export const FIXTURES: string = Deno.env.get("SD_FIXTURES") ??
  fromFileUrl(new URL("../../shared/fixtures/", import.meta.url));

/** The path of a fixture file or folder, relative to the fixtures folder. */
export function fixture(rel: string): string {
  return join(FIXTURES, rel);
}
