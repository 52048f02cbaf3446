/**
 * One file's download into the cache: streamed, hashed while streaming, resumed with HTTP Range,
 * renamed into place only when size and sha256 match the lock.
 *
 * `F.part` grows from the response body while a sha256 hashes every byte; after an interruption
 * the next attempt (a retry, or the next run) asks for `Range: bytes=<part size>-`. A `206` whose
 * `Content-Range` starts there appends to the part after re-hashing the bytes already on disk; a
 * `200` (a server that ignores Range) starts over from byte 0. At the end, size and digest are
 * compared with the lock: a match renames `F.part` to `F` and writes the stamp (see `cache.ts`); a
 * mismatch deletes the part and throws a {@linkcode WeightsError} naming the file and both hashes.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { markVerified } from "./cache.ts";
import type { LockedFile, LockedModel } from "./lock.ts";
import { hashPrefix, newSha256, type Sha256 } from "./sha256.ts";

/** What went wrong, for callers that branch on it (the message is for humans). */
export type WeightsErrorCode =
  | "mismatch" // size or sha256 differs from the lock; the file was deleted
  | "http" // the server answered with an error status
  | "offline" // no connection could be made
  | "interrupted"; // the transfer broke off; the part is kept for resuming

/** A failed fetch or verification; one line, naming the file. */
export class WeightsError extends UserError {
  /** The kind of failure. */
  readonly code: WeightsErrorCode;
  /** @param code kind of failure @param message one line @param options cause */
  constructor(code: WeightsErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WeightsError";
    this.code = code;
  }
}

/**
 * No connection to the server could be made (no network, no DNS, a closed port): which host and
 * why, so that callers can say what they needed from it and the ways out.
 */
export class OfflineError extends WeightsError {
  /**
   * @param host the host (and port) that could not be reached, e.g. `huggingface.co`
   * @param reason why, in a few words (see {@linkcode briefCause})
   * @param message one line: what could not be fetched; what to do instead
   */
  constructor(
    readonly host: string,
    readonly reason: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super("offline", message, options);
    this.name = "OfflineError";
  }
}

/** A progress report. `bytesDone`/`bytesTotal` count the current file. */
export interface FetchProgress {
  /**
   * `waiting`: another process holds the model folder's lock; `hashing`: hashing bytes already on
   * disk (a resumed part or an unstamped file); `start`, `progress`, `done`: a download.
   */
  kind: "waiting" | "hashing" | "start" | "progress" | "done";
  /** Model name. */
  model: string;
  /** The model's cache folder. */
  dir: string;
  /** The file's path in the lock (empty for `waiting`). */
  path: string;
  /** Bytes of this file on disk or hashed so far. */
  bytesDone: number;
  /** The file's size per the lock. */
  bytesTotal: number;
  /** For `start`: the byte offset this download resumes from (0 for a fresh one). */
  resumeFrom?: number;
  /** Position of the file among those being downloaded, from 1, and their count. */
  index: number;
  /** Number of files being downloaded in this call. */
  count: number;
}

/**
 * The informative part of a network error: the innermost cause, without the URL (named elsewhere)
 * and transport boilerplate (`tcp connect error: Connection refused (os error 111)`).
 */
function shortCause(e: unknown): string {
  let inner = e;
  for (let depth = 0; depth < 8 && inner instanceof Error && inner.cause !== undefined; depth++) {
    inner = inner.cause;
  }
  const msg = inner instanceof Error ? inner.message : String(inner);
  return msg
    .replace(/^error sending request for url \([^)]*\):\s*/, "")
    .replace(/^client error \([^)]*\):\s*/, "")
    .trim() || msg;
}

/**
 * A connection failure in a few words for a one-line message: `DNS lookup failed`, `connection
 * refused`, `timed out`, `network unreachable`, else the start of {@linkcode shortCause}'s text.
 */
