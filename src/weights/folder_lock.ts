/**
 * The lock of a model folder while anything in it is written: one lock file, `.fetch.lock`, held
 * with an exclusive OS advisory lock (`flock`/`LockFileEx` through `Deno.FsFile.tryLock`). The
 * kernel drops the lock when its holder exits, however it exits, so there are no stale locks to
 * detect or break (the race that O_EXCL lock files have when two waiters break the same stale
 * lock); the lock file itself is never deleted, so every process locks the same inode.
 *
 * @module
 */

import { join } from "../std/path.ts";
import { writeAll } from "./download.ts";

/** Waits `ms`, or rejects with the signal's reason once it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Takes the model folder's lock (`dir/.fetch.lock`), calling `onWait` once when another process
 * holds it and polling until it is free; the caller unlocks and closes the file.
 */
export async function lockFolder(
  dir: string,
  onWait: () => void,
  signal?: AbortSignal,
): Promise<Deno.FsFile> {
  const f = await Deno.open(join(dir, ".fetch.lock"), { read: true, write: true, create: true });
  try {
    if (!(await f.tryLock(true))) {
      onWait();
      while (!(await f.tryLock(true))) await sleep(200, signal);
    }
    await f.truncate(0);
    await writeAll(f, new TextEncoder().encode(`${Deno.pid}\n`));
    return f;
  } catch (e) {
    f.close();
    throw e;
  }
}
