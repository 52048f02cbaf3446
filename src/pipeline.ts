/**
 * The text-to-image pipeline: tokens → text states [uncond, cond] → seeded latents → scheduler
 * loop with classifier-free guidance → VAE decode → RGB in [0, 1], as diffusers'
 * `StableDiffusionPipeline` does it (or, for the CLI, the PNG's scanlines made on the GPU:
 * `generateScanlines`); the text stage reads prompts as A1111 does (emphasis, long
 * prompts, clip skip: `src/prompt/encoder.ts`).
 *
 * Precision: the UNet and the text encoder run in the chosen precision (f16 where the adapter has
 * shader-f16, as diffusers' fp16 pipelines do; accumulation, norms and softmax stay f32 inside
 * the kernels). The VAE decodes in the same precision, as diffusers' `StableDiffusionPipeline`
 * does (its `force_upcast` flag is only honoured by the SDXL pipelines); its Winograd transforms
 * and GroupNorm statistics stay f32. Should an f16 decode still give NaN/Inf, the VAE is reloaded
 * in f32 and the image decoded again (as AUTOMATIC1111's web UI falls back), with a note.
 *
 * @module
 */

import { UserError } from "./errors.ts";
import type { DType, Gpu } from "./gpu/device.ts";
import { Tensor } from "./gpu/tensor.ts";
import { cast, cfgCombine } from "./ops/elementwise.ts";
import { concatChannels } from "./ops/layout.ts";
import { readPngScanlines } from "./ops/png_rows.ts";
import { ClipTextModel } from "./models/clip.ts";
import { loadConfigs, type ModelConfigs, sd15Configs } from "./models/config.ts";
import type { ParamStore, WeightSource } from "./models/params.ts";
import { SafetensorsSource, SynthSource } from "./models/sources.ts";
import { UNet } from "./models/unet.ts";
import { Vae } from "./models/vae.ts";
import { variants } from "./ops/variants.ts";
import { TorchGenerator } from "./rng.ts";
import { SafeTensorsFile } from "./weights/safetensors.ts";
import { LatentBasis } from "./latents.ts";
import {
  createScheduler,
  loadSchedulerConfig,
  type Scheduler,
  type SchedulerConfig,
  type SchedulerName,
  SD15_SCHEDULER_CONFIG,
} from "../scheduler/mod.ts";
import { ClipTokenizer } from "./tokenizer.ts";
import {
  emphasize,
  encodeChunks,
  longPromptNote,
  textChunks,
  type TextOptions,
} from "./prompt/encoder.ts";
import { join } from "./std/path.ts";
import { loadSingleFile, singleFileUNetInChannels } from "./models/single_file.ts";
import { latentMask, maskedImage } from "./image.ts";
import {
  blendMasked,
  getTimesteps,
  type InitImage,
  inpaintCondition,
  prepareLatents,
  sampleLatents,
} from "./img2img.ts";
import { LoraMerger, type LoraRequest } from "./models/lora_merge.ts";
import {
  type Component,
  componentFile,
  configDirOf,
  defaultPrecision,
  type ModelSource,
  tokenizerDirOf,
} from "./weights/source.ts";

/**
 * Steps queued between waits when no hook needs each step: a wait idles the GPU for one submit
 * (see `generate`); the bound keeps Ctrl-C responsive on slow adapters.
 */
const SYNC_EVERY = 8;
/**
 * Steps between waits when only `onStep` (a progress line) needs them: each wait costs ~10 ms on
 * top of the GPU work (Deno 2.9), and three SD 1.5 steps are ~0.2 s — a smooth enough line.
 */
const PROGRESS_EVERY = 3;

