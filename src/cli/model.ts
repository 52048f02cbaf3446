/**
 * Which model files a run uses: `--weights DIR` (a diffusers folder), `--weights FILE.safetensors`
 * (a single-file checkpoint, configs from `--config DIR` or SD 1.5's), `--model synth` (no files),
 * or a locked model (`--model sd15`, the default) fetched into the cache first. Also where the
 * tokenizer comes from when the weights carry none, and the "Model hash" other SD tools record
 * (the first 10 hex digits of the UNet file's sha256).
 *
 * @module
 */

import type { DType } from "../gpu/device.ts";
import type { ModelSource } from "../pipeline.ts";
import { basename, extname, join, resolve } from "../std/path.ts";
import { existsSync } from "../std/fs.ts";
import { isVerified, stampPath } from "../weights/cache.ts";
import { sha256FileInWorker } from "../weights/sha256.ts";
import { fetchModel, type FetchProgress, WeightsError } from "../weights/fetch.ts";
import {
  type FileFilter,
  loadLock,
  LockError,
  variantFilter,
  type WeightsLock,
} from "../weights/lock.ts";
import { firstLine, RunError, UsageError } from "./errors.ts";

/** The name of the synthetic model (`--model synth`). */
export const SYNTH_MODEL = "synth";

/** The options that choose a model (a subset of the command line). */
export interface ModelOptions {
  model: string | null;
  weights: string | null;
  config: string | null;
  tokenizer: string | null;
  lock: string | null;
  /** `--precision`; null when not given (the f16 files are fetched then). */
  precision: DType | null;
}

/** A chosen model, ready for `StableDiffusion.load`. */
export interface ResolvedModel {
  /** What the pipeline loads. */
  source: ModelSource;
  /** The name recorded as `Model:` (sd15, the folder's or file's name, synth). */
  name: string;
  /**
   * The first 10 hex digits of the UNet weights' sha256 for `Model hash:` (`synth` for synthetic
   * weights), given the precision the pipeline loads with (which picks the f16 or f32 file).
   */
  hash(precision: DType): Promise<string>;
}

/** Hooks of {@linkcode resolveModel}. */
export interface ResolveHooks {
  /** Download progress (default: fetch's own stderr meter, only on a terminal). */
  onProgress?: (p: FetchProgress) => void;
}

async function loadLockFor(opts: ModelOptions): Promise<WeightsLock> {
  try {
    return await loadLock(opts.lock ?? undefined);
  } catch (e) {
    // A --lock that cannot be read is a bad option; a broken bundled lock is not.
    if (e instanceof LockError && opts.lock !== null) throw new UsageError(e.message);
    throw e;
  }
}

function checkModelName(lock: WeightsLock, name: string): void {
  if (!(name in lock.models)) {
    throw new UsageError(
      `unknown model "${name}"; use one of ${
        [...Object.keys(lock.models), SYNTH_MODEL].join(", ")
      } (or --weights PATH for local files)`,
    );
  }
}

/**
 * A file's sha256, from its cache stamp (`F.verified`, see `weights/cache.ts`) when the file is
 * still the one stamped — so a fetched model passed as `--weights DIR` is not hashed again —
 * else by reading it (in a worker: the weights load meanwhile).
 */
async function fileSha256(path: string): Promise<string> {
  try {
    const stamp = JSON.parse(await Deno.readTextFile(stampPath(path))) as { sha256?: unknown };
    const size = (await Deno.stat(path)).size;
    if (
      typeof stamp.sha256 === "string" &&
      await isVerified(path, { bytes: size, sha256: stamp.sha256 })
    ) {
      return stamp.sha256;
    }
  } catch {
    // no stamp: hash the content
  }
  return await sha256FileInWorker(path);
}

/**
 * The UNet file the pipeline loads from a diffusers folder (the same choice as its `pickFile`):
 * the f16 file first for f16, the f32 file first for f32, whichever exists.
 */
export function unetFile(dir: string, precision: DType): string | null {
  const f16 = join(dir, "unet", "diffusion_pytorch_model.fp16.safetensors");
  const f32 = join(dir, "unet", "diffusion_pytorch_model.safetensors");
  for (const f of precision === "f16" ? [f16, f32] : [f32, f16]) if (existsSync(f)) return f;
  return null;
}

const TOKENIZER_FILES: FileFilter = (f) => f.path.startsWith("tokenizer/");

/** Whether `path` exists; false also when a parent is a file (a `--weights FILE` as a folder). */
function present(path: string): boolean {
  try {
    return existsSync(path);
  } catch {
    return false;
  }
}

function hasTokenizer(dir: string): boolean {
  return present(join(dir, "vocab.json")) && present(join(dir, "merges.txt"));
}

/**
 * The folder with CLIP's `vocab.json` and `merges.txt`: `--tokenizer DIR`, else `tokenizer/` of
 * `--config DIR` or of a `--weights` folder, else the cached tokenizer of the locked model
 * (fetching only the tokenizer files when missing).
 *
 * @throws {UsageError} when a given folder has no tokenizer
 * @throws {WeightsError} offline with nothing cached (the message says what to download)
 */
