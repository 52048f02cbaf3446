/**
 * Fetching a locked model into the cache: streamed, hashed while streaming, resumed with HTTP
 * Range, renamed into place only when size and sha256 match the lock.
 *
 * One file's download: `F.part` grows from the response body while a sha256 hashes every byte;
 * after an interruption the next attempt (a retry in this run, or the next run) asks for
 * `Range: bytes=<part size>-`. A `206` whose `Content-Range` starts there appends to the part after
 * re-hashing the bytes already on disk; a `200` (a server that ignores Range) starts over from
 * byte 0. At the end, size and digest are compared with the lock: a match renames `F.part` to `F`
 * and writes the stamp (see `cache.ts`); a mismatch deletes the part and throws a
 * {@linkcode WeightsError} naming the file and both hashes.
 *
 * Concurrency: each model folder has one lock file, `.fetch.lock`, held with an exclusive OS
 * advisory lock (`flock`/`LockFileEx` through `Deno.FsFile.tryLock`) while anything in it is
 * written. The kernel drops the lock when its holder exits, however it exits, so there are no stale
 * locks to detect or break (the race that O_EXCL lock files have when two waiters break the same
 * stale lock); the lock file itself is never deleted, so every process locks the same inode. A
 * second process waits (reporting `waiting`), then finds the files stamped and downloads nothing.
 * Stamps are written atomically after the rename, so the lock-free fast path (all selected files
 * stamped) never sees a half-written file.
 *
 * @module
 */

import { dirname, join } from "../std/path.ts";
import { hashPrefix, newSha256, type Sha256 } from "./sha256.ts";
import { cacheRoot, clearVerified, markVerified, missingFiles, modelCacheDir } from "./cache.ts";
import {
  type FileFilter,
  type LockedFile,
  type LockedModel,
  lockedModel,
  variantFilter,
  type WeightsLock,
} from "./lock.ts";

/** What went wrong, for callers that branch on it (the message is for humans). */
export type WeightsErrorCode =
  | "mismatch" // size or sha256 differs from the lock; the file was deleted
  | "http" // the server answered with an error status
  | "offline" // no connection could be made
  | "interrupted"; // the transfer broke off; the part is kept for resuming