/** Lets timers and signal handlers (Ctrl-C) run between recorded steps. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Options of {@linkcode StableDiffusion.load}. */
export interface LoadOptions {
  /** UNet precision; default f16 when the adapter has shader-f16. */
  precision?: DType;
  /**
   * Keep the 3×3 filters after their Winograd transforms (needed to switch to `--conv direct`
   * later in the same process, as the bench does); default false, which saves their memory.
   */
  keepDirectConvWeights?: boolean;
  /**
   * VAE precision; default the pipeline's, or f32 with `vaeEncoder` (an f16 decode that
   * overflows switches to f32: see `decodeTensor`).
   */
  vaePrecision?: DType;
  /**
   * Free the text encoder's GPU memory (0.25 GB for SD 1.5) after each prompt's encoding and
   * upload it again from host memory for the next new prompt (~100 ms on an H200); default false:
   * CLIP stays resident, a new prompt costs its forward pass only (issue 16).
   */
  offloadTextEncoder?: boolean;
  /** Upload the VAE encoder too (image → latents); default false: text-to-image needs no encoder. */
  vaeEncoder?: boolean;
  /** Called with a short stage name and elapsed ms (load profiling). */
  onStage?: (stage: string, ms: number) => void;
}

/** One image's parameters. */
export interface GenerateParams {
  prompt: string;
  negative?: string;
  /** torch's seed, 0 … 2^64−1 (a bigint above 2^53; `TorchGenerator` reads both). */
  seed: number | bigint;
  steps: number;
  guidance: number;
  width: number;
  height: number;
  scheduler: SchedulerName;
  /** A1111's emphasis syntax (default on) and clip skip (default 1). */
  text?: TextOptions;
  /** Image-to-image or inpainting: the image (and mask) to start from, at width × height. */
  init?: InitImage;
  /** LoRAs merged into the weights for this image (default none; see `LoraMerger`). */
  loras?: readonly LoraRequest[];
}

