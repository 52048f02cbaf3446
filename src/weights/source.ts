/**
 * Which model files a run uses, decided once for the pipeline, the CLI and the bench: a diffusers
 * folder (`--weights DIR`), a single-file checkpoint (`--weights FILE.safetensors`, configs from
 * `--config DIR` or SD 1.5's), no files (`--model synth`), or a locked model (`--model sd15`, the
 * lock's default) fetched into the cache first. Also which file of a folder each precision loads,
 * the default precision, where the tokenizer comes from when the weights carry none, and the
 * "Model hash" other SD tools record (the first 10 hex digits of the UNet file's sha256).
 *
 * Every failure is a {@linkcode UserError}: a bad option is a {@linkcode UsageError} naming it.
 *
 * @module
 */

import type { DType } from "../gpu/device.ts";
import { fileError, firstLine, UsageError, UserError } from "../errors.ts";
import { basename, extname, join, resolve } from "../std/path.ts";
import { existsSync } from "../std/fs.ts";
import { isVerified, stampPath } from "./cache.ts";
import { sha256FileInWorker } from "./sha256.ts";
import { type FetchProgress, OfflineError } from "./download.ts";
import { fetchModel } from "./fetch.ts";
import { type FileFilter, loadLock, LockError, variantFilter, type WeightsLock } from "./lock.ts";

/** Where the weights come from (what `StableDiffusion.load` loads). */
export type ModelSource =
  | { kind: "dir"; dir: string }
  | { kind: "single"; file: string; configDir?: string; tokenizerDir: string }
  | { kind: "synth"; tokenizerDir: string };

/** The name of the synthetic model (`--model synth`). */
export const SYNTH_MODEL = "synth";

