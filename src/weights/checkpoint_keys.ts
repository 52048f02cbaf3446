/**
 * Key names of a single-file SD 1.x checkpoint (`v1-5-pruned-emaonly.safetensors`: the original
 * CompVis names `model.diffusion_model.*`, `first_stage_model.*`,
 * `cond_stage_model.transformer.text_model.*`) → the diffusers names of each component (`unet`,
 * `vae`, `text_encoder` — the latter with its `text_model.` prefix, as in `model.safetensors`).
 *
 * Every rename is in the one table {@linkcode MODULES} below; it follows diffusers' conversion code
 * (https://github.com/huggingface/diffusers/blob/main/src/diffusers/loaders/single_file_utils.py,
 * `convert_ldm_unet_checkpoint` / `convert_ldm_vae_checkpoint` / `convert_ldm_clip_checkpoint`,
 * and its inverse
 * https://github.com/huggingface/diffusers/blob/main/scripts/convert_diffusers_to_original_stable_diffusion.py).
 * Block numbering depends on the UNet and VAE configs (blocks, `layers_per_block`, which blocks
 * attend), so the table is expanded per config:
 *
 * - UNet `input_blocks.k`: k = 0 is `conv_in`; then per down block b, `layers_per_block` layers
 *   (`.0` resnet, `.1` transformer when the block attends) and, except after the last block, one
 *   downsampler (`.0.op`). `output_blocks.k`: per up block b, `layers_per_block + 1` layers, the
 *   last of each block but the final one also holding the upsampler (`.1.conv`, or `.2.conv` after a
 *   transformer). `middle_block.0/1/2` = resnet, transformer, resnet.
 * - VAE: `encoder.down.b.block.j`, `decoder.up.(n-1-b).block.j` (the decoder counts its blocks in
 *   reverse), `mid.block_1/2`, `mid.attn_1` whose q/k/v/proj_out are 1×1 convolutions in the
 *   original and linear layers in diffusers (transform `squeeze_attn_1x1`: [out, in, 1, 1] →
 *   [out, in]); `nin_shortcut` → `conv_shortcut`, `norm_out` → `conv_norm_out`.
 * - Text encoder: `cond_stage_model.transformer.text_model.X` → `text_model.X` (checkpoints saved
 *   with old transformers lack the `text_model.` level: `cond_stage_model.transformer.X` maps the
 *   same way).
 *
 * Keys a loader ignores (the DDPM schedule buffers such as `alphas_cumprod`, `betas`; `model_ema.*`;
 * the autoencoder's training loss) map to `null`. Any other key that the table does not produce is
 * reported ({@linkcode UnknownCheckpointKeyError}), never dropped silently.
 *
 * @module
 */

import { UserError } from "../errors.ts";

/** The component a checkpoint tensor belongs to. */
export type CheckpointComponent = "unet" | "vae" | "text_encoder";

/** A tensor transform to apply after renaming. */
export type CheckpointTransform = "squeeze_attn_1x1";

/** Where a checkpoint tensor goes. */
export interface CheckpointKeyTarget {
  /** The component. */
  component: CheckpointComponent;
  /** The diffusers name within that component's file. */
  name: string;
  /**
   * `squeeze_attn_1x1`: drop the trailing 1×1 dimensions ([out, in, 1, 1] → [out, in]; the data
   * bytes are unchanged; a no-op on a tensor already [out, in]).
   */
  transform?: CheckpointTransform;
}

/** The fields of the UNet's diffusers `config.json` that the key numbering depends on. */
export interface UNetKeyConfig {
  /** Resnets per down block (up blocks have one more). */
  layers_per_block: number;
  /** One entry per block (only the count matters here). */
  block_out_channels: readonly number[];
  /** `CrossAttnDownBlock2D` (attends) or `DownBlock2D`, per block. */
  down_block_types: readonly string[];
  /** `UpBlock2D` or `CrossAttnUpBlock2D`, per block. */
  up_block_types: readonly string[];
  /** `UNetMidBlock2DCrossAttn` (the default; the only kind SD 1.x has). */
  mid_block_type?: string | null;
}

/** The fields of the VAE's diffusers `config.json` that the key numbering depends on. */
export interface VaeKeyConfig {
  /** Resnets per encoder block (decoder blocks have one more). */
  layers_per_block: number;
  /** One entry per block (only the count matters here). */
  block_out_channels: readonly number[];
  /** Whether the mid blocks have attention (default true). */
  mid_block_add_attention?: boolean;
}

