/**
 * `weights.lock`: the pinned files of each model (URL, byte size, sha256) — parsed, validated with
 * messages that name the offending field, and loaded from `--lock FILE`, `$SD_LOCK` or the copy
 * shipped beside the program.
 *
 * ```json
 * { "version": 1, "default": "sd15", "models": { "sd15": {
 *   "revision": "451f4fe…", "base": "https://…/resolve/451f4fe…/",
 *   "files": [ { "path": "unet/diffusion_pytorch_model.fp16.safetensors", "bytes": 1719125304,
 *                "sha256": "c839…", "variants": ["f16"] } ] } } }
 * ```
 *
 * A file's URL is `base + path` unless it has its own absolute `url`. A file without `variants` is
 * always needed; one with `variants` only when one of them is selected (`f16`, `f32`, `single`).
 *
 * A small text file that no server publishes a sha256 for (a config that is not an LFS file) may
 * carry its text inline instead: `{ "path": "unet/config.json", "bytes": 743, "sha256": "…",
 * "content": "{\n  \"_class_name\": …" }`. `bytes` and `sha256` are still given and must be
 * those of the content's UTF-8 encoding (checked here, so a lock whose content disagrees is
 * refused); the fetch writes the content into the cache, verified and stamped like a download,
 * and never asks the network for it. Such a file has no `url`.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { fromFileUrl } from "../std/path.ts";
import { newSha256 } from "./sha256.ts";

/** One pinned file of a model. */
export interface LockedFile {
  /** Relative path inside the model folder (diffusers layout), `/`-separated. */
  path: string;
  /** Exact size in bytes. */
  bytes: number;
  /** sha256 of the content, 64 lowercase hex digits. */
  sha256: string;
  /** Absolute URL overriding `base + path` (e.g. a file shared with another repository). */
  url?: string;
  /** Selections that need this file (`f16`, `f32`, `single`); absent: every selection does. */
  variants?: string[];
  /**
   * The file's text, written into the cache instead of downloaded; its UTF-8 encoding is `bytes`
   * long and hashes to `sha256` (`parseLock` checks both). Never together with `url`.
   */
  content?: string;
  /** Free text for humans. */
  note?: string;
}

/** One model of the lock: a repository revision and its files. */
export interface LockedModel {
  /** Repository revision (commit) the URLs pin; its first 8 characters name the cache folder. */
  revision: string;
  /** Absolute http(s) URL ending in `/`; a file's URL is `base + path`. */
  base: string;
  /** The files, unique paths. */
  files: LockedFile[];
  /** Free text for humans. */
  note?: string;
}

/** A parsed, validated lock. */
export interface WeightsLock {
  /** Format version; only 1 exists. */
  version: 1;
  /** Model used when none is named (the first model when the lock names none). */
  default: string;
  /** Models by name (`sd15`, `sd14`, …). */
  models: Record<string, LockedModel>;
  /** Where the lock was read from (a path or URL), for messages. */
  source: string;
}

/** A lock that cannot be read or is malformed; the message names the source and the field. */
export class LockError extends UserError {
  /** @param message one line: `<source>: <field>: <what is wrong>` */
  constructor(message: string) {
    super(message);
    this.name = "LockError";
  }
}

/** The lock shipped beside the program (`deno compile --include weights.lock` embeds it). */
export const BUNDLED_LOCK_URL: URL = new URL("../../weights.lock", import.meta.url);

const MODEL_NAME = /^[a-z0-9][a-z0-9._-]*$/;
const REVISION = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SHA256 = /^[0-9a-f]{64}$/;
const VARIANT = /^[a-z0-9][a-z0-9._-]*$/;

type Json = unknown;

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkKeys(
  fail: (field: string, msg: string) => never,
  field: string,
  obj: Record<string, Json>,
  allowed: readonly string[],
): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      fail(`${field}.${k}`, `unknown field (allowed: ${allowed.join(", ")})`);
    }
  }
}

function httpUrl(v: Json): URL | null {
  if (typeof v !== "string") return null;
  try {
    const u = new URL(v);
    return u.protocol === "http:" || u.protocol === "https:" ? u : null;
  } catch {
    return null;
  }
}

function checkPath(p: string): string | null {
  if (p === "") return "empty path";
  if (p.startsWith("/") || /^[A-Za-z]:/.test(p)) return "must be relative";
  if (p.includes("\\")) return "use / as the separator";
  for (const seg of p.split("/")) {
    if (seg === "" || seg === "." || seg === "..") return `bad segment "${seg}"`;
    if (seg.endsWith(".part") || seg.endsWith(".verified") || seg.startsWith(".fetch")) {
      return `"${seg}" collides with the cache's own files`;
    }
  }
  return null;
}

