/**
 * The text-to-image pipeline: tokens → text states [uncond, cond] → seeded latents → scheduler
 * loop with classifier-free guidance → VAE decode → RGB in [0, 1], as diffusers'
 * `StableDiffusionPipeline` does it.
 *
 * Precision: the UNet and the text encoder run in the chosen precision (f16 where the adapter has
 * shader-f16, as diffusers' fp16 pipelines do; accumulation, norms and softmax stay f32 inside
 * the kernels); the VAE runs in f32 when its config says `force_upcast` (SD 1.x: its decoder
 * overflows f16), as diffusers does.
 *
 * @module
 */

import type { DType, Gpu } from "./gpu/device.ts";
import { Tensor } from "./gpu/tensor.ts";
import { cast, cfgCombine } from "./ops/elementwise.ts";
import { ClipTextModel } from "./models/clip.ts";
import { loadConfigs, type ModelConfigs, sd15Configs } from "./models/config.ts";
import type { WeightSource } from "./models/params.ts";
import { SafetensorsSource, SynthSource } from "./models/sources.ts";
import { UNet } from "./models/unet.ts";
import { Vae } from "./models/vae.ts";
import { variants } from "./ops/variants.ts";
import { TorchGenerator } from "./rng.ts";
import { SafeTensorsFile } from "./safetensors.ts";
import { LatentBasis } from "./latents.ts";
import {
  createScheduler,
  loadSchedulerConfig,
  type SchedulerConfig,
  type SchedulerName,
  SD15_SCHEDULER_CONFIG,
} from "../scheduler/mod.ts";
import { ClipTokenizer, MAX_LENGTH } from "./tokenizer.ts";
import { existsSync } from "./std/fs.ts";
import { join } from "./std/path.ts";
import { loadSingleFile } from "./models/single_file.ts";

/** Where the weights come from. */
export type ModelSource =
  | { kind: "dir"; dir: string }
  | { kind: "single"; file: string; configDir?: string; tokenizerDir: string }
  | { kind: "synth"; tokenizerDir: string };

/** Options of {@linkcode StableDiffusion.load}. */
export interface LoadOptions {
  /** UNet precision; default f16 when the adapter has shader-f16. */
  precision?: DType;
  /**
   * Keep the 3×3 filters after their Winograd transforms (needed to switch to `--conv direct`
   * later in the same process, as the bench does); default false, which saves their memory.
   */
  keepDirectConvWeights?: boolean;
  /** Upload the VAE encoder too (image → latents); default false: text-to-image needs no encoder. */
  vaeEncoder?: boolean;
  /** Called with a short stage name and elapsed ms (load profiling). */
  onStage?: (stage: string, ms: number) => void;
}

/** One image's parameters. */
export interface GenerateParams {
  prompt: string;
  negative?: string;
  seed: number;
  steps: number;
  guidance: number;
  width: number;
  height: number;
  scheduler: SchedulerName;
}

/** Callbacks during {@linkcode StableDiffusion.generate}. */
export interface GenerateHooks {
  /** After each denoising step (1-based). */
  onStep?: (step: number, total: number) => void;
  /**
   * Stage wall times: "tokenize", "text_encoder", "unet_step" (GPU completion to completion),
   * "unet_record_cpu" (CPU time recording one step), "vae_decode".
   */
  onStage?: (stage: string, ms: number) => void;
  /** Words cut off a prompt longer than 77 tokens (the caller warns). */
  onDropped?: (words: string) => void;
  /** k = 0: the initial noise (unscaled, as diffusers' `latents_in`); k ≥ 1: latents after step k. */
  onLatents?: (k: number, latents: Float32Array) => void;
}

/** The result of one generation. */
export interface Generated {
  /** H×W×3 RGB values in [0, 1], row-major (diffusers' `output_type="np"`). */
  pixels: Float32Array;
  width: number;
  height: number;
  /** The timesteps the scheduler ran. */
  timesteps: number[];
}

/** A user-facing error (one line, no stack). */
export class PipelineError extends Error {
  override name = "PipelineError";
}

