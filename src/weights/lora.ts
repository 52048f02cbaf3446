/**
 * LoRA files: reading a kohya/A1111 or diffusers/PEFT `.safetensors` LoRA and mapping each of its
 * modules to the model parameter it updates, `W += scale · (alpha / rank) · up · down`.
 *
 * Formats (the key mapping follows diffusers' `loaders/lora_conversion_utils.py`):
 * - kohya/A1111: `lora_unet_<module path, "." → "_">` and `lora_te_text_model_<…>`, with
 *   `.lora_down.weight`, `.lora_up.weight` and `.alpha` (a scalar; absent: alpha = rank).
 *   Because the underscores hide the module path, the names are matched against the model's own
 *   parameter keys with their dots replaced (a table built from the model, not a list of rules).
 * - diffusers/PEFT: `unet.<module>.lora_A.weight` / `.lora_B.weight` and
 *   `text_encoder.text_model.<module>…`; also diffusers' older spellings (`.lora.down.weight`,
 *   `.lora_linear_layer.up.weight`, attention processors' `to_q_lora.down.weight`).
 *
 * Linear layers take down [r, in] and up [out, r]; convolutions (LoCon) down [r, in, k, k] and
 * up [out, r, 1, 1], merged as `up.reshape(out, r) @ down.reshape(r, −1)` (a 1×1 LoRA may also
 * target a 1×1 convolution stored as a linear layer and the other way round).
 *
 * Unmatched modules: a file none of whose modules maps to a layer of the model is an error (a LoRA
 * for another architecture); a file of which only some modules map is used, and the caller warns
 * with the count of those left out (A1111 warns too). Anything else wrong — a key of no known
 * LoRA role, LoHa/LoKr/DoRA tensors, a missing half, a shape that fits neither the other half nor
 * the layer, NaN/Inf values, not a safetensors file — is a {@linkcode UserError} naming the file
 * and the key.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { SafetensorsError, SafeTensorsFile } from "./safetensors.ts";
import { newSha256 } from "./sha256.ts";

/** The model components a LoRA can update. */
export type LoraComponent = "unet" | "text_encoder";

/** The parameters a LoRA may target, by component: checkpoint key → shape. */
export type LoraTargets = Record<LoraComponent, ReadonlyMap<string, readonly number[]>>;

/** One low-rank update of one weight, as read from the file (f32). */
export interface LoraModule {
  /** Which model the weight belongs to. */
  component: LoraComponent;
  /** The parameter key the update is added to (`…attn1.to_q.weight`). */
  key: string;
  /** The module's name in the file (for messages). */
  source: string;
  /** r. */
  rank: number;
  /** alpha (= rank when the file has none). */
  alpha: number;
  /** down [r, in·k·k] (`lora_down` / `lora_A`), row-major. */
  down: Float32Array;
  /** up [out, r] (`lora_up` / `lora_B`), row-major. */
  up: Float32Array;
}

/** A LoRA file read and mapped onto a model. */
export interface LoraFile {
  /** The file's path. */
  path: string;
  /** The mapped modules, in file order. */
  modules: LoraModule[];
  /** Names of the file's modules that map to no layer of the model. */
  unmatched: string[];
}

type Role = "down" | "up" | "alpha";

/** Key endings and the LoRA half they hold, longest first where one ends another. */
const ROLE_SUFFIXES: readonly [string, Role][] = [
  [".lora_down.weight", "down"], // kohya
  [".lora_up.weight", "up"],
  [".lora_A.weight", "down"], // PEFT
  [".lora_B.weight", "up"],
  [".lora_linear_layer.down.weight", "down"], // diffusers (text encoder, older)
  [".lora_linear_layer.up.weight", "up"],
  ["_lora.down.weight", "down"], // diffusers attention processors: to_q_lora.down.weight
  ["_lora.up.weight", "up"],
  [".lora.down.weight", "down"], // diffusers LoRACompatibleLinear/Conv
  [".lora.up.weight", "up"],
  [".alpha", "alpha"],
];

/** Tensor names of LoRA variants this program does not merge, by what they are. */
const UNSUPPORTED: readonly [RegExp, string][] = [
  [/\.hada_/, "LoHa"],
  [/\.lokr_/, "LoKr"],
  [/\.lora_mid\./, "LoCon with a Tucker mid tensor"],
  [/\.dora_scale$|lora_magnitude_vector/, "DoRA"],
  [/\.oft_|\.oft_blocks$/, "OFT"],
  [/\.diff(_b)?$/, "full-weight difference"],
  [/\.(w_norm|b_norm)$/, "norm-layer"],
];

/** kohya prefixes → component. */
const KOHYA_PREFIXES: readonly [string, LoraComponent | null][] = [
  ["lora_unet_", "unet"],
  ["lora_te_", "text_encoder"],
  ["lora_te1_", null], // SDXL's two text encoders
  ["lora_te2_", null],
];