/** The bytes a file entry's inline `content` stands for: its UTF-8 encoding. */
export function contentBytes(content: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(content);
}

/**
 * Checks an entry's inline `content` (already known: `bytes` and `sha256` are well-formed): text,
 * no `url`, and `bytes`/`sha256` those of its UTF-8 encoding.
 */
function checkContent(
  fail: (field: string, msg: string) => never,
  ff: string,
  fo: Record<string, Json>,
): void {
  if (typeof fo.content !== "string") fail(`${ff}.content`, "expected the file's text");
  if (fo.url !== undefined) {
    fail(`${ff}.url`, 'a file with "content" is written from the lock, not downloaded: drop "url"');
  }
  const data = contentBytes(fo.content as string);
  if (data.length !== fo.bytes) {
    fail(
      `${ff}.bytes`,
      `the content is ${data.length} bytes (UTF-8), not ${fo.bytes}; correct "bytes" or "content"`,
    );
  }
  const digest = newSha256().update(data).digest("hex");
  if (digest !== fo.sha256) {
    fail(
      `${ff}.sha256`,
      `the content hashes to ${digest}, not ${fo.sha256}; correct "sha256" or "content"`,
    );
  }
}

/**
 * Parses and validates lock text. `source` names the lock in messages.
 *
 * @throws {LockError} naming the source and the first bad field
 * @example
 * ```ts
 * const lock = parseLock(await Deno.readTextFile("weights.lock"), "weights.lock");
 * lock.models.sd15.files.length; // 13
 * ```
 */