/** Callbacks during {@linkcode StableDiffusion.generate}. */
export interface GenerateHooks {
  /**
   * After each denoising step (1-based), once the GPU has finished it. Steps are waited for in
   * groups of a few (every step with `syncSteps` or `onLatents`), so calls come in bursts.
   */
  onStep?: (step: number, total: number) => void;
  /**
   * Stage wall times: "tokenize", "text_encoder", "unet_step" (GPU completion to completion),
   * "unet_record_cpu" (CPU time recording one step; only with steps in sync), "unet_loop" (all
   * steps), "vae_decode". The text encoder and the VAE are waited for to time them.
   */
  onStage?: (stage: string, ms: number) => void;
  /**
   * Wait for every step before recording the one after next (exact per-step times and progress;
   * implied by `onStep` and `onLatents`). Otherwise steps are waited for only every few steps.
   */
  syncSteps?: boolean;
  /** A one-line note for the user (e.g. the VAE fell back to f32, a prompt over 75 tokens). */
  onNote?: (text: string) => void;
  /**
   * k = 0: the initial noise (unscaled, as diffusers' `latents_in`; with an init image, the
   * latents entering the loop); k ≥ 1: latents after step k (inpainting: after the blend).
   */
  onLatents?: (k: number, latents: Float32Array) => void;
  /**
   * Image-to-image and inpainting intermediates, named as the features fixtures' keys
   * (`posterior_mean`, `posterior_logvar`, `posterior_eps`, `image_latents`, `noise`,
   * `latents_start`, `mask_latents`, `masked_image_latents`).
   */
  onInit?: (name: string, values: Float32Array) => void;
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

/** The result of {@linkcode StableDiffusion.generateScanlines}: the image as PNG scanlines. */
export interface GeneratedScanlines extends Omit<Generated, "pixels"> {
  /**
   * The PNG scanlines of the 8-bit image (src/png.ts's `pixelScanlines` of `pixels`, made on the
   * GPU), for `encodeScanlines`.
   */
  scanlines: Uint8Array;
}

/** An image read back from the GPU, with the smallest CHW index of a NaN/Inf in it (or null). */
interface ReadImage<T> {
  value: T;
  firstBad: number | null;
}

/** A user-facing error (one line, no stack). */
export class PipelineError extends UserError {
  override name = "PipelineError";
}

/** Checks a finite result; a NaN/Inf means a broken model or an f16 overflow. */
export function assertFinite(values: Float32Array, what: string): void {
  const i = values.findIndex((v) => !Number.isFinite(v));
  if (i >= 0) throw nonFinite(what, i);
}

function nonFinite(what: string, at: number): PipelineError {
  return new PipelineError(
    `${what} contains NaN/Inf (at ${at}): the weights may be corrupt or f16 overflowed — try --precision f32`,
  );
}

/** The weight sources of a model (and the files to close after loading). */
async function openSources(
  source: ModelSource,
  configs: ModelConfigs,
  precision: DType,
): Promise<{ sources: Record<string, WeightSource>; files: SafeTensorsFile[] }> {
  const sources: Record<string, WeightSource> = {};
  const files: SafeTensorsFile[] = [];
  try {
    if (source.kind === "dir") {
      const open = async (component: Component, prefix = "") => {
        const f = await SafeTensorsFile.open(componentFile(source.dir, component, precision));
        files.push(f);
        return new SafetensorsSource(f, prefix);
      };
      sources.text_encoder = await open("text_encoder", "text_model.");
      sources.unet = await open("unet");
      sources.vae = await open("vae");
    } else if (source.kind === "single") {
      const single = await loadSingleFile(source.file, configs, source.configDir);
      files.push(single.file);
      Object.assign(sources, single.sources);
    } else {
      const synth = new SynthSource();
      sources.text_encoder = sources.unet = sources.vae = synth;
    }
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
  return { sources, files };
}

/** The encoder (image → latents) is only needed for image-to-image: checked, not uploaded. */
function vaeSkip(opts: LoadOptions): ((key: string) => boolean) | undefined {
  return opts.vaeEncoder
    ? undefined
    : (key: string) => key.startsWith("encoder.") || key.startsWith("quant_conv.");
}

/**
 * Winograd transforms of the models' 3×3 filters, each filter freed (unless kept) right after
 * its transform is recorded — destroying submits it first (see `Gpu.destroyBuffer`) — so that
 * filters and transforms never all coexist (that was a 4.1 GB load-time peak for SD 1.5).
 */
async function prepareWinograd(gpu: Gpu, models: { store: ParamStore }[], opts: LoadOptions) {
  if (variants(gpu).conv === "direct") return;
  for (const conv of models.flatMap((m) => m.store.convs)) {
    conv.prepareWinograd();
    if (!opts.keepDirectConvWeights) conv.dropDirectWeight();
  }
  await gpu.flush();
}

/** Loaded models, ready to generate. */
export class StableDiffusion {
  #text: { key: string; states: Tensor } | null = null;
  #lora: LoraMerger | null = null;

  private constructor(
    readonly gpu: Gpu,
    readonly configs: ModelConfigs,
    readonly tokenizer: ClipTokenizer,
    readonly text: ClipTextModel,
    readonly unet: UNet,
    public vae: Vae,
    readonly schedulerConfig: SchedulerConfig,
    readonly precision: DType,
    readonly source: ModelSource,
    readonly loadOptions: LoadOptions,
  ) {}

  /** Loads tokenizer, configs and weights, checking every key and shape. */
  static async load(
    gpu: Gpu,
    source: ModelSource,
    opts: LoadOptions = {},
  ): Promise<StableDiffusion> {
    const precision: DType = opts.precision ?? defaultPrecision(gpu);
    if (precision === "f16" && !gpu.hasF16) {
      throw new PipelineError(
        `--precision f16 needs the shader-f16 feature, which ${
          gpu.limitsMode === "default" ? "SD_WEBGPU_LIMITS=default turns off" : "this adapter lacks"
        }: use --precision f32`,
      );
    }
    const stage = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const r = await fn();
      opts.onStage?.(name, performance.now() - t0);
      return r;
    };
    // Configs from the model folder (or --config DIR for a single file), else SD 1.5's.
    const configDir = configDirOf(source);
    const configs = configDir ? await loadConfigs(configDir) : sd15Configs();
    // An inpainting checkpoint in one file says so by conv_in's input channels (9).
    if (source.kind === "single") {
      configs.unet.in_channels = await singleFileUNetInChannels(source.file);
    }
    const schedulerConfig = configDir
      ? await loadSchedulerConfig(join(configDir, "scheduler", "scheduler_config.json"))
      : { ...SD15_SCHEDULER_CONFIG };
    const tokenizer = await ClipTokenizer.fromFolder(tokenizerDirOf(source));
    const text = new ClipTextModel(configs.text_encoder, precision);
    const unet = new UNet(configs.unet, precision);
    // With the encoder (image-to-image) the whole VAE runs in f32: in f16 the encoder's mean
    // missed the 1e-2 bound against diffusers (1.7e-2 on tiny-sd), while the decoder met it.
    const vae = new Vae(configs.vae, opts.vaePrecision ?? (opts.vaeEncoder ? "f32" : precision));
    const { sources, files } = await openSources(source, configs, precision);
    try {
      await stage(
        "load_text_encoder",
        () =>
          text.store.load(gpu, sources.text_encoder, {
            keepHost: opts.offloadTextEncoder ?? false,
          }),
      );
      await stage("load_unet", () => unet.store.load(gpu, sources.unet));
      await stage("load_vae", () => vae.store.load(gpu, sources.vae, { skip: vaeSkip(opts) }));
      // Winograd filter transforms happen once, at load, for the convolutions that use them.
      await stage("winograd_transforms", () => prepareWinograd(gpu, [unet, vae], opts));
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
      source,
      opts,
    );
  }

  /**
   * Replaces the VAE by one in `dtype`, loaded again from the model's source (from the files of
   * precision `files`: the f16 or f32 ones where a folder has both).
   */
  async reloadVae(dtype: DType, files: DType = dtype): Promise<void> {
    const vae = new Vae(this.configs.vae, dtype);
    const opened = await openSources(this.source, this.configs, files);
    const sources = opened.sources;
    try {
      await vae.store.load(this.gpu, sources.vae, { skip: vaeSkip(this.loadOptions) });
      await prepareWinograd(this.gpu, [vae], this.loadOptions);
    } finally {
      for (const f of opened.files) f.close();
    }
    this.vae.store.release();
    this.vae = vae;
  }

  /**
   * Text states [uncond, cond] (or [cond] without guidance) → [B, 77·k, C] on the GPU, in the
   * text encoder's dtype (k chunks of 75 tokens: see `src/prompt/encoder.ts`). The encoder's
   * commands are recorded before this returns, so a `LoraMerger.withText` around the call covers
   * them; the promise waits for the emphasis (a readback) when the prompts have weights.
   */
  encodeText(
    prompt: string,
    negative: string,
    withUncond: boolean,
    opts: TextOptions = {},
  ): Promise<Tensor> {
    const texts = textChunks(this.tokenizer, withUncond ? [negative, prompt] : [prompt], opts);
    return emphasize(encodeChunks(this.text, texts.chunks, opts.clipSkip), texts.chunks);
  }

  /** Runs one text-to-image generation; the image as float pixels. */
  async generate(p: GenerateParams, hooks: GenerateHooks = {}): Promise<Generated> {
    const { image, ...rest } = await this.#generate(
      p,
      hooks,
      (z, h, w) => this.decodeTensor(z, h, w, hooks.onNote),
    );
    return { pixels: image, ...rest };
  }