/** The configs the mapping depends on: pass the parsed `unet/config.json` and `vae/config.json`. */
export interface CheckpointKeyConfig {
  /** UNet config. */
  unet: UNetKeyConfig;
  /** VAE config. */
  vae: VaeKeyConfig;
}

/** SD 1.x only: said wherever a checkpoint of another family is recognised. */
const SD1_ONLY = "which sd does not support (it runs SD 1.x)";

/**
 * What a checkpoint whose keys SD 1.x lacks probably is, and what to do ("" when it is not
 * recognised): SDXL (`conditioner.embedders.*`, `label_emb`), SD 2.x (OpenCLIP's
 * `cond_stage_model.model.*`), a LoRA (`lora_*` keys).
 */
export function unknownKeysAdvice(keys: readonly string[]): string {
  if (
    keys.some((k) =>
      k.startsWith("conditioner.embedders.") || k.startsWith("model.diffusion_model.label_emb.")
    )
  ) {
    return `it looks like an SDXL checkpoint, ${SD1_ONLY}`;
  }
  if (keys.some((k) => k.startsWith("cond_stage_model.model."))) {
    return `it looks like an SD 2.x checkpoint (OpenCLIP text encoder), ${SD1_ONLY}`;
  }
  if (keys.some((k) => /(^|[._])lora(_up|_down|_A|_B|_unet|_te)?[._]/.test(k))) {
    return "it looks like a LoRA, not a checkpoint: pass it with --lora FILE";
  }
  return "";
}

/**
 * What to tell the user when a single-file checkpoint's tensors have other shapes than its
 * configs declare (`configDir`: the `--config` folder, else SD 1.5's configs were used): an SD 2.x
 * or SDXL UNet is recognised by its cross-attention width (1024, 2048; SD 1.x: 768).
 */
export function shapeMismatchAdvice(
  wrong: readonly { key: string; found: readonly number[] }[],
  configDir?: string,
): string {
  const context = wrong.find((w) => w.key.endsWith("attn2.to_k.weight"))?.found[1];
  if (context === 1024) return `it looks like an SD 2.x model, ${SD1_ONLY}`;
  if (context === 2048) return `it looks like an SDXL model, ${SD1_ONLY}`;
  if (configDir !== undefined) {
    return `give --config the folder of this checkpoint's own configs (SD 1.x models only)`;
  }
  return "not SD 1.5's size: add --config DIR with this SD 1.x model's diffusers configs " +
    "(SD 2.x and SDXL are not supported)";
}

/** Keys that neither the table nor the ignore list knows; the message names the first ones. */
export class UnknownCheckpointKeyError extends UserError {
  /** All unknown keys. */
  readonly keys: string[];
  /** @param keys the unknown keys @param source the checkpoint, for the message */
  constructor(keys: string[], source = "checkpoint") {
    const shown = keys.slice(0, 2).join(", ");
    const more = keys.length > 2 ? ` and ${keys.length - 2} more` : "";
    const advice = unknownKeysAdvice(keys) ||
      "sd reads SD 1.x checkpoints with the original (CompVis) key names";
    super(
      `${source}: ${keys.length} key${keys.length === 1 ? "" : "s"} of no known SD 1.x ` +
        `component (${shown}${more}); ${advice}`,
    );
    this.name = "UnknownCheckpointKeyError";
    this.keys = keys;
  }
}

// ---------------------------------------------------------------------------------------------
// The table.

/** Inner names of one module: original suffix → diffusers suffix (each with .weight and .bias). */
interface Inner {
  /** Sub-module renames; `""` is the module's own weight/bias. */
  renames?: Readonly<Record<string, string>>;
  /** Sub-modules whose `.weight` needs {@linkcode CheckpointTransform}. */
  squeeze?: readonly string[];
  /** Sub-module names kept as they are (tested against the whole suffix without .weight/.bias). */
  same?: RegExp;
  /** Whole suffixes (no .weight/.bias split) kept as they are, e.g. CLIP's `position_ids`. */
  sameExact?: readonly string[];
}

/** A module with its own weight and bias (conv, linear, norm). */
const PARAM: Inner = { renames: { "": "" } };

/** UNet ResBlock (openaimodel.py) → diffusers ResnetBlock2D. */
const UNET_RESNET: Inner = {
  renames: {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
  },
};

/** UNet SpatialTransformer → diffusers Transformer2DModel: the same names. */
const UNET_TRANSFORMER: Inner = {
  same:
    /^(norm|proj_in|proj_out|transformer_blocks\.\d+\.(norm[123]|attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.0\.proj|ff\.net\.2))$/,
};