export async function resolveTokenizerDir(
  opts: ModelOptions,
  hooks: ResolveHooks = {},
): Promise<string> {
  if (opts.tokenizer !== null) {
    if (!hasTokenizer(opts.tokenizer)) {
      throw new UsageError(
        `--tokenizer ${opts.tokenizer} has no vocab.json and merges.txt; give CLIP's tokenizer folder (e.g. <model>/tokenizer)`,
      );
    }
    return opts.tokenizer;
  }
  for (const base of [opts.config, opts.weights]) {
    if (base !== null && hasTokenizer(join(base, "tokenizer"))) {
      return join(base, "tokenizer");
    }
  }
  if (opts.config !== null) {
    throw new UsageError(
      `--config ${opts.config} has no tokenizer/vocab.json; add the tokenizer there or pass --tokenizer DIR`,
    );
  }
  const lock = await loadLockFor(opts);
  const name = opts.model !== null && opts.model !== SYNTH_MODEL ? opts.model : lock.default;
  checkModelName(lock, name);
  let dir: string;
  try {
    dir = await fetchModel({ lock, model: name, files: TOKENIZER_FILES, ...hooks });
  } catch (e) {
    if (e instanceof WeightsError && e.code === "offline") {
      throw new RunError(
        `no CLIP tokenizer here: pass --tokenizer DIR (a folder with vocab.json and merges.txt) or --config DIR with tokenizer/, or let sd fetch it: ${e.message}`,
        { cause: e },
      );
    }
    throw e;
  }
  return join(dir, "tokenizer");
}

/**
 * Checks the model options without loading or downloading anything: a `--weights` path exists and
 * is a folder or a `.safetensors` file, a `--config` folder has configs, a `--model` is in the
 * lock. Returns which kind of model they name.
 *
 * @throws {UsageError} naming the option and what to do
 */
export async function checkModelOptions(
  opts: ModelOptions,
): Promise<"dir" | "single" | "synth" | "locked"> {
  if (opts.config !== null && !present(join(opts.config, "unet", "config.json"))) {
    throw new UsageError(
      `--config ${opts.config} has no unet/config.json; give a diffusers-layout folder`,
    );
  }
  if (opts.weights !== null) {
    const path = opts.weights;
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (e) {
      throw new UsageError(
        `--weights ${path}: ${
          e instanceof Deno.errors.NotFound ? "no such file or folder" : firstLine(e)
        }; give a diffusers folder or a .safetensors checkpoint (or run with --model synth)`,
      );
    }
    if (info.isDirectory) return "dir";
    if (extname(path).toLowerCase() !== ".safetensors") {
      throw new UsageError(
        `--weights ${path} is neither a folder nor a .safetensors file; give a diffusers folder or a single-file .safetensors checkpoint`,
      );
    }
    return "single";
  }
  if (opts.model === SYNTH_MODEL) return "synth";
  const lock = await loadLockFor(opts);
  checkModelName(lock, opts.model ?? lock.default);
  return "locked";
}

/**
 * Resolves the command line's model choice, fetching a locked model's files into the cache when
 * they are missing (nothing is downloaded for `--weights` or `--model synth`).
 *
 * @throws {UsageError} for a `--weights` path that does not exist or an unknown `--model`
 */
export async function resolveModel(
  opts: ModelOptions,
  hooks: ResolveHooks = {},
): Promise<ResolvedModel> {
  const kind = await checkModelOptions(opts);
  if (opts.weights !== null) {
    const path = opts.weights;
    if (kind === "dir") {
      return {
        source: { kind: "dir", dir: path },
        name: basename(resolve(path)),
        hash: async (precision) => {
          const f = unetFile(path, precision);
          return f ? (await fileSha256(f)).slice(0, 10) : "unknown";
        },
      };
    }
    const tokenizerDir = await resolveTokenizerDir(opts, hooks);
    const digest = fileSha256(path);
    digest.catch(() => {}); // awaited by hash(); loading reports a broken file first
    return {
      source: {
        kind: "single",
        file: path,
        tokenizerDir,
        ...(opts.config !== null ? { configDir: opts.config } : {}),
      },
      name: basename(path, extname(path)),
      hash: async () => (await digest).slice(0, 10),
    };
  }
  if (opts.model === SYNTH_MODEL) {
    return {
      source: { kind: "synth", tokenizerDir: await resolveTokenizerDir(opts, hooks) },
      name: SYNTH_MODEL,
      hash: () => Promise.resolve(SYNTH_MODEL),
    };
  }
  const lock = await loadLockFor(opts);
  const name = opts.model ?? lock.default;
  checkModelName(lock, name);
  const dir = await fetchModel({
    lock,
    model: name,
    files: variantFilter(opts.precision === "f32" ? "f32" : "f16"),
    ...hooks,
  });
  const files = lock.models[name].files;
  return {
    source: { kind: "dir", dir },
    name,
    hash: (precision) => {
      const f = unetFile(dir, precision);
      const entry = f && files.find((x) => join(dir, ...x.path.split("/")) === f);
      return Promise.resolve(entry ? entry.sha256.slice(0, 10) : "unknown");
    },
  };
}
