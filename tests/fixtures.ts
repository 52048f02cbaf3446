/**
 * Where the tests find their reference data: `fixture("tiny-sd/unet/config.json")` is the path of
 * that file among the fixtures — the project's `tests/fixtures/`, or the folder `SD_FIXTURES`
 * names. Every test reads fixtures through this one function. The first import makes the model
 * weights that `tests/fixtures/generate.ts` generates (checked by sha256) when they are missing
 * from the project's folder; a fixture that is still missing is one line saying which and how to
 * get it.
 *
 * @module
 */

import { fromFileUrl, join } from "../src/std/path.ts";
import { ensureGenerated, MANIFEST } from "./fixtures/generate.ts";

const PROJECT = fromFileUrl(new URL("./fixtures/", import.meta.url));

/** The fixtures folder: `SD_FIXTURES` when set, else the project's `tests/fixtures/`. */
export const FIXTURES: string = Deno.env.get("SD_FIXTURES") || PROJECT;

/** A fixture problem, reported as its one-line message (no stack: the message says it all). */
export class FixtureError extends Error {
  /** @param message what is wrong; what to do */
  constructor(message: string) {
    super(message);
    this.name = "FixtureError";
    this.stack = `${this.name}: ${message}`;
  }
}

/** What to do about a missing fixture `rel`. */
function howToGet(rel: string): string {
  if (FIXTURES !== PROJECT) {
    return `SD_FIXTURES=${FIXTURES} lacks it: unset SD_FIXTURES to use the project's tests/fixtures`;
  }
  if (Object.keys(MANIFEST.generated).some((g) => g === rel || g.startsWith(`${rel}/`))) {
    return "run `deno run -A tests/fixtures/generate.ts` to make it";
  }
  return "restore it with `git checkout -- tests/fixtures` (see tests/fixtures/README.md)";
}

/**
 * The path of a fixture file or folder, relative to the fixtures folder.
 *
 * @throws {FixtureError} when it does not exist
 */
export function fixture(rel: string): string {
  const path = join(FIXTURES, rel);
  try {
    Deno.statSync(path);
  } catch {
    throw new FixtureError(`missing test fixture ${rel} (in ${FIXTURES}); ${howToGet(rel)}`);
  }
  return path;
}

if (FIXTURES === PROJECT) {
  try {
    await ensureGenerated(PROJECT);
  } catch (e) {
    throw new FixtureError(`cannot generate the test fixtures: ${(e as Error).message}`);
  }
}