/** Where a module of the file points: component and the module path in the model's spelling. */
interface ModuleName {
  component: LoraComponent | null;
  /** A dotted module path, or (kohya) the path with "_" for ".". */
  path: string;
  flat: boolean;
}

function parseModuleName(module: string): ModuleName {
  for (const [prefix, component] of KOHYA_PREFIXES) {
    if (!module.startsWith(prefix)) continue;
    let path = module.slice(prefix.length);
    if (component === "text_encoder" && path.startsWith("text_model_")) {
      path = path.slice("text_model_".length);
    }
    return { component, path, flat: true };
  }
  const dot = module.indexOf(".");
  const head = dot < 0 ? module : module.slice(0, dot);
  const component: LoraComponent | null = head === "unet"
    ? "unet"
    : head === "text_encoder"
    ? "text_encoder"
    : null;
  let path = component ? module.slice(dot + 1) : module;
  if (component === "text_encoder" && path.startsWith("text_model.")) {
    path = path.slice("text_model.".length);
  }
  // diffusers' attention-processor spelling: attn1.processor.to_out_lora → attn1.to_out.0
  path = path.replace(/\.processor\./, ".").replace(/(^|\.)to_out$/, "$1to_out.0");
  return { component: component ?? (head === "text_encoder_2" ? null : "unet"), path, flat: false };
}

/** The weights of one component by module path, dotted and with "_" for "." (kohya). */
class ModuleIndex {
  readonly dotted = new Map<string, string>();
  readonly flat = new Map<string, string | null>(); // null: two modules flatten alike

  constructor(params: ReadonlyMap<string, readonly number[]>) {
    for (const [key, shape] of params) {
      if (!key.endsWith(".weight") || (shape.length !== 2 && shape.length !== 4)) continue;
      const module = key.slice(0, -".weight".length);
      this.dotted.set(module, key);
      const flat = module.replaceAll(".", "_");
      this.flat.set(flat, this.flat.has(flat) ? null : key);
    }
  }

  lookup(name: ModuleName): string | undefined {
    return (name.flat ? this.flat.get(name.path) : this.dotted.get(name.path)) ?? undefined;
  }
}

function fail(path: string, what: string): UserError {
  return new UserError(`${path}: ${what}`);
}

function checkFinite(path: string, key: string, values: Float32Array): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw fail(path, `${key} contains NaN/Inf (at ${i}); the LoRA file is corrupt`);
    }
  }
}

/**
 * Checks the halves of one module against each other and against the target weight `shape`
 * ([out, in] or [out, in, k, k]); returns the rank.
 */
function checkShapes(
  path: string,
  source: string,
  down: readonly number[],
  up: readonly number[],
  key: string,
  shape: readonly number[],
): number {
  const bad = (what: string) =>
    fail(
      path,
      `${source}: ${what} (down [${down}], up [${up}], ${key} [${shape}]); a LoRA for another model?`,
    );
  if ((down.length !== 2 && down.length !== 4) || (up.length !== 2 && up.length !== 4)) {
    throw bad("the LoRA halves must be 2-D (linear) or 4-D (convolution)");
  }
  const r = down[0];
  if (r < 1 || up[1] !== r || (up.length === 4 && (up[2] !== 1 || up[3] !== 1))) {
    throw bad("up must be [out, rank] or [out, rank, 1, 1] with down's rank");
  }
  const kDown = down.length === 4 ? down[2] * down[3] : 1;
  const kTarget = shape.length === 4 ? shape[2] * shape[3] : 1;
  const sameKernel = down.length === 4 && shape.length === 4
    ? down[2] === shape[2] && down[3] === shape[3]
    : kDown === kTarget;
  if (up[0] !== shape[0] || down[1] !== shape[1] || !sameKernel) {
    throw bad("the update's shape does not fit the layer");
  }
  return r;
}

/**
 * Reads the LoRA at `path` and maps its modules onto `targets` (the parameters of the model's
 * UNet and text encoder).
 *
 * @throws {UserError} for a file that is not a LoRA this program can merge, or that fits no
 *   layer of the model (see the module documentation)
 */
export async function readLora(path: string, targets: LoraTargets): Promise<LoraFile> {
  let file: SafeTensorsFile;
  try {
    file = await SafeTensorsFile.open(path);
  } catch (e) {
    if (e instanceof SafetensorsError) {
      throw new UserError(
        `${e.message}; a LoRA must be a .safetensors file (kohya or diffusers/PEFT format)`,
        { cause: e },
      );
    }
    throw e;
  }
  try {
    return await mapLora(file, targets);
  } finally {
    file.close();
  }
}

