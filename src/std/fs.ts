/**
 * File-system helpers. Stand in for `jsr:@std/fs` (JSR is unreachable here), built on Deno's
 * APIs; switching is a change to this file only.
 *
 * @module
 */

/** Whether `path` exists (any kind of entry). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Synchronous {@linkcode exists}. */
export function existsSync(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Creates `path` and its parents if missing. */
export async function ensureDir(path: string): Promise<void> {
  await Deno.mkdir(path, { recursive: true });
}