/** A failed fetch or verification; one line, naming the file. */
export class WeightsError extends Error {
  /** The kind of failure. */
  readonly code: WeightsErrorCode;
  /** @param code kind of failure @param message one line @param options cause */
  constructor(code: WeightsErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WeightsError";
    this.code = code;
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

/** Options of {@linkcode fetchModel}. */
export interface FetchModelOptions {
  /** The lock (see `loadLock`). */
  lock: WeightsLock;
  /** Model name; the lock's default when omitted. */
  model?: string;
  /** Cache root; `cacheRoot()` ($SD_CACHE, XDG, ~/.cache/sd) when omitted. */
  cacheDir?: string;
  /** Which files; `variantFilter("f16")` (what `--precision f16` needs) when omitted. */
  files?: FileFilter;
  /** Progress callback; by default a one-line meter on stderr, only when stderr is a terminal. */
  onProgress?: (p: FetchProgress) => void;
  /** Cancels; a partial download is kept for resuming. */
  signal?: AbortSignal;
  /** Retries of an interrupted transfer or a 5xx/429 answer within this call (default 3). */
  retries?: number;
  /** Delay before the first retry, doubled each time (default 1000 ms). */
  retryDelayMs?: number;
}

/** The outcome of {@linkcode verifyFile}. */
export interface VerifyResult {
  /** Size and digest both match. */
  ok: boolean;
  /** Actual size in bytes. */
  bytes: number;
  /** Actual sha256 (hex); null when the size already differed and the file was not hashed. */
  sha256: string | null;
}

/**
 * Hashes `path` and compares with `bytes` and `sha256` (the size first: a file of the wrong size
 * is not read).
 *
 * @example
 * ```ts
 * const r = await verifyFile("vocab.json", 1059962, "e089ad92…4349");
 * if (!r.ok) console.error(`got ${r.sha256}`);
 * ```
 */
export async function verifyFile(
  path: string,
  bytes: number,
  sha256: string,
): Promise<VerifyResult> {
  const info = await Deno.stat(path);
  if (info.size !== bytes) return { ok: false, bytes: info.size, sha256: null };
  const { hash, done } = await hashPrefix(path, info.size);
  const digest = hash.digest("hex");
  return { ok: done === bytes && digest === sha256, bytes: done, sha256: digest };
}

function mib(n: number): string {
  return (n / (1 << 20)).toFixed(1);
}

/** The default progress reporter: a meter on stderr, only when stderr is a terminal. */
export function stderrProgress(): (p: FetchProgress) => void {
  let tty = false;
  try {
    tty = Deno.stderr.isTerminal();
  } catch {
    tty = false;
  }
  if (!tty) return () => {};
  const enc = new TextEncoder();
  let started = 0;
  let from = 0;
  const write = (s: string) => Deno.stderr.writeSync(enc.encode(s));
  return (p) => {
    if (p.kind === "waiting") {
      write(`${p.model}: waiting for another sd process fetching into ${p.dir}\n`);
      return;
    }
    if (p.kind === "start") {
      started = performance.now();
      from = p.resumeFrom ?? 0;
    }
    const pct = p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 100;
    const secs = (performance.now() - started) / 1000;
    const rate = p.kind === "hashing" || p.kind === "start" || secs <= 0
      ? ""
      : `  ${mib((p.bytesDone - from) / secs)} MiB/s`;
    const what = p.kind === "hashing" ? "checking" : `${p.index}/${p.count}`;
    write(
      `\r\x1b[2K${p.model} ${what} ${p.path}  ${mib(p.bytesDone)}/${mib(p.bytesTotal)} MiB ` +
        `${pct}%${rate}${p.kind === "done" ? "\n" : ""}`,
    );
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
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

async function writeAll(f: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await f.write(data.subarray(off));
}

/** A failure worth retrying (the part file is kept). */
class Transient extends Error {
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

interface FileJob {
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

function mismatch(job: FileJob, got: { bytes: number; sha256: string | null }, where: string) {
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

/** One attempt at downloading `job` into `<dest>.part` and renaming it into place. */
async function attempt(job: FileJob): Promise<void> {
  const { file, signal } = job;
  const part = job.dest + ".part";
  let have = await sizeOrZero(part);
  if (have > file.bytes) {
    await removeIfExists(part);
    have = 0;
  }
  const report = (kind: FetchProgress["kind"], bytesDone: number, resumeFrom?: number) =>
    job.progress({
      kind,
      model: job.name,
      dir: job.dir,
      path: file.path,
      bytesDone,
      bytesTotal: file.bytes,
      resumeFrom,
      index: job.index,
      count: job.count,
    });

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
    await Deno.rename(part, job.dest);
    await markVerified(job.dest, digest);
    report("done", done);
    return;
  }
  throw new Transient(
    `${job.url} kept refusing the requested range for ${job.name}/${file.path}`,
    true,
    "range refused",
  );
}

function offlineMessage(
  name: string,
  dir: string,
  model: LockedModel,
  missing: { file: LockedFile; url: string }[],
  cause: string,
): string {
  const host = (() => {
    try {
      return new URL(missing[0]?.url ?? model.base).host;
    } catch {
      return model.base;
    }
  })();
  const fromBase = missing.filter((m) => m.url === model.base + m.file.path).map((m) =>
    m.file.path
  );
  const own = missing.filter((m) => m.url !== model.base + m.file.path).map((m) =>
    `${m.url} as ${m.file.path}`
  );
  const list = [
    ...(fromBase.length ? [`${model.base}{${fromBase.join(",")}}`] : []),
    ...own,
  ].join(" and ");
  return `cannot reach ${host} (${cause}) and model ${name} is not fully cached: download ` +
    `${list} into ${dir}${dir.endsWith("/") ? "" : "/"} keeping those paths (sizes and sha256 ` +
    `in the weights lock), or run without the network with --weights DIR or --model synth`;
}

async function acquireLock(
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

/**
 * Makes sure the selected files of a locked model are in the cache and verified, downloading what
 * is missing; returns the model's cache folder (diffusers layout).
 *
 * A file with a valid stamp is not touched (no hashing, no network). A file present without a
 * stamp (e.g. copied there by hand) is hashed once: a match is stamped, a mismatch deleted and
 * reported.
 *
 * @throws {WeightsError} `mismatch` (naming the file and both hashes), `http` (404, 403, …),
 * `offline` (one line: what to download, where to put it, and the offline alternatives), or
 * `interrupted` (after the retries; the part is kept and the next call resumes it)
 * @example
 * ```ts
 * const dir = await fetchModel({ lock: await loadLock(), model: "sd15" });
 * // dir = ~/.cache/sd/sd15-451f4fe1, with unet/, vae/, text_encoder/, tokenizer/, scheduler/
 * ```
 */
export async function fetchModel(opts: FetchModelOptions): Promise<string> {
  const name = opts.model ?? opts.lock.default;
  const model = lockedModel(opts.lock, name);
  const dir = modelCacheDir(opts.cacheDir ?? cacheRoot(), name, model);
  const files = model.files.filter(opts.files ?? variantFilter("f16"));
  const progress = opts.onProgress ?? stderrProgress();
  const retries = opts.retries ?? 3;
  const retryDelayMs = opts.retryDelayMs ?? 1000;
  const signal = opts.signal;

  if ((await missingFiles(dir, model, files)).length === 0) return dir;

  await Deno.mkdir(dir, { recursive: true });
  const lockFile = await acquireLock(dir, () =>
    progress({
      kind: "waiting",
      model: name,
      dir,
      path: "",
      bytesDone: 0,
      bytesTotal: 0,
      index: 0,
      count: 0,
    }), signal);
  try {
    // Re-check under the lock: another process may have finished some files meanwhile.
    const missing = await missingFiles(dir, model, files);
    let connected = false;
    for (const [i, m] of missing.entries()) {
      signal?.throwIfAborted();
      const job: FileJob = {
        name,
        dir,
        model,
        file: m.file,
        url: m.url,
        dest: m.path,
        index: i + 1,
        count: missing.length,
        progress,
        signal,
      };
      await Deno.mkdir(dirname(m.path), { recursive: true });
      await clearVerified(m.path);
      if (await adoptExisting(job)) continue;
      for (let tryNo = 0;; tryNo++) {
        try {
          await attempt(job);
          connected = true;
          break;
        } catch (e) {
          if (!(e instanceof Transient)) throw e;
          connected ||= e.connected;
          if (!connected) {
            const rest = missing.slice(i);
            throw new WeightsError(
              "offline",
              offlineMessage(name, dir, model, rest, e.detail),
              { cause: e },
            );
          }
          if (tryNo >= retries) {
            throw new WeightsError(
              "interrupted",
              `${e.message}; run the fetch again to resume`,
              { cause: e },
            );
          }
          await sleep(retryDelayMs * 2 ** tryNo, signal);
        }
      }
    }
  } finally {
    try {
      await lockFile.unlock();
    } finally {
      lockFile.close();
    }
  }
  return dir;
}

/** A file already at its place without a stamp: hash once; stamp a match, delete a mismatch. */
async function adoptExisting(job: FileJob): Promise<boolean> {
  let size: number;
  try {
    const info = await Deno.stat(job.dest);
    if (!info.isFile) return false;
    size = info.size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  const report = (bytesDone: number) =>
    job.progress({
      kind: "hashing",
      model: job.name,
      dir: job.dir,
      path: job.file.path,
      bytesDone,
      bytesTotal: job.file.bytes,
      index: job.index,
      count: job.count,
    });
  let got: VerifyResult;
  if (size !== job.file.bytes) {
    got = { ok: false, bytes: size, sha256: null };
  } else {
    report(0);
    const { hash, done } = await hashPrefix(job.dest, size, report);
    const digest = hash.digest("hex");
    got = { ok: digest === job.file.sha256, bytes: done, sha256: digest };
  }
  if (got.ok) {
    await markVerified(job.dest, job.file.sha256);
    return true;
  }
  await Deno.remove(job.dest);
  throw mismatch(job, got, "found in the cache, meant to come from");
}
