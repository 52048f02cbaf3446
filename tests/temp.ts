/**
 * Temporary folders for tests: created, handed to the test, removed afterwards.
 *
 * @module
 */

/** Files in `dir` (non-recursive), sorted, without the weights cache folder. */
export function listDir(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n !== ".cache").sort();
}

/** Runs `fn` with a fresh temporary folder, removed afterwards whatever happens. */
export async function withTmp(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sd-cli-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