function pickFile(dir: string, base: string, precision: DType): string {
  const f16 = join(dir, `${base}.fp16.safetensors`);
  const f32 = join(dir, `${base}.safetensors`);
  const order = precision === "f16" ? [f16, f32] : [f32, f16];
  for (const f of order) if (existsSync(f)) return f;
  throw new PipelineError(
    `no weights in ${dir}: expected ${base}.fp16.safetensors or ${base}.safetensors (run \`sd fetch\`, or pass --model synth)`,
  );
}

/** Checks a finite result; a NaN/Inf means a broken model or an f16 overflow. */
export function assertFinite(values: Float32Array, what: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new PipelineError(
        `${what} contains NaN/Inf (at ${i}): the weights may be corrupt or f16 overflowed — try --precision f32`,
      );
    }
  }
}

/** Loaded models, ready to generate. */
export class StableDiffusion {
  /** How many denoising steps may be queued on the GPU ahead of the CPU (≥ 1). */
  inFlight = 8;
  #text: { key: string; states: Tensor } | null = null;

  private constructor(
    readonly gpu: Gpu,
    readonly configs: ModelConfigs,
    readonly tokenizer: ClipTokenizer,
    readonly text: ClipTextModel,
    readonly unet: UNet,
    readonly vae: Vae,
    readonly schedulerConfig: SchedulerConfig,
    readonly precision: DType,
  ) {}

  /** Loads tokenizer, configs and weights, checking every key and shape. */
  static async load(
    gpu: Gpu,
    source: ModelSource,
    opts: LoadOptions = {},
  ): Promise<StableDiffusion> {
    const precision: DType = opts.precision ?? (gpu.hasF16 ? "f16" : "f32");
    if (precision === "f16" && !gpu.hasF16) {
      throw new PipelineError(
        "--precision f16 needs the shader-f16 feature, which this adapter lacks: use --precision f32",
      );
    }
    const stage = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const r = await fn();
      opts.onStage?.(name, performance.now() - t0);
      return r;
    };
    // Configs from the model folder (or --config DIR for a single file), else SD 1.5's.
    const configDir = source.kind === "dir"
      ? source.dir
      : source.kind === "single"
      ? source.configDir
      : undefined;
    const configs = configDir ? await loadConfigs(configDir) : sd15Configs();
    const schedulerConfig = configDir
      ? await loadSchedulerConfig(join(configDir, "scheduler", "scheduler_config.json"))
      : { ...SD15_SCHEDULER_CONFIG };
    const tokenizer = await ClipTokenizer.fromFolder(
      source.kind === "dir" ? join(source.dir, "tokenizer") : source.tokenizerDir,
    );
    const vaeDtype: DType = configs.vae.force_upcast ? "f32" : precision;
    const text = new ClipTextModel(configs.text_encoder, precision);
    const unet = new UNet(configs.unet, precision);
    const vae = new Vae(configs.vae, vaeDtype);

