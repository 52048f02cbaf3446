/**
 * `sd` on a disk that fills up: runs the real command (`main`, as `main.ts` does) with
 * `Deno.writeFile` failing for the temporary PNGs after `SD_TEST_DISK_IMAGES` of them were written
 * (default 0) — half the bytes land, then the error the runtime gives for a full disk (a plain
 * `Error`, code `ENOSPC`, "No space left on device (os error 28)"). For the subprocess tests of
 * `inputs_cli_test.ts`; no disk is filled.
 *
 * @module
 */

import { main } from "../src/cli/run.ts";

const room = Number(Deno.env.get("SD_TEST_DISK_IMAGES") ?? "0");
let written = 0;
const writeFile = Deno.writeFile;
Deno.writeFile = async (path, data, options) => {
  if (!String(path).endsWith(".tmp") || written++ < room || !(data instanceof Uint8Array)) {
    return writeFile(path, data, options);
  }
  await writeFile(path, data.subarray(0, data.length >> 1), options);
  throw Object.assign(
    new Error(`No space left on device (os error 28): writefile '${path}'`),
    { code: "ENOSPC" },
  );
};

Deno.exit(await main(Deno.args));
