/**
 * Fetching a locked model into the cache: the files missing or unverified are downloaded one by
 * one (`download.ts`: resumed with HTTP Range, verified against the lock), an interrupted transfer
 * or a 5xx/429 answer retried with a doubling delay, and a failure to connect at all reported
 * once with the host and the ways out. A failed fetch leaves the cache as it was, except for
 * completed files and partial downloads kept for resuming: the lock file and the folders it
 * created that are still empty are removed.
 *
 * A file whose lock entry carries its text (`content`, see `lock.ts`) is written from the lock —
 * into `F.part`, then renamed and stamped like a download — and costs no request.
 *
 * Concurrency: the model folder is locked while anything in it is written (`folder_lock.ts`). A
 * second process waits (reporting `waiting`), then finds the files stamped and downloads nothing.
 * Stamps are written atomically after the rename, so the lock-free fast path (all selected files
 * stamped) never sees a half-written file.
 *
 * @module
 */

import { fileError } from "../errors.ts";
import { basename, dirname, resolve } from "../std/path.ts";
import { hashPrefix } from "./sha256.ts";
import { cacheRoot, clearVerified, markVerified, missingFiles, modelCacheDir } from "./cache.ts";
import {
  briefCause,
  downloadFile,
  type FetchProgress,
  type FileJob,
  installPart,
  mismatch,
  OfflineError,
  reportProgress,
  Transient,
  WeightsError,
  writeAll,
} from "./download.ts";
import { type FolderLock, lockFolder, sleep } from "./folder_lock.ts";
import {
  contentBytes,
  type FileFilter,
  lockedModel,
  variantFilter,
  type WeightsLock,
} from "./lock.ts";

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
  /** Progress callback (default: none; the CLI passes its stderr meter). */
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

/** The host (and port) of `url`, for messages; the text itself when it is no URL. */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/**
 * The one line for a model that cannot be fetched because nothing answers: the host, and the ways
 * out — local weights, the files copied into the cache folder by hand (diffusers layout, as the
 * lock lists them), `sd fetch` later, and `--model synth` only when it can work (its tokenizer
 * is cached).
 */
function offlineMessage(
  name: string,
  dir: string,
  lock: WeightsLock,
  host: string,
  reason: string,
  synthWorks: boolean,
): string {
  const lockName = basename(lock.source);
  return `cannot reach ${host} (${reason}) for ${name}; use --weights DIR (diffusers folder) or ` +
    `--weights FILE.safetensors, copy ${lockName}'s files into ${dir} (diffusers layout; ` +
    `SD_CACHE moves it)${synthWorks ? ", use --model synth (test weights)" : ""}, or run ` +
    `\`sd fetch\` once online`;
}

/** The folders from `dir` up that do not exist yet, deepest first. */
async function missingFolders(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (let d = resolve(dir);; d = dirname(d)) {
    try {
      await Deno.stat(d);
      return out;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) return out;
    }
    out.push(d);
    if (dirname(d) === d) return out;
  }
}

/** Removes each folder of `dirs` (in order) that is empty; keeps the others. */
async function removeEmptyFolders(dirs: readonly string[]): Promise<void> {
  for (const d of dirs) {
    try {
      await Deno.remove(d); // fails unless empty
    } catch {
      // not empty, or already gone: keep it
    }
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
 * `offline` (an {@linkcode OfflineError}: one line naming the host and the offline ways out), or
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
  const progress = opts.onProgress ?? (() => {});
  const retries = opts.retries ?? 3;
  const retryDelayMs = opts.retryDelayMs ?? 1000;
  const signal = opts.signal;

  if ((await missingFiles(dir, model, files)).length === 0) return dir;

  // What this call creates and leaves empty (a failed fetch) is removed again: the cache stays
  // as it was. Completed files, and partial downloads to resume, stay with their folders.
  const created = await missingFolders(dir);
  let folderLock: FolderLock;
  try {
    folderLock = await lockFolder(dir, () =>
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
  } catch (e) {
    await removeEmptyFolders(created);
    throw fileError(e, "cannot create the cache folder", dir);
  }
  const createdInside: string[] = [];
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
      for (const d of await missingFolders(dirname(m.path))) createdInside.push(d);
      await Deno.mkdir(dirname(m.path), { recursive: true });
      await clearVerified(m.path);
      if (m.file.content !== undefined) {
        await writeContent(job, m.file.content);
        continue;
      }
      if (await adoptExisting(job)) continue;
      for (let tryNo = 0;; tryNo++) {
        try {
          await downloadFile(job);
          connected = true;
          break;
        } catch (e) {
          if (!(e instanceof Transient)) throw e;
          connected ||= e.connected;
          if (!connected) {
            const host = hostOf(m.url);
            const reason = briefCause(e.detail);
            const synthWorks = name === opts.lock.default &&
              !missing.some((x) => x.file.path.startsWith("tokenizer/"));
            throw new OfflineError(
              host,
              reason,
              offlineMessage(name, dir, opts.lock, host, reason, synthWorks),
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
    // Sub-folders go while the lock is held (nobody else writes in the folder meanwhile); the
    // model folder itself after: a process that has just created its lock file there keeps it.
    await removeEmptyFolders(createdInside.sort((a, b) => b.length - a.length));
    await folderLock.release();
    await removeEmptyFolders(created);
  }
  return dir;
}

/**
 * Writes a file the lock carries inline (`content`, whose size and sha256 `parseLock` checked)
 * into `<dest>.part`, then renames it into place and stamps it, as a download ends; whatever was
 * at `dest` is replaced. No network.
 */
async function writeContent(job: FileJob, content: string): Promise<void> {
  reportProgress(job, "start", 0);
  const out = await Deno.open(job.dest + ".part", { write: true, create: true, truncate: true });
  try {
    await writeAll(out, contentBytes(content));
    await out.syncData();
  } finally {
    out.close();
  }
  await installPart(job, job.file.sha256);
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
  const report = (bytesDone: number) => reportProgress(job, "hashing", bytesDone);
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
