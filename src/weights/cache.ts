/**
 * The weights cache: where models live on disk and how a verified file is recognised without
 * hashing it again.
 *
 * Layout: `<cache>/<model>-<revision[0:8]>/` mirrors the repository (diffusers layout, so the
 * folder is what `--weights DIR` takes). Beside each verified file `F` lies `F.verified`, a JSON
 * stamp `{ bytes, mtimeMs, ino, sha256 }` written after `F` hashed to the lock's sha256; while the
 * file's size, mtime and inode still equal the stamp's, the file counts as verified and is never
 * re-hashed or re-downloaded. Other names the fetcher uses there: `F.part` (a download in
 * progress, resumable) and `.fetch.lock` (the folder's advisory lock).
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { join } from "../std/path.ts";
import { fileUrl, type LockedFile, type LockedModel } from "./lock.ts";

/** Suffix of the stamp written beside a verified file. */
export const STAMP_SUFFIX = ".verified";

/** What a stamp records about the file it vouches for. */
export interface VerifiedStamp {
  /** Size in bytes when verified. */
  bytes: number;
  /** Modification time (ms since the epoch) when verified (null where the platform has none). */
  mtimeMs: number | null;
  /** Inode when verified (null where the platform has none). */
  ino: number | null;
  /** The sha256 the content hashed to. */
  sha256: string;
  /** When it was verified (ISO 8601), for humans. */
  verifiedAt: string;
}

/** Reads an environment variable; undefined when unset or when env access is not granted. */
export type EnvGetter = (name: string) => string | undefined;

const denoEnv: EnvGetter = (name) => {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
};

/**
 * The cache root: `$SD_CACHE`, else `$XDG_CACHE_HOME/sd`, else `~/.cache/sd` (on Windows
 * `%LOCALAPPDATA%\sd`).
 *
 * @throws {Error} when none of these variables is set (no home directory)
 */
export function cacheRoot(env: EnvGetter = denoEnv): string {
  const explicit = env("SD_CACHE");
  if (explicit) return explicit;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "sd");
  if (Deno.build.os === "windows") {
    const local = env("LOCALAPPDATA");
    if (local) return join(local, "sd");
  }
  const home = env("HOME") ?? env("USERPROFILE");
  if (home) return join(home, ".cache", "sd");
  throw new UserError("no cache directory: set SD_CACHE (or XDG_CACHE_HOME or HOME)");
}

/** The folder of model `name` at `model`'s revision: `<root>/<name>-<revision[0:8]>`. */
export function modelCacheDir(root: string, name: string, model: LockedModel): string {
  return join(root, `${name}-${model.revision.slice(0, 8)}`);
}

/** Where `file` lives inside a model folder. */
export function cachedFilePath(modelDir: string, file: LockedFile): string {
  return join(modelDir, ...file.path.split("/"));
}

/** The stamp path for a file. */
export function stampPath(filePath: string): string {
  return filePath + STAMP_SUFFIX;
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Whether `filePath` carries a stamp vouching that it hashes to `expected.sha256` and is still the
 * same file (size, mtime and inode unchanged). Never reads the file's content.
 */
export async function isVerified(
  filePath: string,
  expected: { bytes: number; sha256: string },
): Promise<boolean> {
  const info = await statOrNull(filePath);
  if (!info || !info.isFile || info.size !== expected.bytes) return false;
  let stamp: VerifiedStamp;
  try {
    stamp = JSON.parse(await Deno.readTextFile(stampPath(filePath)));
  } catch {
    return false; // missing or unreadable stamp: not known to be verified
  }
  return stamp.sha256 === expected.sha256 &&
    stamp.bytes === info.size &&
    stamp.mtimeMs === (info.mtime?.getTime() ?? null) &&
    stamp.ino === (info.ino ?? null);
}

/**
 * Records that `filePath` (as it is now on disk) hashed to `sha256`. Written atomically (temporary
 * file, then rename), so a reader sees either no stamp or a whole one.
 */
export async function markVerified(filePath: string, sha256: string): Promise<void> {
  const info = await Deno.stat(filePath);
  const stamp: VerifiedStamp = {
    bytes: info.size,
    mtimeMs: info.mtime?.getTime() ?? null,
    ino: info.ino ?? null,
    sha256,
    verifiedAt: new Date().toISOString(),
  };
  const target = stampPath(filePath);
  const tmp = `${target}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(stamp) + "\n");
  await Deno.rename(tmp, target);
}

/** Removes a file's stamp, if any. */
export async function clearVerified(filePath: string): Promise<void> {
  try {
    await Deno.remove(stampPath(filePath));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** The files of a selection not yet verified in `modelDir`, with their paths and URLs. */
export async function missingFiles(
  modelDir: string,
  model: LockedModel,
  files: readonly LockedFile[],
): Promise<{ file: LockedFile; path: string; url: string }[]> {
  const missing = [];
  for (const file of files) {
    const path = cachedFilePath(modelDir, file);
    if (!(await isVerified(path, file))) missing.push({ file, path, url: fileUrl(model, file) });
  }
  return missing;
}
