/**
 * Where images go and how they are written: names from the prompt's slug and the seed, never
 * overwriting an existing file (`-1`, `-2`, … appended), and atomically — the bytes go to a
 * temporary file in the same directory, which then takes its final name in one step, so no reader
 * (and no Ctrl-C) ever sees half a PNG.
 *
 * @module
 */

import { basename, dirname, extname, join } from "../std/path.ts";
import { fileError, UsageError } from "../errors.ts";

/** Longest slug taken from a prompt, in characters. */
export const MAX_SLUG = 40;
/** …and in UTF-8 bytes (file names hold 255 bytes; the seed, suffixes and `.tmp` need room). */
export const MAX_SLUG_BYTES = 100;

const utf8 = new TextEncoder();

/**
 * A file-name-safe slug of a prompt, the same on Windows, macOS and Linux: NFC, lower case, the
 * letters and digits of any script kept (with their combining marks), every run of anything else
 * (spaces, punctuation, the characters Windows reserves, emoji, controls) turned into one `-`; at
 * most {@linkcode MAX_SLUG} characters and {@linkcode MAX_SLUG_BYTES} bytes, cut at a word
 * boundary where one is near; `image` when nothing is left. It never ends in a dot or a space.
 *
 * @example
 * ```ts
 * slugify("A Café at Night, oil on canvas!"); // "a-café-at-night-oil-on-canvas"
 * slugify("夜の猫"); // "夜の猫"
 * slugify("🐱🐶"); // "image"
 * ```
 */
export function slugify(prompt: string, max = MAX_SLUG): string {
  const s = prompt.slice(0, 16 * max).normalize("NFC").toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M}]+/gu, "-").replace(/^[-\p{M}]+|-+$/gu, "");
  let chars = Array.from(s);
  if (chars.length > max) {
    const dash = chars.lastIndexOf("-", max);
    chars = chars.slice(0, dash >= max / 2 ? dash : max);
  }
  while (utf8.encode(chars.join("")).length > MAX_SLUG_BYTES) chars.pop();
  return chars.join("").replace(/-+$/, "").normalize("NFC") || "image";
}

/** The default file name of an image: `<slug>-<seed>.png`. */
export function imageName(prompt: string, seed: bigint): string {
  return `${slugify(prompt)}-${seed}.png`;
}

const OTHER_IMAGE_EXT = new Set([".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"]);

/** An `--out` value resolved: a file to write, or a directory to name files in. */
export type OutTarget = { kind: "file"; path: string } | { kind: "dir"; path: string };

function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch (e) {
    // Missing, or a path through a file: nothing there (creating it will say why it fails).
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
}

/**
 * Resolves `out` (`--out` or a batch line's `"out"`; null = the current directory): an existing
 * directory or a name without `.png` is a directory, a name ending in `.png` a file. Creates the
 * directory if needed and checks it is writable.
 *
 * @throws {UsageError} when the place cannot be written, naming it and what to do
 */
export function resolveOut(out: string | null, field = "--out"): OutTarget {
  const path = out ?? ".";
  const info = statOrNull(path);
  let target: OutTarget;
  if (info?.isDirectory) target = { kind: "dir", path };
  else if (extname(path).toLowerCase() === ".png") target = { kind: "file", path };
  else if (info) {
    throw new UsageError(
      `${field} ${path} is an existing file but not a .png; give a .png name or a directory`,
    );
  } else if (OTHER_IMAGE_EXT.has(extname(path).toLowerCase())) {
    throw new UsageError(`${field} ${path}: sd writes PNG only; give a .png name or a directory`);
  } else target = { kind: "dir", path };
  const dir = target.kind === "dir" ? path : dirname(path);
  checkWritable(dir, field);
  return target;
}