export function briefCause(detail: string): string {
  const known: [RegExp, string][] = [
    [/dns error|failed to lookup|name or service not known|no such host/i, "DNS lookup failed"],
    [/connection refused/i, "connection refused"],
    [/timed out/i, "timed out"],
    [/network is unreachable|no route to host/i, "network unreachable"],
  ];
  for (const [re, words] of known) if (re.test(detail)) return words;
  return detail.length > 60 ? `${detail.slice(0, 57)}…` : detail;
}

async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

async function sizeOrZero(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
}

/** `bytes a-b/total` → start and total (null when `*`). */
function parseContentRange(h: string | null): { start: number; total: number | null } | null {
  const m = h && /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(h.trim());
  if (!m) return null;
  return { start: Number(m[1]), total: m[3] === "*" ? null : Number(m[3]) };
}

/** Writes all of `data` to `f`. */
export async function writeAll(f: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await f.write(data.subarray(off));
}

/** A failure worth retrying (the part file is kept). */
export class Transient extends Error {
  /**
   * @param message one line naming the file
   * @param connected whether the server answered at all (false: no connection could be made)
   * @param detail the bare cause, for the offline message
   */
  constructor(
    message: string,
    readonly connected: boolean,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** One file to download: where from, where to, and whom to tell. */
export interface FileJob {
  name: string;
  dir: string;
  model: LockedModel;
  file: LockedFile;
  url: string;
  dest: string;
  index: number;
  count: number;
  progress: (p: FetchProgress) => void;
  signal?: AbortSignal;
}

/**
 * Moves `job`'s verified `<dest>.part` into place and stamps it with `sha256` (the stamp comes
 * after the rename, see `cache.ts`); tells the listener it is done.
 */
export async function installPart(job: FileJob, sha256: string): Promise<void> {
  await Deno.rename(job.dest + ".part", job.dest);
  await markVerified(job.dest, sha256);
  reportProgress(job, "done", job.file.bytes);
}

/** Tells `job`'s listener where the file stands. */
export function reportProgress(
  job: FileJob,
  kind: FetchProgress["kind"],
  bytesDone: number,
  resumeFrom?: number,
): void {
  job.progress({
    kind,
    model: job.name,
    dir: job.dir,
    path: job.file.path,
    bytesDone,
    bytesTotal: job.file.bytes,
    resumeFrom,
    index: job.index,
    count: job.count,
  });
}

/** The error for a file whose size or sha256 differs from the lock (`where` says where it came from). */
export function mismatch(
  job: FileJob,
  got: { bytes: number; sha256: string | null },
  where: string,
) {
  const { file } = job;
  const what = got.sha256 === null
    ? `expected ${file.bytes} bytes, got ${got.bytes}`
    : got.bytes !== file.bytes
    ? `expected ${file.bytes} bytes with sha256 ${file.sha256}, got ${got.bytes} bytes with sha256 ${got.sha256}`
    : `expected sha256 ${file.sha256}, got ${got.sha256}`;
  return new WeightsError(
    "mismatch",
    `${job.name}/${file.path} failed verification (${where} ${job.url}): ${what}; the file was ` +
      `deleted — fetch again, and if it persists the lock or the mirror is wrong`,
  );
}

/**
 * One attempt at downloading `job` into `<dest>.part` and renaming it into place.
 *
 * @throws {Transient} for a failure worth retrying (the part is kept)
 * @throws {WeightsError} `mismatch` or `http`
 */
export async function downloadFile(job: FileJob): Promise<void> {
  const { file, signal } = job;
  const part = job.dest + ".part";
  let have = await sizeOrZero(part);
  if (have > file.bytes) {
    await removeIfExists(part);
    have = 0;
  }
  const report = (kind: FetchProgress["kind"], bytesDone: number, resumeFrom?: number) =>
    reportProgress(job, kind, bytesDone, resumeFrom);

  for (let restart = 0; restart < 2; restart++) {
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (have > 0) headers.range = `bytes=${have}-`;
    let res: Response;
    try {
      res = await fetch(job.url, { headers, signal, redirect: "follow" });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      const why = shortCause(e);
      throw new Transient(
        `cannot connect for ${job.name}/${file.path} to ${job.url} (${why})`,
        false,
        why,
        { cause: e },
      );
    }
    if (res.status === 416 && have > 0) {
      // The part is not a prefix the server can continue (e.g. already whole): start over.
      await res.body?.cancel();
      await removeIfExists(part);
      have = 0;
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel();
      const msg = `cannot download ${job.name}/${file.path}: HTTP ${res.status} ` +
        `${res.statusText} from ${res.url || job.url}`;
      if (res.status >= 500 || res.status === 429 || res.status === 408) {
        throw new Transient(msg, true, `HTTP ${res.status}`);
      }
      throw new WeightsError("http", msg);
    }
    let offset = 0;
    if (res.status === 206) {
      const cr = parseContentRange(res.headers.get("content-range"));
      if (!cr || cr.start !== have || (cr.total !== null && cr.total !== file.bytes)) {
        // A range we did not ask for, or a different file: drop the part and ask for everything.
        await res.body?.cancel();
        await removeIfExists(part);
        have = 0;
        continue;
      }
      offset = have;
    } else {
      const len = res.headers.get("content-length");
      if (len !== null && Number(len) !== file.bytes) {
        await res.body?.cancel();
        await removeIfExists(part);
        throw new WeightsError(
          "mismatch",
          `${job.name}/${file.path}: ${res.url || job.url} serves ${len} bytes, the lock says ` +
            `${file.bytes}; nothing was kept`,
        );
      }
    }
    if (!res.body) {
      throw new Transient(`empty response for ${job.name}/${file.path}`, true, "empty response");
    }

    let hash: Sha256;
    if (offset > 0) {
      report("hashing", 0);
      const pre = await hashPrefix(part, offset, (d) => report("hashing", d));
      if (pre.done !== offset) {
        await res.body.cancel();
        await removeIfExists(part);
        have = 0;
        continue;
      }
      hash = pre.hash;
    } else {
      hash = newSha256();
    }

    const out = await Deno.open(
      part,
      offset > 0 ? { write: true, append: true } : { write: true, create: true, truncate: true },
    );
    let done = offset;
    let last = 0;
    report("start", done, offset);
    try {
      for await (const chunk of res.body) {
        if (done + chunk.length > file.bytes) {
          out.close();
          await removeIfExists(part);
          throw mismatch(
            job,
            { bytes: done + chunk.length, sha256: null },
            "longer than the lock says from",
          );
        }
        await writeAll(out, chunk);
        hash.update(chunk);
        done += chunk.length;
        const now = performance.now();
        if (now - last > 100) {
          last = now;
          report("progress", done);
        }
      }
      await out.syncData();
    } catch (e) {
      try {
        out.close();
      } catch { /* already closed */ }
      if (e instanceof WeightsError) throw e;
      if (signal?.aborted) throw signal.reason;
      const why = shortCause(e);
      throw new Transient(
        `download of ${job.name}/${file.path} interrupted after ${done} of ${file.bytes} bytes ` +
          `(${why})`,
        true,
        why,
        { cause: e },
      );
    }
    out.close();
    if (done < file.bytes) {
      throw new Transient(
        `download of ${job.name}/${file.path} ended after ${done} of ${file.bytes} bytes`,
        true,
        "short body",
      );
    }
    const digest = hash.digest("hex");
    if (digest !== file.sha256) {
      await removeIfExists(part);
      throw mismatch(job, { bytes: done, sha256: digest }, "downloaded from");
    }
    await installPart(job, digest);
    return;
  }
  throw new Transient(
    `${job.url} kept refusing the requested range for ${job.name}/${file.path}`,
    true,
    "range refused",
  );
}
