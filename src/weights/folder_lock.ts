/**
 * The lock of a model folder while anything in it is written: one lock file, `.fetch.lock`, held
 * with an exclusive OS advisory lock (`flock`/`LockFileEx` through `Deno.FsFile.tryLock`). The
 * kernel drops the lock when its holder exits, however it exits, so there are no stale locks to
 * detect or break (the race that O_EXCL lock files have when two waiters break the same stale
 * lock).
 *
 * The holder removes the lock file before unlocking, so that a fetch leaves no debris in the cache
 * (see `fetch.ts`). A waiter may then hold the lock of a file no longer at the path: after taking
 * a lock, {@linkcode lockFolder} checks that the path still names the locked file (same inode)
 * and otherwise opens the path again, so every holder locks the file at the path. Where the
 * platform gives no inode, or on Windows (where a file removed while open blocks its name until
 * the last handle closes), the lock file is kept instead.
 *
 * @module
 */

import { join } from "../std/path.ts";
import { writeAll } from "./download.ts";

/** The lock file's name in a model folder. */
export const LOCK_FILE = ".fetch.lock";

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

/** A held folder lock; {@linkcode FolderLock.release} gives it back. */
export interface FolderLock {
  /** Removes the lock file (where that is safe), unlocks and closes it. */
  release(): Promise<void>;
}

/** Whether the open file `f` is the file at `path` now: true, false, or null (cannot tell). */
async function isAtPath(f: Deno.FsFile, path: string): Promise<boolean | null> {
  const mine = await f.stat();
  let there: Deno.FileInfo;
  try {
    there = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  if (mine.ino === null || there.ino === null || mine.dev !== there.dev) {
    return mine.ino === null || there.ino === null ? null : false;
  }
  return mine.ino === there.ino;
}

/**
 * Takes the model folder's lock (`dir/.fetch.lock`, creating the folder and the file when
 * missing), calling `onWait` once when another process holds it and polling until it is free.
 */
export async function lockFolder(
  dir: string,
  onWait: () => void,
  signal?: AbortSignal,
): Promise<FolderLock> {
  const path = join(dir, LOCK_FILE);
  let waited = false;
  for (;;) {
    signal?.throwIfAborted();
    // The previous holder may have removed an empty folder along with its lock file.
    await Deno.mkdir(dir, { recursive: true });
    let f: Deno.FsFile;
    try {
      f = await Deno.open(path, { read: true, write: true, create: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    try {
      if (!(await f.tryLock(true))) {
        if (!waited) onWait();
        waited = true;
        while (!(await f.tryLock(true))) await sleep(200, signal);
      }
      if ((await isAtPath(f, path)) === false) {
        f.close(); // the holder before us removed it: lock the file at the path
        continue;
      }
      await f.truncate(0);
      await writeAll(f, new TextEncoder().encode(`${Deno.pid}\n`));
    } catch (e) {
      f.close();
      throw e;
    }
    const file = f;
    return {
      release: async () => {
        try {
          if (Deno.build.os !== "windows" && (await isAtPath(file, path)) === true) {
            await Deno.remove(path).catch(() => {});
          }
          await file.unlock();
        } finally {
          file.close();
        }
      },
    };
  }
}