/** VAE ResnetBlock (model.py) → diffusers ResnetBlock2D. */
const VAE_RESNET: Inner = {
  renames: {
    norm1: "norm1",
    conv1: "conv1",
    norm2: "norm2",
    conv2: "conv2",
    nin_shortcut: "conv_shortcut",
  },
};

/** VAE AttnBlock (1×1-conv q/k/v/proj_out) → diffusers Attention (linear to_q/k/v/out). */
const VAE_ATTN: Inner = {
  renames: { norm: "group_norm", q: "to_q", k: "to_k", v: "to_v", proj_out: "to_out.0" },
  squeeze: ["q", "k", "v", "proj_out"],
};

/** CLIP text transformer (transformers' CLIPTextModel): the same names. */
const CLIP_TEXT: Inner = {
  same:
    /^(embeddings\.(token_embedding|position_embedding)|encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|layer_norm1|layer_norm2|mlp\.fc1|mlp\.fc2)|final_layer_norm)$/,
  sameExact: ["embeddings.position_ids"],
};

/**
 * Which index set a row ranges over (computed from the configs by {@linkcode indexSets}):
 * `once` one row; `down` each (b, j < L) with `i` its input block; `downAttn` those whose block
 * attends; `downsample` each b but the last with `i` its input block; `up` each (b, j ≤ L) with
 * `o` its output block; `upAttn` those whose block attends; `upsample` each b but the last with
 * `o` its output block and `s` the upsampler's slot; `vaeDown` each (b, j < L); `vaeDownsample`
 * each b but the last; `vaeUp` each (b, j ≤ L) with `r` = n-1-b; `vaeUpsample` each b but the
 * last with `r` = n-1-b; `vaeAttn` once when the mid block attends.
 */
type Range =
  | "once"
  | "down"
  | "downAttn"
  | "downsample"
  | "up"
  | "upAttn"
  | "upsample"
  | "vaeDown"
  | "vaeDownsample"
  | "vaeUp"
  | "vaeUpsample"
  | "vaeAttn";

/** One row: original module prefix → diffusers module prefix, with `{x}` index placeholders. */
interface ModuleRule {
  component: CheckpointComponent;
  range: Range;
  from: string;
  to: string;
  inner: Inner;
}

const U = "model.diffusion_model.";
const V = "first_stage_model.";
const T = "cond_stage_model.transformer.";