async function mapLora(file: SafeTensorsFile, targets: LoraTargets): Promise<LoraFile> {
  const path = file.path;
  const groups = new Map<string, Partial<Record<Role, string>>>();
  for (const key of file.tensors.keys()) {
    const unsupported = UNSUPPORTED.find(([re]) => re.test(key));
    if (unsupported) {
      throw fail(
        path,
        `${key} belongs to a ${
          unsupported[1]
        } network, which sd cannot merge; only LoRA/LoCon (lora_down/lora_up, lora_A/lora_B) files are supported`,
      );
    }
    const role = ROLE_SUFFIXES.find(([suffix]) => key.endsWith(suffix));
    if (!role) {
      throw fail(
        path,
        `unknown key ${key}: not a LoRA tensor (…lora_down.weight, …lora_up.weight, …alpha, …lora_A.weight, …lora_B.weight)`,
      );
    }
    const module = key.slice(0, -role[0].length);
    const g = groups.get(module) ?? {};
    g[role[1]] = key;
    groups.set(module, g);
  }
  if (groups.size === 0) throw fail(path, "holds no tensors; not a LoRA file");

  const index = {
    unet: new ModuleIndex(targets.unet),
    text_encoder: new ModuleIndex(targets.text_encoder),
  };
  const modules: LoraModule[] = [];
  const unmatched: string[] = [];
  for (const [module, g] of groups) {
    if (!g.down || !g.up) {
      throw fail(
        path,
        `${module} has no ${g.down ? "up" : "down"} half; the LoRA file is incomplete`,
      );
    }
    const name = parseModuleName(module);
    const key = name.component ? index[name.component].lookup(name) : undefined;
    if (!name.component || !key) {
      unmatched.push(module);
      continue;
    }
    const component = name.component;
    const r = checkShapes(
      path,
      module,
      file.info(g.down).shape,
      file.info(g.up).shape,
      key,
      targets[component].get(key)!,
    );
    const down = await file.readF32(g.down);
    const up = await file.readF32(g.up);
    checkFinite(path, g.down, down);
    checkFinite(path, g.up, up);
    let alpha = r;
    if (g.alpha) {
      const a = await file.readF32(g.alpha);
      if (a.length !== 1) {
        throw fail(path, `${g.alpha} must be one number (got ${a.length} values)`);
      }
      checkFinite(path, g.alpha, a);
      alpha = a[0];
    }
    modules.push({ component, key, source: module, rank: r, alpha, down, up });
  }
  if (modules.length === 0) {
    const sdxl = unmatched.some((m) => /^lora_te[12]_|^text_encoder_2\./.test(m));
    throw fail(
      path,
      `none of its ${unmatched.length} modules (e.g. ${
        unmatched[0]
      }) matches a layer of this model; a LoRA for another architecture${
        sdxl
          ? " (SDXL: it has two text encoders)"
          : " (SDXL, SD 2, or not a Stable Diffusion 1.x LoRA?)"
      }`,
    );
  }
  const seen = new Map<string, string>();
  for (const m of modules) {
    const other = seen.get(m.key);
    if (other) throw fail(path, `${other} and ${m.source} both update ${m.key}`);
    seen.set(m.key, m.source);
  }
  return { path, modules, unmatched };
}

/** The targets a model offers: each store's parameter keys and shapes. */
export function loraTargets(
  stores: Record<LoraComponent, { params: readonly { key: string; shape: readonly number[] }[] }>,
): LoraTargets {
  const map = (ps: readonly { key: string; shape: readonly number[] }[]) =>
    new Map(ps.map((p) => [p.key, p.shape] as const));
  return { unet: map(stores.unet.params), text_encoder: map(stores.text_encoder.params) };
}

/**
 * A1111's short hash of a LoRA (the `Lora hashes:` infotext field): the file's
 * `sshs_model_hash` metadata if present, else the sha256 of the bytes after the safetensors
 * header (kohya's and sd-webui-additional-networks' "addnet" hash) — the first 12 hex digits.
 */
export async function loraShortHash(path: string): Promise<string> {
  const f = await Deno.open(path, { read: true });
  try {
    const head = new Uint8Array(8);
    let got = 0;
    while (got < 8) {
      const n = await f.read(head.subarray(got));
      if (n === null) throw new UserError(`${path}: too short for a safetensors file`);
      got += n;
    }
    const headerLen = Number(new DataView(head.buffer).getBigUint64(0, true));
    const header = new Uint8Array(headerLen);
    for (let off = 0; off < headerLen;) {
      const n = await f.read(header.subarray(off));
      if (n === null) throw new UserError(`${path}: header past the end of the file`);
      off += n;
    }
    try {
      const meta = JSON.parse(new TextDecoder().decode(header)).__metadata__;
      const given = meta?.sshs_model_hash;
      if (typeof given === "string" && given !== "") return given.slice(0, 12);
    } catch {
      // readLora reports a malformed header; the hash of the data is still defined
    }
    const hash = newSha256();
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = await f.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
    return hash.digest("hex").slice(0, 12);
  } finally {
    f.close();
  }
}
