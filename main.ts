/**
 * `sd` command-line entry: parse, validate, run, write — all in `src/cli/run.ts`; this file only
 * hands over the arguments and exits with the code it returns.
 *
 * @module
 */

import { main } from "./src/cli/run.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
