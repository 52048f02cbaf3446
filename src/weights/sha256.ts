/**
 * sha256 of weight files, streamed in 4 MiB reads. Hashing a 1.7 GB UNet takes about a second of
 * CPU; {@linkcode sha256FileInWorker} does it on another thread, so that the `Model hash:` of a
 * `--weights` folder costs no time while the weights load.
 *
 * @module
 */

import { createHash } from "node:crypto";

const CHUNK = 4 << 20;

/** An unfinished sha256 (node:crypto's Hash). */
export type Sha256 = ReturnType<typeof createHash>;

/** A new sha256. */
export function newSha256(): Sha256 {
  return createHash("sha256");
}

/**
 * Hashes the first `length` bytes of `path` (fewer if the file is shorter); `onBytes` sees the
 * running count. Returns the hash, still open for more data, and the bytes read.
 */
export async function hashPrefix(
  path: string,
  length: number,
  onBytes?: (done: number) => void,
): Promise<{ hash: Sha256; done: number }> {
  const hash = newSha256();
  const f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(CHUNK);
  let done = 0;
  try {
    while (done < length) {
      const n = await f.read(buf.subarray(0, Math.min(CHUNK, length - done)));
      if (n === null) break;
      hash.update(buf.subarray(0, n));
      done += n;
      onBytes?.(done);
    }
  } finally {
    f.close();
  }
  return { hash, done };
}

/** sha256 of a whole file (hex), on this thread. */
export async function sha256File(path: string): Promise<string> {
  const { hash } = await hashPrefix(path, Infinity);
  return hash.digest("hex");
}

/**
 * sha256 of a whole file (hex), computed in a worker so that this thread stays free.
 *
 * @throws {Error} with the worker's message when the file cannot be read
 */
export function sha256FileInWorker(path: string): Promise<string> {
  const worker = new Worker(new URL("./sha256_worker.ts", import.meta.url), { type: "module" });
  return new Promise<string>((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<{ sha256?: string; error?: string }>) => {
      worker.terminate();
      if (e.data.sha256 !== undefined) resolve(e.data.sha256);
      else reject(new Error(e.data.error ?? `hashing ${path} failed`));
    };
    worker.onerror = (e) => {
      e.preventDefault();
      worker.terminate();
      reject(new Error(`hashing ${path} failed: ${e.message}`));
    };
    worker.postMessage({ path });
  });
}