function checkWritable(dir: string, field: string): void {
  const reason = (e: unknown) => (e as Error).message.split("\n")[0];
  try {
    Deno.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new UsageError(
      `cannot create the directory ${dir} (${field}): ${reason(e)}; choose a writable place`,
    );
  }
  const probe = join(dir, `.sd-probe-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  try {
    Deno.writeFileSync(probe, new Uint8Array(0), { createNew: true });
    Deno.removeSync(probe);
  } catch (e) {
    throw new UsageError(
      `cannot write to ${dir} (${field}): ${reason(e)}; choose a writable place`,
    );
  }
}

/**
 * The path an image would be written to before the never-overwrite suffix is applied: in a
 * folder `<slug>-<seed>.png`; a file `NAME.png` as given, or `NAME-<seed>.png` for each image of a
 * batch (so the names say which seed is which, apart from the `-1`, `-2` suffix).
 */
export function plannedPath(
  target: OutTarget,
  prompt: string,
  seed: bigint,
  batch = false,
): string {
  if (target.kind === "dir") return join(target.path, imageName(prompt, seed));
  if (!batch) return target.path;
  const ext = extname(target.path);
  return `${target.path.slice(0, target.path.length - ext.length)}-${seed}${ext}`;
}

/** The folder an `--out` target writes into (a batch line's `"out"` is relative to it). */
export function outFolder(target: OutTarget): string {
  return target.kind === "dir" ? target.path : dirname(target.path);
}

/** How {@linkcode SafeWriter} writes a file's bytes (`Deno.writeFile`; tests inject failures). */
export type WriteFile = (
  path: string,
  bytes: Uint8Array,
  options: { createNew: boolean },
) => Promise<void>;

/** `x.png`, `x-1.png`, `x-2.png`, …: the k-th candidate name for `path`. */
export function candidate(path: string, k: number): string {
  if (k === 0) return path;
  const ext = extname(path);
  return `${path.slice(0, path.length - ext.length)}-${k}${ext}`;
}

/**
 * Writes files atomically and without overwriting, remembering its temporary files so that an
 * interrupt handler can remove them ({@linkcode removeTemporaries}).
 */
export class SafeWriter {
  readonly #temporaries = new Set<string>();
  readonly #writeFile: WriteFile;

  /** @param writeFile how bytes reach the disk (default `Deno.writeFile`) */
  constructor(
    writeFile: WriteFile = (path, bytes, options) => Deno.writeFile(path, bytes, options),
  ) {
    this.#writeFile = writeFile;
  }

  /**
   * Writes `bytes` to `path`, or to the first of `path-1`, `path-2`, … that does not exist; returns
   * the path written. The name is claimed with a hard link from a finished temporary file (which
   * fails if the name exists, so two processes never take the same name); where the file system
   * has no hard links, with an exclusive create and a rename.
   */
  async writeNew(path: string, bytes: Uint8Array): Promise<string> {
    const dir = dirname(path);
    const tmp = join(dir, `.${basename(path)}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.tmp`);
    this.#temporaries.add(tmp);
    try {
      await this.#writeFile(tmp, bytes, { createNew: true });
      for (let k = 0;; k++) {
        const name = candidate(path, k);
        if (await this.#claim(tmp, name)) return name;
      }
    } catch (e) {
      throw fileError(e, "cannot write", path, "choose another --out");
    } finally {
      await Deno.remove(tmp).catch(() => {}); // gone already, or not ours to report
      this.#temporaries.delete(tmp);
    }
  }

  /** Gives `tmp`'s content the name `name` unless `name` exists; false when it does. */
  async #claim(tmp: string, name: string): Promise<boolean> {
    try {
      await Deno.link(tmp, name);
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) return false;
      if (e instanceof Deno.errors.PermissionDenied) throw e;
    }
    // No hard links here (e.g. FAT, some network file systems): reserve, then replace.
    try {
      (await Deno.open(name, { createNew: true, write: true })).close();
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) return false;
      throw e;
    }
    this.#temporaries.add(name);
    try {
      await Deno.rename(tmp, name);
    } catch (e) {
      await Deno.remove(name).catch(() => {});
      throw e;
    } finally {
      this.#temporaries.delete(name);
    }
    return true;
  }

  /** Removes every temporary file still on disk (synchronously: for a signal handler). */
  removeTemporaries(): void {
    for (const path of this.#temporaries) {
      try {
        Deno.removeSync(path);
      } catch {
        // already gone
      }
    }
    this.#temporaries.clear();
  }
}