  /**
   * Runs one text-to-image generation; the image as PNG scanlines made on the GPU (what the CLI
   * writes: no float image, NaN scan or byte conversion on the CPU).
   */
  async generateScanlines(
    p: GenerateParams,
    hooks: GenerateHooks = {},
  ): Promise<GeneratedScanlines> {
    const { image, ...rest } = await this.#generate(
      p,
      hooks,
      (z) => this.decodeScanlines(z, hooks.onNote),
    );
    return { scanlines: image, ...rest };
  }

  async #generate<T>(
    p: GenerateParams,
    hooks: GenerateHooks,
    decode: (z: Tensor, h: number, w: number) => Promise<T>,
  ): Promise<{ image: T; width: number; height: number; timesteps: number[] }> {
    const { gpu, unet } = this;
    if (p.width % 8 || p.height % 8) {
      throw new PipelineError(
        `width and height must be multiples of 8 (got ${p.width}×${p.height})`,
      );
    }
    // Before any step: a size whose VAE activations cannot be bound fails now, in one line.
    gpu.checkLimit(
      "maxStorageBufferBindingSize",
      this.vae.largestActivationBytes(p.height, p.width, !!p.init),
      `the VAE (${this.vae.store.dtype}) at ${p.width}×${p.height}`,
    );
    const h = p.height / 8, w = p.width / 8;
    const latentC = this.configs.unet.out_channels;
    if (!p.init && this.configs.unet.in_channels !== latentC) {
      throw new UserError(
        `this model's UNet takes ${this.configs.unet.in_channels} input channels (an inpainting model): give --init-image and --mask`,
        { kind: "usage" },
      );
    }
    const cfg = p.guidance > 1;
    const timed = async <T>(name: string, fn: () => T | Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const r = await fn();
      if (hooks.onStage) {
        // waitIdle returns when the GPU is done; flush's promise settles ~10 ms later (Deno 2.9).
        gpu.waitIdle();
        hooks.onStage(name, performance.now() - t0);
        await gpu.flush();
      }
      return r;
    };

    const lora = await this.#useLoras(p.loras ?? [], hooks);
    const texts = cfg ? [p.negative ?? "", p.prompt] : [p.prompt];
    const ctx = await this.#textStates(texts, p.text ?? {}, hooks, timed, lora);

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
    const { timesteps, tStart } = p.init
      ? getTimesteps(scheduler.timesteps, p.steps, p.init.strength)
      : { timesteps: scheduler.timesteps, tStart: 0 };
    if (p.steps - tStart < 1) {
      // diffusers' check (on the step count: PNDM's list would still hold its repeated timestep)
      throw new UserError(
        `strength ${p.init?.strength} of ${p.steps} steps leaves no denoising step; raise --strength or --steps`,
        { kind: "usage" },
      );
    }
    const calls = timesteps.length;
    const batch = cfg ? 2 : 1;
    const shape = [latentC, h, w];
    const start = p.init
      ? await this.#prepareInit(p, p.init, generator, scheduler, timesteps[0], batch, hooks, timed)
      : null;
    // Room for the start, each step's ε, noise draw and (4-channel inpainting) blended latents.
    basis = new LatentBasis(gpu, n, 2 + 3 * calls, 2 + 3 * calls);
    let x: Float32Array;
    if (start) {
      hooks.onLatents?.(0, start.latents);
      x = basis.upload(start.latents);
    } else {
      const noise = generator.randn(n);
      hooks.onLatents?.(0, noise);
      x = basis.upload(noise);
      const sigma0 = scheduler.initNoiseSigma;
      if (sigma0 !== 1) x = x.map((v) => v * sigma0);
    }
    const blend = start?.blend ?? null;
    // Waiting on the GPU blocks the thread until it is idle (see Gpu.waitIdle), so the loop waits
    // only every SYNC_EVERY steps — every PROGRESS_EVERY for a progress line, every step for step
    // times or latents — and each time it first finishes step k's commands, then waits for the
    // steps before (letting the event loop run first: Ctrl-C), and submits step k: the GPU idles
    // only for the submit.
    const every = hooks.onLatents || hooks.syncSteps || blend
      ? 1
      : hooks.onStep
      ? PROGRESS_EVERY
      : SYNC_EVERY;
    const tLoop = performance.now();
    let reported = 0, tReported = tLoop;
    const stepsDone = (upTo: number) => {
      const now = performance.now();
      for (let j = reported + 1; j <= upTo; j++) {
        hooks.onStage?.("unet_step", (now - tReported) / (upTo - reported));
        hooks.onStep?.(j, calls);
      }
      reported = upTo;
      tReported = now;
    };
    let z: Tensor;
    try {
      for (let k = 0; k < calls; k++) {
        const tRecord = performance.now();
        const t = timesteps[k];
        let sample = basis.combine(
          scheduler.scaleModelInput(x, t),
          [batch, ...shape],
          unet.store.dtype,
        );
        if (start?.condition) {
          // A 9-channel inpainting UNet: cat(scale_model_input(latents), mask, masked latents).
          const full = concatChannels(sample, start.condition);
          sample.release();
          sample = full;
        }
        const out = unet.forward(sample, t, ctx);
        sample.release();
        const eps = cfg ? cfgCombine(out, p.guidance) : out;
        const e = basis.store(eps);
        if (eps !== out) eps.release();
        out.release();
        x = scheduler.step(e, t, x);
        if (k === 0 || k % every !== 0) {
          gpu.submit();
        } else {
          const recorded = gpu.finishCommands();
          if (every === 1) hooks.onStage?.("unet_record_cpu", performance.now() - tRecord);
          await yieldToEventLoop();
          gpu.waitIdle();
          stepsDone(k);
          if (recorded) gpu.submitRecorded(recorded);
        }
        if (blend) {
          const lat = basis.combine(x, [1, ...shape], "f32");
          const values = await lat.read();
          lat.release();
          x = basis.upload(blendMasked(scheduler, values, ...blend, timesteps, k));
        }
        if (hooks.onLatents) {
          const lat = basis.combine(x, [1, ...shape], "f32");
          hooks.onLatents(k + 1, await lat.read());
          lat.release();
        }
      }
      // The VAE's input: latents / scaling_factor, folded into the coefficients.
      const inv = 1 / this.configs.vae.scaling_factor;
      z = basis.combine(x.map((v) => v * inv), [1, ...shape], this.vae.store.dtype);
      if (hooks.onStep || hooks.onStage) {
        gpu.waitIdle();
        stepsDone(calls);
        hooks.onStage?.("unet_loop", performance.now() - tLoop);
      }
    } finally {
      basis.release();
      start?.condition?.release();
    }
    // Activations of the UNet's sizes are no use to the VAE: give the pool's memory back first.
    gpu.trimPool();
    const image = await timed("vae_decode", () => decode(z, h, w));
    gpu.trimPool();
    return { image, width: p.width, height: p.height, timesteps: [...timesteps] };
  }

  /**
   * Uploads the VAE encoder (text-to-image loads without it); the VAE is then f32 (see `load`).
   */
  async ensureVaeEncoder(): Promise<void> {
    if (this.vae.encoder.conv_in.weight.loaded) return;
    this.loadOptions.vaeEncoder = true;
    // The files `load` would have read with the encoder: the same image either way.
    await this.reloadVae(this.loadOptions.vaePrecision ?? "f32", this.precision);
  }

  /** `vae.encode(image).latent_dist` of CHW values in [−1, 1]: mean and log-variance, read back. */
  async encodeImage(
    chw: Float32Array,
    width: number,
    height: number,
  ): Promise<{ mean: Float32Array; logvar: Float32Array }> {
    await this.ensureVaeEncoder();
    const image = Tensor.from(this.gpu, chw, [1, 3, height, width], this.vae.store.dtype, {
      label: "init-image",
    });
    const { mean, logvar } = this.vae.encode(image);
    image.release();
    const out = { mean: await mean.read(), logvar: await logvar.read() };
    mean.release();
    logvar.release();
    assertFinite(out.mean, "the encoded image");
    return out;
  }

  /**
   * The start of an image-to-image or inpainting run, drawing from `generator` in diffusers'
   * order (see src/img2img.ts): the latents entering the loop, the 4-channel blend's operands
   * (image latents, noise, latent mask) and the 9-channel UNet's extra input channels.
   */
  async #prepareInit(
    p: GenerateParams,
    init: InitImage,
    generator: TorchGenerator,
    scheduler: Scheduler,
    t0: number,
    batch: number,
    hooks: GenerateHooks,
    timed: <T>(name: string, fn: () => T | Promise<T>) => Promise<T>,
  ): Promise<{
    latents: Float32Array;
    blend: [Float32Array, Float32Array, Float32Array] | null;
    condition: Tensor | null;
  }> {
    const c = this.configs;
    const n = c.unet.out_channels * (p.height / 8) * (p.width / 8);
    const inpaintModel = c.unet.in_channels === 2 * c.unet.out_channels + 1;
    if (!inpaintModel && c.unet.in_channels !== c.unet.out_channels) {
      throw new UserError(
        `the UNet takes ${c.unet.in_channels} input channels: neither a normal (4) nor an inpainting (9) model`,
      );
    }
    if (inpaintModel && !init.mask) {
      throw new UserError(
        "this is an inpainting model (9-channel UNet): give --mask too, or a normal model for image-to-image",
        { kind: "usage" },
      );
    }
    const report = hooks.onInit ?? (() => {});
    const encode = (chw: Float32Array) =>
      timed("vae_encode", () => this.encodeImage(chw, p.width, p.height));
    const sample = async (chw: Float32Array, prefix: string) => {
      const { mean, logvar } = await encode(chw);
      const eps = generator.randn(n);
      const latents = sampleLatents(mean, logvar, eps, c.vae.scaling_factor);
      report(`${prefix}posterior_mean`, mean);
      report(`${prefix}posterior_logvar`, logvar);
      report(`${prefix}posterior_eps`, eps);
      return latents;
    };
    // Inpainting at strength 1 starts from pure noise; a 9-channel UNet then needs no image latents.
    const pureNoise = init.mask !== undefined && init.strength === 1;
    const imageLatents = pureNoise && inpaintModel ? null : await sample(init.image, "");
    if (imageLatents) report("image_latents", imageLatents);
    const noise = generator.randn(n);
    report("noise", noise);
    const latents = prepareLatents(scheduler, imageLatents, noise, t0, pureNoise);
    report("latents_start", latents);
    if (!init.mask) return { latents, blend: null, condition: null };

    const mask = latentMask(init.mask, p.width, p.height);
    report("mask_latents", mask);
    if (!inpaintModel) {
      generator.randn(n); // the masked image posterior's ε: drawn by diffusers, unused here
      return { latents, blend: [imageLatents!, noise, mask], condition: null };
    }
    const masked = await sample(maskedImage(init.image, init.mask), "masked_image_");
    report("masked_image_latents", masked);
    const condition = Tensor.from(
      this.gpu,
      inpaintCondition(mask, masked, batch),
      [batch, 1 + c.unet.out_channels, p.height / 8, p.width / 8],
      this.unet.store.dtype,
      { label: "inpaint-condition" },
    );
    return { latents, blend: null, condition };
  }

  /**
   * The text states for `texts` in the UNet's dtype: the text encoder runs once per prompt — the
   * last states (and the cross-attention K/V the UNet derives from them) are kept for the next
   * image with the same texts (`--batch N`, repeated batch lines).
   */
  async #textStates(
    texts: string[],
    opts: TextOptions,
    hooks: GenerateHooks,
    timed: <T>(name: string, fn: () => T | Promise<T>) => Promise<T>,
    lora: string,
  ): Promise<Tensor> {
    const key = JSON.stringify([texts, opts.emphasis ?? true, opts.clipSkip ?? 1, lora]);
    if (this.#text?.key === key) return this.#text.states;
    this.releaseTextStates();
    const chunks = await timed("tokenize", () => textChunks(this.tokenizer, texts, opts));
    const note = longPromptNote(chunks);
    if (note) hooks.onNote?.(note);
    const states = await timed("text_encoder", () => {
      const raw = this.#loraMerger().withText(() =>
        encodeChunks(this.text, chunks.chunks, opts.clipSkip)
      );
      return emphasize(raw, chunks.chunks);
    });
    this.text.store.offload(); // a no-op unless loaded with offloadTextEncoder
    const dtype = this.unet.store.dtype;
    const ctx = states.dtype === dtype ? states : cast(states, dtype);
    if (ctx !== states) states.release();
    this.#text = { key, states: ctx.pin() };
    return ctx;
  }

  #loraMerger(): LoraMerger {
    return this.#lora ??= new LoraMerger(this.gpu, {
      unet: this.unet.store,
      text_encoder: this.text.store,
    });
  }

  /**
   * Merges `loras` (UNet now, text encoder when it runs) in place of the previous job's; returns
   * the set's key for the text-state cache.
   */
  async #useLoras(loras: readonly LoraRequest[], hooks: GenerateHooks): Promise<string> {
    if (loras.length === 0 && !this.#lora) return "[]";
    const t0 = performance.now();
    const use = await this.#loraMerger().use(loras);
    if (use.unetChanged && hooks.onStage) {
      await this.gpu.flush();
      hooks.onStage("lora_merge", performance.now() - t0);
    }
    for (const note of use.notes) hooks.onNote?.(note);
    if (use.unetChanged) this.releaseTextStates(); // cross-attention K/V came from the old to_k/to_v
    return use.key;
  }

  /** Frees the kept text states and the cross-attention K/V computed from them. */
  releaseTextStates(): void {
    this.unet.clearContextCache();
    this.#text?.states.release();
    this.#text = null;
  }

  /**
   * VAE-decodes `z` [1, 4, h, w] (already divided by scaling_factor; released here) → HWC RGB in
   * [0, 1] (see {@linkcode decodeScanlines} for the PNG's bytes). The f16 image is widened on the
   * GPU (microseconds) rather than by Float16Array on the CPU (~10 ms for 512×512 on the GPU
   * machine's CPU) and read back whole.
   */
  async decodeTensor(
    z: Tensor,
    h: number,
    w: number,
    onNote?: (text: string) => void,
  ): Promise<Float32Array> {
    const chw = await this.#decodeChecked(z, onNote, async (img) => {
      const img32 = img.dtype === "f32" ? img : cast(img, "f32");
      if (img32 !== img) img.release();
      try {
        const chw = await img32.read();
        const bad = chw.findIndex((v) => !Number.isFinite(v));
        return { value: chw, firstBad: bad < 0 ? null : bad };
      } finally {
        img32.release();
      }
    });
    return chwToHwc01(chw, 3, 8 * h, 8 * w);
  }

  /**
   * VAE-decodes `z` [1, 4, h, w] (released here) → the PNG scanlines of the 8-bit image, made on
   * the GPU (src/ops/png_rows.ts): only 1 + 3W bytes a row and a NaN/Inf index come back.
   */
  decodeScanlines(z: Tensor, onNote?: (text: string) => void): Promise<Uint8Array> {
    return this.#decodeChecked(z, onNote, async (img) => {
      try {
        const { rows, firstBad } = await readPngScanlines(img);
        return { value: rows, firstBad };
      } finally {
        img.release();
      }
    });
  }

  /**
   * The VAE decode of `z` (released here) read by `read` (which releases the image it is given),
   * and the one NaN/Inf policy: only the image is read back (a readback is a wait); the latents
   * are read only to say where a NaN/Inf came from. An f16 VAE whose image has NaN/Inf is
   * replaced by an f32 one and the image decoded again (`onNote` says so).
   */
  async #decodeChecked<T>(
    z: Tensor,
    onNote: ((text: string) => void) | undefined,
    read: (img: Tensor) => Promise<ReadImage<T>>,
  ): Promise<T> {
    try {
      let out = await read(this.vae.decode(z));
      if (out.firstBad !== null) {
        assertFinite(await z.read(), "the final latents");
        if (this.vae.store.dtype === "f16") {
          onNote?.("sd: the f16 VAE overflowed (NaN/Inf): decoding in f32 from now on");
          await this.reloadVae("f32");
          const z32 = cast(z, "f32");
          try {
            out = await read(this.vae.decode(z32));
          } finally {
            z32.release();
          }
        }
        if (out.firstBad !== null) throw nonFinite("the decoded image", out.firstBad);
      }
      return out.value;
    } finally {
      z.release();
    }
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