export function parseLock(text: string, source: string): WeightsLock {
  const fail = (field: string, msg: string): never => {
    throw new LockError(`${source}: ${field}: ${msg}`);
  };
  let root: Json;
  try {
    root = JSON.parse(text);
  } catch (e) {
    throw new LockError(`${source}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(root)) fail("(root)", "expected an object");
  const r = root as Record<string, Json>;
  checkKeys(fail, "(root)", r, ["version", "default", "models", "note"]);
  if (r.version !== 1) fail("version", `expected 1, got ${JSON.stringify(r.version)}`);
  if (!isObject(r.models)) fail("models", "expected an object of models");
  const models: Record<string, LockedModel> = {};
  for (const [name, m] of Object.entries(r.models as Record<string, Json>)) {
    const mf = `models.${name}`;
    if (!MODEL_NAME.test(name)) fail(mf, "model names are lowercase letters, digits, . _ -");
    if (!isObject(m)) fail(mf, "expected an object");
    const mo = m as Record<string, Json>;
    checkKeys(fail, mf, mo, ["revision", "base", "files", "note"]);
    if (typeof mo.revision !== "string" || !REVISION.test(mo.revision)) {
      fail(`${mf}.revision`, "expected a revision string (letters, digits, . _ -)");
    }
    const base = httpUrl(mo.base);
    if (!base) fail(`${mf}.base`, "expected an absolute http(s) URL");
    if (!(mo.base as string).endsWith("/")) fail(`${mf}.base`, 'must end with "/"');
    if (!Array.isArray(mo.files) || mo.files.length === 0) {
      fail(`${mf}.files`, "expected a non-empty array");
    }
    if (mo.note !== undefined && typeof mo.note !== "string") fail(`${mf}.note`, "expected text");
    const files: LockedFile[] = [];
    const seen = new Set<string>();
    (mo.files as Json[]).forEach((f, i) => {
      const ff = `${mf}.files[${i}]`;
      if (!isObject(f)) fail(ff, "expected an object");
      const fo = f as Record<string, Json>;
      checkKeys(fail, ff, fo, ["path", "bytes", "sha256", "url", "variants", "content", "note"]);
      if (typeof fo.path !== "string") fail(`${ff}.path`, "expected a string");
      const pathErr = checkPath(fo.path as string);
      if (pathErr) fail(`${ff}.path`, `${pathErr} (${JSON.stringify(fo.path)})`);
      if (seen.has(fo.path as string)) fail(`${ff}.path`, `duplicate path ${fo.path}`);
      seen.add(fo.path as string);
      if (typeof fo.bytes !== "number" || !Number.isSafeInteger(fo.bytes) || fo.bytes < 0) {
        fail(`${ff}.bytes`, `expected a non-negative integer, got ${JSON.stringify(fo.bytes)}`);
      }
      if (typeof fo.sha256 !== "string" || !SHA256.test(fo.sha256)) {
        fail(`${ff}.sha256`, "expected 64 lowercase hex digits");
      }
      if (fo.url !== undefined && !httpUrl(fo.url)) {
        fail(`${ff}.url`, "expected an absolute http(s) URL");
      }
      if (fo.variants !== undefined) {
        if (
          !Array.isArray(fo.variants) || fo.variants.length === 0 ||
          !fo.variants.every((v) => typeof v === "string" && VARIANT.test(v))
        ) {
          fail(`${ff}.variants`, 'expected a non-empty array of names like "f16"');
        }
      }
      if (fo.content !== undefined) checkContent(fail, ff, fo);
      if (fo.note !== undefined && typeof fo.note !== "string") fail(`${ff}.note`, "expected text");
      const file: LockedFile = {
        path: fo.path as string,
        bytes: fo.bytes as number,
        sha256: fo.sha256 as string,
      };
      if (fo.url !== undefined) file.url = fo.url as string;
      if (fo.variants !== undefined) file.variants = [...(fo.variants as string[])];
      if (fo.content !== undefined) file.content = fo.content as string;
      if (fo.note !== undefined) file.note = fo.note as string;
      files.push(file);
    });
    const model: LockedModel = {
      revision: mo.revision as string,
      base: mo.base as string,
      files,
    };
    if (mo.note !== undefined) model.note = mo.note as string;
    models[name] = model;
  }
  const names = Object.keys(models);
  if (names.length === 0) fail("models", "no models");
  let def = names[0];
  if (r.default !== undefined) {
    if (typeof r.default !== "string" || !(r.default in models)) {
      fail("default", `expected one of the models (${names.join(", ")})`);
    }
    def = r.default as string;
  }
  return { version: 1, default: def, models, source };
}

function envLock(): string | undefined {
  try {
    return Deno.env.get("SD_LOCK") || undefined;
  } catch {
    return undefined; // no --allow-env: the variable cannot matter
  }
}

/**
 * Loads a lock: `path` (the CLI's `--lock FILE`) if given, else `$SD_LOCK`, else the lock shipped
 * beside the program ({@linkcode BUNDLED_LOCK_URL}).
 *
 * @throws {LockError} when the file cannot be read or is malformed
 * @example
 * ```ts
 * const lock = await loadLock(); // the repository's weights.lock
 * const custom = await loadLock("mirror.lock");
 * ```
 */
export async function loadLock(path?: string): Promise<WeightsLock> {
  const chosen = path ?? envLock();
  const where: string | URL = chosen ?? BUNDLED_LOCK_URL;
  const source = typeof where === "string" ? where : fromFileUrl(where);
  let text: string;
  try {
    text = await Deno.readTextFile(where);
  } catch (e) {
    const how = chosen === undefined ? "" : path !== undefined ? " (--lock)" : " ($SD_LOCK)";
    throw new LockError(`${source}${how}: cannot read the weights lock: ${(e as Error).message}`);
  }
  return parseLock(text, source);
}

/**
 * The named model of `lock` (its default when `name` is undefined).
 *
 * @throws {LockError} listing the models the lock has
 */
export function lockedModel(lock: WeightsLock, name?: string): LockedModel {
  const n = name ?? lock.default;
  const m = lock.models[n];
  if (!m) {
    throw new LockError(
      `${lock.source}: no model "${n}" (it has ${Object.keys(lock.models).join(", ")})`,
    );
  }
  return m;
}

/**
 * The download URL of `file`: its own `url`, else `model.base + file.path` (for a file with
 * `content`, which is never downloaded, only a name for messages).
 */
export function fileUrl(model: LockedModel, file: LockedFile): string {
  return file.url ?? model.base + file.path;
}

/** Chooses which of a model's files to fetch. */
export type FileFilter = (file: LockedFile) => boolean;

/**
 * A filter keeping the files every selection needs (no `variants`) plus those of `variants`:
 * `variantFilter("f16")` is what `--precision f16` needs, `variantFilter("f32")` what `--precision
 * f32` needs, `variantFilter("single")` the single-file checkpoint with the tokenizer and configs.
 */
export function variantFilter(...variants: string[]): FileFilter {
  return (file) => !file.variants || file.variants.some((v) => variants.includes(v));
}