/** Every rename (original → diffusers), one row per module kind. */
// deno-fmt-ignore
const MODULES: readonly ModuleRule[] = [
  // UNet
  { component: "unet", range: "once", from: `${U}time_embed.0`, to: "time_embedding.linear_1", inner: PARAM },
  { component: "unet", range: "once", from: `${U}time_embed.2`, to: "time_embedding.linear_2", inner: PARAM },
  { component: "unet", range: "once", from: `${U}input_blocks.0.0`, to: "conv_in", inner: PARAM },
  { component: "unet", range: "down", from: `${U}input_blocks.{i}.0`, to: "down_blocks.{b}.resnets.{j}", inner: UNET_RESNET },
  { component: "unet", range: "downAttn", from: `${U}input_blocks.{i}.1`, to: "down_blocks.{b}.attentions.{j}", inner: UNET_TRANSFORMER },
  { component: "unet", range: "downsample", from: `${U}input_blocks.{i}.0.op`, to: "down_blocks.{b}.downsamplers.0.conv", inner: PARAM },
  { component: "unet", range: "once", from: `${U}middle_block.0`, to: "mid_block.resnets.0", inner: UNET_RESNET },
  { component: "unet", range: "once", from: `${U}middle_block.1`, to: "mid_block.attentions.0", inner: UNET_TRANSFORMER },
  { component: "unet", range: "once", from: `${U}middle_block.2`, to: "mid_block.resnets.1", inner: UNET_RESNET },
  { component: "unet", range: "up", from: `${U}output_blocks.{o}.0`, to: "up_blocks.{b}.resnets.{j}", inner: UNET_RESNET },
  { component: "unet", range: "upAttn", from: `${U}output_blocks.{o}.1`, to: "up_blocks.{b}.attentions.{j}", inner: UNET_TRANSFORMER },
  { component: "unet", range: "upsample", from: `${U}output_blocks.{o}.{s}.conv`, to: "up_blocks.{b}.upsamplers.0.conv", inner: PARAM },
  { component: "unet", range: "once", from: `${U}out.0`, to: "conv_norm_out", inner: PARAM },
  { component: "unet", range: "once", from: `${U}out.2`, to: "conv_out", inner: PARAM },
  // VAE (encoder and decoder rows differ only in their prefix)
  ...(["encoder", "decoder"] as const).flatMap((part): ModuleRule[] => [
    { component: "vae", range: "once", from: `${V}${part}.conv_in`, to: `${part}.conv_in`, inner: PARAM },
    { component: "vae", range: "once", from: `${V}${part}.mid.block_1`, to: `${part}.mid_block.resnets.0`, inner: VAE_RESNET },
    { component: "vae", range: "vaeAttn", from: `${V}${part}.mid.attn_1`, to: `${part}.mid_block.attentions.0`, inner: VAE_ATTN },
    { component: "vae", range: "once", from: `${V}${part}.mid.block_2`, to: `${part}.mid_block.resnets.1`, inner: VAE_RESNET },
    { component: "vae", range: "once", from: `${V}${part}.norm_out`, to: `${part}.conv_norm_out`, inner: PARAM },
    { component: "vae", range: "once", from: `${V}${part}.conv_out`, to: `${part}.conv_out`, inner: PARAM },
  ]),
  { component: "vae", range: "vaeDown", from: `${V}encoder.down.{b}.block.{j}`, to: "encoder.down_blocks.{b}.resnets.{j}", inner: VAE_RESNET },
  { component: "vae", range: "vaeDownsample", from: `${V}encoder.down.{b}.downsample.conv`, to: "encoder.down_blocks.{b}.downsamplers.0.conv", inner: PARAM },
  { component: "vae", range: "vaeUp", from: `${V}decoder.up.{r}.block.{j}`, to: "decoder.up_blocks.{b}.resnets.{j}", inner: VAE_RESNET },
  { component: "vae", range: "vaeUpsample", from: `${V}decoder.up.{r}.upsample.conv`, to: "decoder.up_blocks.{b}.upsamplers.0.conv", inner: PARAM },
  { component: "vae", range: "once", from: `${V}quant_conv`, to: "quant_conv", inner: PARAM },
  { component: "vae", range: "once", from: `${V}post_quant_conv`, to: "post_quant_conv", inner: PARAM },
  // Text encoder
  { component: "text_encoder", range: "once", from: `${T}text_model`, to: "text_model", inner: CLIP_TEXT },
  { component: "text_encoder", range: "once", from: `${T.slice(0, -1)}`, to: "text_model", inner: CLIP_TEXT },
];

/** Keys ignored by name: the DDPM noise schedule buffers of LatentDiffusion (ddpm.py). */
const IGNORED_KEYS: ReadonlySet<string> = new Set([
  "betas",
  "alphas_cumprod",
  "alphas_cumprod_prev",
  "sqrt_alphas_cumprod",
  "sqrt_one_minus_alphas_cumprod",
  "log_one_minus_alphas_cumprod",
  "sqrt_recip_alphas_cumprod",
  "sqrt_recipm1_alphas_cumprod",
  "posterior_variance",
  "posterior_log_variance_clipped",
  "posterior_mean_coef1",
  "posterior_mean_coef2",
  "logvar",
  "lvlb_weights",
]);

/** Keys ignored by prefix: EMA copies (`model_ema.*`) and the autoencoder's training loss. */
const IGNORED_PREFIXES: readonly string[] = ["model_ema.", `${V}loss.`];

// ---------------------------------------------------------------------------------------------
// Expansion of the table for a config.

type Index = Record<string, number>;