    const sources: Record<string, WeightSource> = {};
    const files: SafeTensorsFile[] = [];
    try {
      if (source.kind === "dir") {
        const open = async (sub: string, base: string, prefix = "") => {
          const f = await SafeTensorsFile.open(pickFile(join(source.dir, sub), base, precision));
          files.push(f);
          return new SafetensorsSource(f, prefix);
        };
        sources.text_encoder = await open("text_encoder", "model", "text_model.");
        sources.unet = await open("unet", "diffusion_pytorch_model");
        sources.vae = await open("vae", "diffusion_pytorch_model");
      } else if (source.kind === "single") {
        const single = await loadSingleFile(source.file, configs);
        files.push(single.file);
        Object.assign(sources, single.sources);
      } else {
        const synth = new SynthSource();
        sources.text_encoder = sources.unet = sources.vae = synth;
      }
      await stage("load_text_encoder", () => text.store.load(gpu, sources.text_encoder));
      await stage("load_unet", () => unet.store.load(gpu, sources.unet));
      // The encoder (image → latents) is only needed for image-to-image: checked, not uploaded.
      const skip = opts.vaeEncoder
        ? undefined
        : (key: string) => key.startsWith("encoder.") || key.startsWith("quant_conv.");
      await stage("load_vae", () => vae.store.load(gpu, sources.vae, { skip }));
      // Winograd filter transforms happen once, at load, for the convolutions that use them.
      if (variants(gpu).conv === "winograd") {
        await stage("winograd_transforms", async () => {
          const convs = [...unet.store.convs, ...vae.store.convs];
          for (const conv of convs) conv.prepareWinograd();
          await gpu.flush(); // the transforms read the filters: run them before freeing
          if (!opts.keepDirectConvWeights) { for (const conv of convs) conv.dropDirectWeight(); }
        });
      }
      await gpu.flush();
    } finally {
      for (const f of files) f.close();
    }
    return new StableDiffusion(
      gpu,
      configs,
      tokenizer,
      text,
      unet,
      vae,
      schedulerConfig,
      precision,
    );
  }

  /** CLIP ids of `texts`, MAX_LENGTH (77) per text, row-major [texts.length, 77]. */
  tokenize(texts: string[], onDropped?: (words: string) => void): Uint32Array {
    const ids = new Uint32Array(texts.length * MAX_LENGTH);
    texts.forEach((t, i) => {
      const { ids: row, dropped } = this.tokenizer.encode(t);
      if (dropped) onDropped?.(dropped);
      ids.set(row, i * MAX_LENGTH);
    });
    return ids;
  }

  /**
   * Text states [uncond, cond] (or [cond] without guidance) → [B, 77, C] on the GPU, in the text
   * encoder's dtype.
   */
  encodeText(
    prompt: string,
    negative: string,
    withUncond: boolean,
    onDropped?: (words: string) => void,
  ): Tensor {
    const texts = withUncond ? [negative, prompt] : [prompt];
    return this.text.forward(this.tokenize(texts, onDropped), texts.length);
  }

  /** Runs one text-to-image generation. */
  async generate(p: GenerateParams, hooks: GenerateHooks = {}): Promise<Generated> {
    const { gpu, unet } = this;
    if (p.width % 8 || p.height % 8) {
      throw new PipelineError(
        `width and height must be multiples of 8 (got ${p.width}×${p.height})`,
      );
    }
    const h = p.height / 8, w = p.width / 8;
    const latentC = this.configs.unet.in_channels;
    const cfg = p.guidance > 1;
    const timed = async <T>(name: string, fn: () => T | Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const r = await fn();
      if (hooks.onStage) {
        await gpu.flush();
        hooks.onStage(name, performance.now() - t0);
      }
      return r;
    };

    const texts = cfg ? [p.negative ?? "", p.prompt] : [p.prompt];
    const ctx = await this.#textStates(texts, hooks, timed);

    const generator = new TorchGenerator(p.seed);
    const n = latentC * h * w;
    // The scheduler runs on coefficient vectors over `basis` (see src/latents.ts): no readback
    // inside the loop. Its noise draws store torch-generator noise as new basis tensors, in the
    // same order as diffusers draws them.
    let basis: LatentBasis | null = null;
    const scheduler = createScheduler(p.scheduler, this.schedulerConfig, {
      randn: () => basis!.upload(generator.randn(n)),
    });
    scheduler.setTimesteps(p.steps);
    const timesteps = scheduler.timesteps;
    const calls = timesteps.length;
    basis = new LatentBasis(gpu, n, 2 + 2 * calls, 2 + 2 * calls);
    const noise = generator.randn(n);
    hooks.onLatents?.(0, noise);
    let x = basis.upload(noise);
    const sigma0 = scheduler.initNoiseSigma;
    if (sigma0 !== 1) x = x.map((v) => v * sigma0);

    const batch = cfg ? 2 : 1;
    const shape = [latentC, h, w];
    const done: Promise<number>[] = [];
    const tLoop = performance.now();
    let z: Tensor;
    try {
      for (let k = 0; k < calls; k++) {
        // A bounded number of steps in flight: the CPU records step k while the GPU runs the
        // previous ones, and awaiting lets Deno deliver completions (progress, step times).
        if (k >= this.inFlight) await done[k - this.inFlight];
        const tRecord = performance.now();
        const t = timesteps[k];
        const sample = basis.combine(
          scheduler.scaleModelInput(x, t),
          [batch, ...shape],
          unet.store.dtype,
        );
        const out = unet.forward(sample, t, ctx);
        sample.release();
        const eps = cfg ? cfgCombine(out, p.guidance) : out;
        const e = basis.store(eps);
        if (eps !== out) eps.release();
        out.release();
        x = scheduler.step(e, t, x);
        gpu.submit();
        hooks.onStage?.("unet_record_cpu", performance.now() - tRecord);
        const step = k + 1;
        done.push(
          gpu.device.queue.onSubmittedWorkDone().then(() => {
            hooks.onStep?.(step, calls);
            return performance.now();
          }),
        );
        if (hooks.onLatents) {
          const lat = basis.combine(x, [1, ...shape], "f32");
          hooks.onLatents(step, await lat.read());
          lat.release();
        }
      }
      // The VAE's input: latents / scaling_factor, folded into the coefficients.
      const inv = 1 / this.configs.vae.scaling_factor;
      z = basis.combine(x.map((v) => v * inv), [1, ...shape], this.vae.store.dtype);
      assertFinite(await z.read(), "the final latents");
    } finally {
      basis.release();
    }
    if (hooks.onStage) {
      const ends = await Promise.all(done);
      ends.forEach((end, k) => hooks.onStage!("unet_step", end - (k === 0 ? tLoop : ends[k - 1])));
    }
    // Activations of the UNet's sizes are no use to the VAE: give the pool's memory back first.
    gpu.trimPool();
    const pixels = await timed("vae_decode", () => this.decodeTensor(z, h, w));
    gpu.trimPool();
    return { pixels, width: p.width, height: p.height, timesteps: [...timesteps] };
  }

  /**
   * The text states for `texts` in the UNet's dtype: the text encoder runs once per prompt — the
   * last states (and the cross-attention K/V the UNet derives from them) are kept for the next
   * image with the same texts (`--batch N`, repeated batch lines).
   */
  async #textStates(
    texts: string[],
    hooks: GenerateHooks,
    timed: <T>(name: string, fn: () => T | Promise<T>) => Promise<T>,
  ): Promise<Tensor> {
    const key = JSON.stringify(texts);
    if (this.#text?.key === key) return this.#text.states;
    this.releaseTextStates();
    const ids = await timed("tokenize", () => this.tokenize(texts, hooks.onDropped));
    const states = await timed("text_encoder", () => this.text.forward(ids, texts.length));
    const dtype = this.unet.store.dtype;
    const ctx = states.dtype === dtype ? states : cast(states, dtype);
    if (ctx !== states) states.release();
    this.#text = { key, states: ctx.pin() };
    return ctx;
  }

  /** Frees the kept text states and the cross-attention K/V computed from them. */
  releaseTextStates(): void {
    this.unet.clearContextCache();
    this.#text?.states.release();
    this.#text = null;
  }

  /** VAE-decodes `z` [1, 4, h, w] (already divided by scaling_factor; released here) → HWC RGB. */
  async decodeTensor(z: Tensor, h: number, w: number): Promise<Float32Array> {
    const img = this.vae.decode(z);
    z.release();
    const chw = await img.read();
    img.release();
    assertFinite(chw, "the decoded image");
    return chwToHwc01(chw, 3, 8 * h, 8 * w);
  }
}

/** [C, H, W] in [-1, 1] → [H, W, C] in [0, 1] (`(x / 2 + 0.5).clamp(0, 1)`). */
export function chwToHwc01(chw: Float32Array, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(c * h * w);
  for (let ci = 0; ci < c; ci++) {
    for (let i = 0; i < h * w; i++) {
      const v = chw[ci * h * w + i] / 2 + 0.5;
      out[i * c + ci] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  return out;
}