/** The options that choose a model (a subset of the command line). */
export interface ModelOptions {
  /** `--model`; null when not given (the lock's default, sd15). */
  model: string | null;
  /** `--weights`: a diffusers folder or a single `.safetensors` file. */
  weights: string | null;
  /** `--config`: configs (and tokenizer) for a single-file checkpoint. */
  config: string | null;
  /** `--tokenizer`: a folder with `vocab.json` and `merges.txt`. */
  tokenizer: string | null;
  /** `--lock`: the weights lock to fetch by. */
  lock: string | null;
  /**
   * `--precision`; null picks f16 where the adapter has shader-f16 (and fetches the f16 files).
   */
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

/** Hooks of {@linkcode resolveModel} and the other functions that may fetch. */
export interface ResolveHooks {
  /** Download progress (default: none). */
  onProgress?: (p: FetchProgress) => void;
}

/** The precision when none is asked for: f16 where the adapter has shader-f16, else f32. */
export function defaultPrecision(gpu: { hasF16: boolean }): DType {
  return gpu.hasF16 ? "f16" : "f32";
}

/** A diffusers folder's weights file of each component, without its `.fp16`/`.safetensors`. */
const COMPONENT_FILES = {
  text_encoder: "model",
  unet: "diffusion_pytorch_model",
  vae: "diffusion_pytorch_model",
} as const;

/** A component of a diffusers folder that holds weights. */
export type Component = keyof typeof COMPONENT_FILES;

/**
 * The weights file of `component` in the diffusers folder `dir` for `precision`: the f16 file
 * first for f16, the f32 file first for f32, whichever exists; null when neither does.
 */
export function findComponentFile(
  dir: string,
  component: Component,
  precision: DType,
): string | null {
  const base = join(dir, component, COMPONENT_FILES[component]);
  const f16 = `${base}.fp16.safetensors`;
  const f32 = `${base}.safetensors`;
  for (const f of precision === "f16" ? [f16, f32] : [f32, f16]) if (existsSync(f)) return f;
  return null;
}

/** What a diffusers-layout folder holds, for messages about one that lacks something. */
export const DIFFUSERS_LAYOUT = "unet/, vae/, text_encoder/ (each: config.json + .safetensors " +
  "weights), tokenizer/ (vocab.json, merges.txt), scheduler/scheduler_config.json";

/** A component's weights file as messages name it: `unet/diffusion_pytorch_model[.fp16].safetensors`. */
function weightsName(component: Component): string {
  return `${component}/${COMPONENT_FILES[component]}[.fp16].safetensors`;
}

/**
 * {@linkcode findComponentFile}, failing with a message that names the file and what a diffusers
 * folder holds.
 *
 * @throws {UserError} when the folder has neither file
 */
export function componentFile(dir: string, component: Component, precision: DType): string {
  const f = findComponentFile(dir, component, precision);
  if (f !== null) return f;
  throw new UserError(
    `${dir} has no ${weightsName(component)}; a diffusers folder holds ${DIFFUSERS_LAYOUT}`,
  );
}

/**
 * What the diffusers folder `dir` lacks of what a run loads from it (relative paths, `unet/` for
 * a whole missing folder); empty when it is complete.
 */
export function missingFromFolder(dir: string): string[] {
  const missing: string[] = [];
  for (const component of ["unet", "vae", "text_encoder"] as const) {
    if (!present(join(dir, component))) {
      missing.push(`${component}/`);
      continue;
    }
    if (!present(join(dir, component, "config.json"))) missing.push(`${component}/config.json`);
    if (findComponentFile(dir, component, "f16") === null) missing.push(weightsName(component));
  }
  if (!present(join(dir, "tokenizer"))) missing.push("tokenizer/");
  else {
    for (const f of ["vocab.json", "merges.txt"]) {
      if (!present(join(dir, "tokenizer", f))) missing.push(`tokenizer/${f}`);
    }
  }
  if (!present(join(dir, "scheduler", "scheduler_config.json"))) {
    missing.push("scheduler/scheduler_config.json");
  }
  return missing;
}

/**
 * Checks that `--weights DIR` is a whole diffusers folder.
 *
 * @throws {UsageError} for a folder that is no Stable Diffusion folder at all, or one that lacks
 * files (named), each with what such a folder holds
 */
function checkFolder(dir: string): void {
  const missing = missingFromFolder(dir);
  if (missing.length === 0) return;
  const parts = ["model_index.json", "unet", "vae", "text_encoder"];
  if (!parts.some((p) => present(join(dir, p)))) {
    throw new UsageError(
      `--weights ${dir} is not a Stable Diffusion folder (no model_index.json, no unet/); a ` +
        `diffusers folder holds ${DIFFUSERS_LAYOUT}; or give a .safetensors checkpoint`,
    );
  }
  const shown = missing.slice(0, 3).join(", ");
  const more = missing.length > 3 ? ` and ${missing.length - 3} more` : "";
  throw new UsageError(
    `--weights ${dir} lacks ${shown}${more}; a diffusers folder holds ${DIFFUSERS_LAYOUT}`,
  );
}

/** The lock's files a run in `precision` needs (`--precision f32` fetches the f32 files). */
export function fetchSelection(precision: DType | null): FileFilter {
  return variantFilter(precision === "f32" ? "f32" : "f16");
}

/** The folder with the configs of `source` (none: SD 1.5's built-in configs). */
export function configDirOf(source: ModelSource): string | undefined {
  return source.kind === "dir"
    ? source.dir
    : source.kind === "single"
    ? source.configDir
    : undefined;
}

/** The CLIP tokenizer folder of `source`. */
export function tokenizerDirOf(source: ModelSource): string {
  return source.kind === "dir" ? join(source.dir, "tokenizer") : source.tokenizerDir;
}

/**
 * The lock (`--lock FILE`, `$SD_LOCK` or the bundled one) and the locked model the options name
 * (`--model`, else the lock's default).
 *
 * @throws {UsageError} for a `--lock` that cannot be read or a model the lock lacks
 */
export async function lockedModelOf(
  opts: ModelOptions,
): Promise<{ lock: WeightsLock; name: string }> {
  let lock: WeightsLock;
  try {
    lock = await loadLock(opts.lock ?? undefined);
  } catch (e) {
    // A --lock that cannot be read is a bad option; a broken bundled lock is not.
    if (e instanceof LockError && opts.lock !== null) throw new UsageError(e.message, { cause: e });
    throw e;
  }
  const name = opts.model !== null && opts.model !== SYNTH_MODEL ? opts.model : lock.default;
  if (!(name in lock.models)) {
    throw new UsageError(
      `unknown model "${name}"; use one of ${
        [...Object.keys(lock.models), SYNTH_MODEL].join(", ")
      } (or --weights PATH for local files)`,
    );
  }
  return { lock, name };
}

/**
 * Fetches the locked model the options name (the files their precision needs) into the cache;
 * returns the lock, the model's name and its folder.
 *
 * @throws {UsageError} for `--model synth` (no files), a bad `--lock` or an unknown model
 * @throws {WeightsError} when the download or its verification fails
 */
export async function fetchLockedModel(
  opts: ModelOptions,
  hooks: ResolveHooks = {},
): Promise<{ lock: WeightsLock; name: string; dir: string }> {
  if (opts.model === SYNTH_MODEL) {
    throw new UsageError("--model synth has no weights to fetch, only the CLIP tokenizer");
  }
  const { lock, name } = await lockedModelOf(opts);
  const dir = await fetchModel({
    lock,
    model: name,
    files: fetchSelection(opts.precision),
    ...hooks,
  });
  return { lock, name, dir };
}

/**
 * A file's sha256, from its cache stamp (`F.verified`, see `cache.ts`) when the file is still the
 * one stamped — so a fetched model passed as `--weights DIR` is not hashed again — else by reading
 * it (in a worker: the weights load meanwhile).
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
  try {
    return await sha256FileInWorker(path);
  } catch (e) {
    throw fileError(e, "cannot read", path);
  }
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
 * @throws {OfflineError} offline with nothing cached (the message says the ways out)
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
  return await fetchTokenizer(opts, hooks);
}

/**
 * Fetches only the CLIP tokenizer files of the locked model the options name (the lock's default
 * for `--model synth`) into the cache, verified as the lock says; returns their folder.
 *
 * @throws {UsageError} for a bad `--lock` or an unknown model
 * @throws {WeightsError} when the download or its verification fails; offline an
 * {@linkcode OfflineError} saying the ways out
 */
export async function fetchTokenizer(
  opts: ModelOptions,
  hooks: ResolveHooks = {},
): Promise<string> {
  const { lock, name } = await lockedModelOf(opts);
  try {
    const dir = await fetchModel({ lock, model: name, files: TOKENIZER_FILES, ...hooks });
    return join(dir, "tokenizer");
  } catch (e) {
    if (!(e instanceof OfflineError)) throw e;
    const who = opts.weights !== null
      ? ` that ${basename(opts.weights)} needs (a single file has none)`
      : opts.model === SYNTH_MODEL
      ? " that --model synth needs"
      : "";
    throw new OfflineError(
      e.host,
      e.reason,
      `cannot reach ${e.host} (${e.reason}) for the CLIP tokenizer${who}; pass --tokenizer DIR ` +
        `(a folder with vocab.json and merges.txt)${
          opts.weights !== null ? " or --config DIR with tokenizer/" : ""
        }, or run \`sd fetch --model synth\` once online (it fetches only the tokenizer)`,
      { cause: e },
    );
  }
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
    if (info.isDirectory) {
      checkFolder(path);
      return "dir";
    }
    if (extname(path).toLowerCase() !== ".safetensors") {
      throw new UsageError(
        `--weights ${path} is neither a folder nor a .safetensors file; give a diffusers folder or a single-file .safetensors checkpoint`,
      );
    }
    return "single";
  }
  if (opts.model === SYNTH_MODEL) return "synth";
  await lockedModelOf(opts);
  return "locked";
}

/**
 * Resolves the options' model choice, fetching a locked model's files into the cache when they
 * are missing (nothing is downloaded for `--weights` or `--model synth`).
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
          const f = findComponentFile(path, "unet", precision);
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
  const { lock, name, dir } = await fetchLockedModel(opts, hooks);
  const files = lock.models[name].files;
  return {
    source: { kind: "dir", dir },
    name,
    hash: (precision) => {
      const f = findComponentFile(dir, "unet", precision);
      const entry = f && files.find((x) => join(dir, ...x.path.split("/")) === f);
      return Promise.resolve(entry ? entry.sha256.slice(0, 10) : "unknown");
    },
  };
}