function indexSets(config: CheckpointKeyConfig): Record<Range, Index[]> {
  const u = config.unet;
  const v = config.vae;
  const n = u.block_out_channels.length;
  const L = u.layers_per_block;
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new UserError(`checkpoint key mapping: unsupported config: ${what}`);
  };
  check(Number.isInteger(L) && L >= 1, `unet layers_per_block ${L}`);
  check(n >= 1, "unet block_out_channels is empty");
  check(u.down_block_types.length === n, "unet down_block_types length ≠ block count");
  check(u.up_block_types.length === n, "unet up_block_types length ≠ block count");
  check(
    u.mid_block_type == null || u.mid_block_type === "UNetMidBlock2DCrossAttn",
    `unet mid_block_type ${u.mid_block_type}`,
  );
  const attends = (t: string) => t.startsWith("CrossAttn");
  const down: Index[] = [];
  const downAttn: Index[] = [];
  const downsample: Index[] = [];
  const up: Index[] = [];
  const upAttn: Index[] = [];
  const upsample: Index[] = [];
  for (let b = 0; b < n; b++) {
    for (let j = 0; j < L; j++) {
      const idx = { b, j, i: 1 + b * (L + 1) + j };
      down.push(idx);
      if (attends(u.down_block_types[b])) downAttn.push(idx);
    }
    if (b < n - 1) downsample.push({ b, i: (b + 1) * (L + 1) });
    for (let j = 0; j <= L; j++) {
      const idx = { b, j, o: b * (L + 1) + j };
      up.push(idx);
      if (attends(u.up_block_types[b])) upAttn.push(idx);
    }
    if (b < n - 1) {
      upsample.push({ b, o: b * (L + 1) + L, s: attends(u.up_block_types[b]) ? 2 : 1 });
    }
  }
  const vn = v.block_out_channels.length;
  const VL = v.layers_per_block;
  check(Number.isInteger(VL) && VL >= 1, `vae layers_per_block ${VL}`);
  check(vn >= 1, "vae block_out_channels is empty");
  const vaeDown: Index[] = [];
  const vaeDownsample: Index[] = [];
  const vaeUp: Index[] = [];
  const vaeUpsample: Index[] = [];
  for (let b = 0; b < vn; b++) {
    for (let j = 0; j < VL; j++) vaeDown.push({ b, j });
    for (let j = 0; j <= VL; j++) vaeUp.push({ b, j, r: vn - 1 - b });
    if (b < vn - 1) {
      vaeDownsample.push({ b });
      vaeUpsample.push({ b, r: vn - 1 - b });
    }
  }
  return {
    once: [{}],
    down,
    downAttn,
    downsample,
    up,
    upAttn,
    upsample,
    vaeDown,
    vaeDownsample,
    vaeUp,
    vaeUpsample,
    vaeAttn: v.mid_block_add_attention === false ? [] : [{}],
  };
}

interface Expanded {
  component: CheckpointComponent;
  to: string;
  inner: Inner;
}

const expandedCache = new WeakMap<CheckpointKeyConfig, Map<string, Expanded>>();

/** Original module prefix → target, for one config (memoized per config object). */
function expand(config: CheckpointKeyConfig): Map<string, Expanded> {
  let map = expandedCache.get(config);
  if (map) return map;
  map = new Map();
  const sets = indexSets(config);
  const fill = (tpl: string, idx: Index) =>
    tpl.replace(/\{(\w)\}/g, (_, k: string) => {
      if (!(k in idx)) throw new Error(`checkpoint key table: {${k}} unbound in "${tpl}"`);
      return String(idx[k]);
    });
  for (const rule of MODULES) {
    for (const idx of sets[rule.range]) {
      const from = fill(rule.from, idx);
      if (map.has(from)) throw new Error(`checkpoint key table: "${from}" produced twice`);
      map.set(from, { component: rule.component, to: fill(rule.to, idx), inner: rule.inner });
    }
  }
  expandedCache.set(config, map);
  return map;
}

function mapInner(suffix: string, inner: Inner): { name: string; squeeze: boolean } | null {
  if (inner.sameExact?.includes(suffix)) return { name: suffix, squeeze: false };
  const m = /^(?:(.*)\.)?(weight|bias)$/.exec(suffix);
  if (!m) return null;
  const sub = m[1] ?? "";
  const param = m[2];
  if (inner.renames && Object.hasOwn(inner.renames, sub)) {
    const to = inner.renames[sub];
    return {
      name: to === "" ? param : `${to}.${param}`,
      squeeze: param === "weight" && (inner.squeeze?.includes(sub) ?? false),
    };
  }
  if (inner.same && sub !== "" && inner.same.test(sub)) return { name: suffix, squeeze: false };
  return null;
}

/** Whether `key` is one a loader ignores (schedule buffers, EMA copies, training loss). */
export function isIgnoredCheckpointKey(key: string): boolean {
  return IGNORED_KEYS.has(key) || IGNORED_PREFIXES.some((p) => key.startsWith(p));
}

function lookup(key: string, config: CheckpointKeyConfig): CheckpointKeyTarget | null | undefined {
  if (isIgnoredCheckpointKey(key)) return null;
  const table = expand(config);
  // Longest module prefix first (`input_blocks.3.0.op` before `input_blocks.3.0`).
  for (let cut = key.lastIndexOf("."); cut > 0; cut = key.lastIndexOf(".", cut - 1)) {
    const hit = table.get(key.slice(0, cut));
    if (!hit) continue;
    const inner = mapInner(key.slice(cut + 1), hit.inner);
    if (!inner) continue;
    const target: CheckpointKeyTarget = {
      component: hit.component,
      name: `${hit.to}.${inner.name}`,
    };
    if (inner.squeeze) target.transform = "squeeze_attn_1x1";
    return target;
  }
  return undefined;
}

/**
 * Maps one original checkpoint key to its component and diffusers name; `null` for a key a loader
 * ignores (`alphas_cumprod`, `model_ema.*`, …).
 *
 * @throws {UnknownCheckpointKeyError} for a key of no known component
 * @example
 * ```ts
 * const config = { unet: unetConfigJson, vae: vaeConfigJson };
 * mapCheckpointKey("model.diffusion_model.input_blocks.1.0.in_layers.0.weight", config);
 * // → { component: "unet", name: "down_blocks.0.resnets.0.norm1.weight" }
 * mapCheckpointKey("first_stage_model.decoder.mid.attn_1.q.weight", config);
 * // → { component: "vae", name: "decoder.mid_block.attentions.0.to_q.weight",
 * //     transform: "squeeze_attn_1x1" }
 * ```
 */
export function mapCheckpointKey(
  key: string,
  config: CheckpointKeyConfig,
): CheckpointKeyTarget | null {
  const t = lookup(key, config);
  if (t === undefined) throw new UnknownCheckpointKeyError([key]);
  return t;
}

/**
 * Maps every key of a checkpoint: original key → target, ignored keys left out. Checks that no
 * two keys land on the same name.
 *
 * @param source names the checkpoint in error messages
 * @throws {UnknownCheckpointKeyError} listing every unknown key (not only the first)
 */
export function mapCheckpointKeys(
  keys: Iterable<string>,
  config: CheckpointKeyConfig,
  source?: string,
): Map<string, CheckpointKeyTarget> {
  const out = new Map<string, CheckpointKeyTarget>();
  const unknown: string[] = [];
  const taken = new Map<string, string>();
  for (const key of keys) {
    const t = lookup(key, config);
    if (t === undefined) {
      unknown.push(key);
      continue;
    }
    if (t === null) continue;
    const id = `${t.component}/${t.name}`;
    const prev = taken.get(id);
    if (prev !== undefined) {
      throw new UserError(`${source ?? "checkpoint"}: "${prev}" and "${key}" both map to ${id}`);
    }
    taken.set(id, key);
    out.set(key, t);
  }
  if (unknown.length) throw new UnknownCheckpointKeyError(unknown, source);
  return out;
}

/** The shape a tensor has after `transform` (see {@linkcode CheckpointKeyTarget.transform}). */
export function transformedShape(
  shape: readonly number[],
  transform: CheckpointTransform | undefined,
): number[] {
  if (transform === "squeeze_attn_1x1" && shape.length === 4) {
    if (shape[2] !== 1 || shape[3] !== 1) {
      throw new Error(`squeeze_attn_1x1 on shape [${shape.join(", ")}]: not a 1×1 convolution`);
    }
    return [shape[0], shape[1]];
  }
  return [...shape];
}

/**
 * The inverse of {@linkcode mapCheckpointKey}: the original key under which a single-file
 * checkpoint holds the diffusers tensor `name` of `component` (the first row of the table that
 * produces it, i.e. `cond_stage_model.transformer.text_model.*` for the text encoder), with the
 * transform loading applies; `undefined` when no row produces it. Used to write single-file
 * fixtures from diffusers folders.
 */
export function originalCheckpointKey(
  component: CheckpointComponent,
  name: string,
  config: CheckpointKeyConfig,
): { key: string; transform?: CheckpointTransform } | undefined {
  for (const [from, e] of expand(config)) {
    if (e.component !== component || !name.startsWith(`${e.to}.`)) continue;
    const suffix = name.slice(e.to.length + 1);
    const m = /^(?:(.*)\.)?(weight|bias)$/.exec(suffix);
    const renamed = m
      ? Object.entries(e.inner.renames ?? {}).filter(([, to]) => to === (m[1] ?? ""))
        .map(([sub]) => (sub === "" ? m[2] : `${sub}.${m[2]}`))
      : [];
    const candidates = [suffix, ...renamed];
    for (const c of candidates) {
      const t = lookup(`${from}.${c}`, config);
      if (t && t.component === component && t.name === name) {
        return { key: `${from}.${c}`, ...(t.transform ? { transform: t.transform } : {}) };
      }
    }
  }
  return undefined;
}
