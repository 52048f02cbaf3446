/**
 * The GPU runtime: adapter and device, buffers (from the size-class pool of `pool.ts`), a pipeline cache keyed by
 * readable kernel names, dispatch recording into few command buffers, uniforms packed into one
 * ring buffer, and optional per-dispatch timestamps for `--profile`.
 *
 * Everything above this file talks to the GPU through {@linkcode Gpu}.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { type DispatchCost, Profiler } from "./profiler.ts";
import { bufferId, BufferPool } from "./pool.ts";
import { parseBindings, workgroupBytes } from "./wgsl.ts";

/** Element type of a tensor on the GPU. */
export type DType = "f32" | "f16";

/** Bytes per element of a {@linkcode DType}. */
export function bytesOf(dtype: DType): number {
  return dtype === "f16" ? 2 : 4;
}

/** One-line, user-facing GPU error (printed without a stack trace by the CLI). */
export class GpuError extends UserError {
  override name = "GpuError";
}

/**
 * Which limits the device is created with: `adapter` — the adapter's own (up to what it offers,
 * the default); `default` — WebGPU's spec defaults (16 KiB workgroup storage, 256 invocations,
 * 128 MiB storage bindings, 256 MiB buffers, …) and no `shader-f16`, the least any adapter
 * grants: how `sd` runs on a small GPU (Apple, AMD, Intel), and what CI tests on llvmpipe.
 */
export type LimitsMode = "adapter" | "default";

/** The environment variable that selects the {@linkcode LimitsMode} (`SD_WEBGPU_LIMITS=default`). */
export const LIMITS_ENV = "SD_WEBGPU_LIMITS";

/** The {@linkcode LimitsMode} asked for by `SD_WEBGPU_LIMITS` (unset or empty: `adapter`). */
export function limitsModeFromEnv(): LimitsMode {
  let v: string | undefined;
  try {
    v = Deno.env.get(LIMITS_ENV);
  } catch {
    return "adapter"; // no --allow-env: the default
  }
  if (v === undefined || v === "" || v === "adapter") return "adapter";
  if (v === "default") return "default";
  throw new GpuError(
    `${LIMITS_ENV}=${v} is not a limits mode: use ${LIMITS_ENV}=default (WebGPU's spec-default limits) or leave it unset`,
    { kind: "usage" },
  );
}

/**
 * The limits `sd` asks of the adapter in `adapter` mode: every one its kernels and buffers can
 * use more of. Each is requested at the adapter's value (never more); the kernels then read the
 * granted values ({@linkcode Gpu.limits}) and choose tiles that fit.
 */
const WANTED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupsPerDimension",
] as const;

/**
 * A run that does not fit the device's limits: one line naming the limit, its value and what
 * needed more, and what to do (first words: `this GPU's <limit> is`).
 */
export class GpuLimitError extends GpuError {
  override name = "GpuLimitError";
}

const MIB = 1 << 20;

/** Bytes as MiB for messages: whole where whole, else one decimal. */
function mib(bytes: number): string {
  const m = bytes / MIB;
  return Number.isInteger(m) ? `${m} MiB` : `${m.toFixed(1)} MiB`;
}

/** The message of a {@linkcode GpuLimitError}. */
export function limitMessage(
  limit: string,
  max: number,
  bytes: number,
  what: string,
  hasF16: boolean,
  mode: LimitsMode,
): string {
  const ways = ["a smaller --width/--height"];
  if (hasF16) ways.push("--precision f16");
  ways.push(
    mode === "default" ? `unset ${LIMITS_ENV} (now default)` : "a GPU with larger limits",
  );
  const last = ways.pop()!;
  return `this GPU's ${limit} is ${mib(max)}, and ${what} needs ${mib(bytes)}: use ${
    ways.join(", ")
  } or ${last}`;
}

/** Options for {@linkcode Gpu.create}. */
export interface GpuOptions {
  /** Record per-dispatch GPU timestamps (needs `timestamp-query`). */
  profile?: boolean;
  /** Use the `shader-f16` feature if the adapter has it (default true; never in `default` mode). */
  wantF16?: boolean;
  /** The limits to create the device with (default: from `SD_WEBGPU_LIMITS`, else `adapter`). */
  limits?: LimitsMode;
}

/** A compiled compute kernel: its readable name (cache key and profiler label) and pipeline. */
export interface Kernel {
  readonly name: string;
  readonly pipeline: GPUComputePipeline;
  /** The explicit layout of group 0 (uniforms at binding 0 with a dynamic offset). */
  readonly layout: GPUBindGroupLayout;
  /** Bindings 1…n: read-only storage (true) or read-write storage (false). */
  readonly readOnly: readonly boolean[];
  /** Wall time its creation took (WGSL expansion, shader module, pipeline), ms. */
  readonly compileMs: number;
}

/** Commands finished by {@linkcode Gpu.finishCommands}, waiting for {@linkcode Gpu.submitRecorded}. */
export interface RecordedCommands {
  /** The command buffer. */
  readonly commands: GPUCommandBuffer;
  /** Its dispatches' uniforms, written to the uniform ring just before it is submitted. */
  readonly uniforms: ArrayBuffer;
  /** Upload staging buffers it copies from, destroyed once it is submitted. */
  readonly staging: GPUBuffer[];
}

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment on every adapter
const UNIFORM_RING_BYTES = 1 << 20; // 4096 dispatches between flushes
const MAX_PENDING_DISPATCHES = 4096;
const MAX_BIND_GROUPS = 50_000;

/**
 * The device and everything needed to run kernels on it.
 *
 * @example
 * ```ts
 * const gpu = await Gpu.create();
 * console.error(gpu.description, gpu.hasF16);
 * ```
 */
export class Gpu {
  /** The WebGPU device. */
  readonly device: GPUDevice;
  /**
   * Adapter description, e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15.0.6, 256 bits)";
   * "… (WebGPU default limits)" under `SD_WEBGPU_LIMITS=default`.
   */
  readonly description: string;
  /** Whether `shader-f16` is enabled on the device. */
  readonly hasF16: boolean;
  /** How the limits were chosen (`SD_WEBGPU_LIMITS`); the granted values are {@linkcode limits}. */
  readonly limitsMode: LimitsMode;
  /** Whether `timestamp-query` is enabled on the device. */
  readonly hasTimestamps: boolean;
  /** Per-dispatch timings, when profiling was asked for and is possible. */
  readonly profiler: Profiler | null;
  /** Whether dispatches are timed (only with a {@linkcode profiler}; the bench turns it off to time recording). */
  profiling = true;

  #pipelines = new Map<string, Kernel>();
  #pendingErrors: Promise<void>[] = [];
  #firstError: Error | null = null;

  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #dispatches = 0;
  #uniformRing: GPUBuffer;
  #uniformStaging = new ArrayBuffer(UNIFORM_RING_BYTES);
  #uniformOffset = 0;

  #staging: GPUBuffer[] = [];
  #held = 0;

  #pool: BufferPool;
  #bindGroups = new Map<string, GPUBindGroup>();

  private constructor(
    device: GPUDevice,
    description: string,
    hasF16: boolean,
    hasTimestamps: boolean,
    profile: boolean,
    limitsMode: LimitsMode,
  ) {
    this.device = device;
    this.description = description;
    this.hasF16 = hasF16;
    this.limitsMode = limitsMode;
    this.hasTimestamps = hasTimestamps;
    this.profiler = profile && hasTimestamps ? new Profiler(device) : null;
    this.#pool = new BufferPool(
      (size, label) => this.#createBuffer(size, label),
      device.limits.maxBufferSize,
    );
    this.#uniformRing = device.createBuffer({
      label: "uniform-ring",
      size: UNIFORM_RING_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.addEventListener("uncapturederror", (e) => {
      const err = (e as GPUUncapturedErrorEvent).error;
      console.error(`sd: GPU error: ${err.message.split("\n")[0]}`);
    });
  }

  /**
   * Requests the adapter and a device with the adapter's buffer and workgroup limits and the
   * features `shader-f16` and `timestamp-query` when present — or, in `default` limits mode,
   * WebGPU's spec-default limits and no `shader-f16`.
   *
   * @throws {GpuError} with one line saying what to do when there is no adapter.
   */
  static async create(opts: GpuOptions = {}): Promise<Gpu> {
    const mode = opts.limits ?? limitsModeFromEnv();
    if (!("gpu" in navigator) || !navigator.gpu) {
      throw new GpuError(
        "no WebGPU in this Deno: use Deno 2.x (deno.com); on Linux without a GPU install mesa-vulkan-drivers",
      );
    }
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) {
      throw new GpuError(
        "no GPU adapter found: install a Vulkan driver (on Linux without a GPU: apt-get install mesa-vulkan-drivers)",
      );
    }
    const wanted: GPUFeatureName[] = [];
    const hasF16 = mode === "adapter" && (opts.wantF16 ?? true) &&
      adapter.features.has("shader-f16");
    if (hasF16) wanted.push("shader-f16");
    const hasTimestamps = adapter.features.has("timestamp-query");
    if (hasTimestamps && opts.profile) wanted.push("timestamp-query");
    const requiredLimits: Record<string, number> = {};
    if (mode === "adapter") {
      for (const name of WANTED_LIMITS) requiredLimits[name] = adapter.limits[name];
    }
    const device = await adapter.requestDevice({ requiredFeatures: wanted, requiredLimits });
    const info = adapter.info;
    const name = info.description || `${info.vendor} ${info.device}`.trim();
    const description = mode === "default" ? `${name} (WebGPU default limits)` : name;
    return new Gpu(
      device,
      description,
      hasF16,
      hasTimestamps && !!opts.profile,
      !!opts.profile,
      mode,
    );
  }

  /** The limits the device was granted: every kernel's tile choice reads them. */
  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Largest storage-buffer binding, in bytes. */
  get maxBinding(): number {
    return this.device.limits.maxStorageBufferBindingSize;
  }

  /** Milliseconds spent creating pipelines so far. */
  get compileMs(): number {
    let ms = 0;
    for (const k of this.#pipelines.values()) ms += k.compileMs;
    return ms;
  }

  /** Bytes currently held in GPU buffers (pooled ones included). */
  get allocatedBytes(): number {
    return this.#pool.allocatedBytes;
  }

  /** Highest {@linkcode allocatedBytes} seen. */
  get peakBytes(): number {
    return this.#pool.peakBytes;
  }

  /** Resets the peak-memory mark to the current allocation. */
  resetPeak(): void {
    this.#pool.resetPeak();
  }

  /**
   * Returns the cached kernel `name`, creating it from `source()` inside a validation error
   * scope whose message names the kernel. Errors surface at the next {@linkcode flush}.
   */
  kernel(name: string, source: () => string): Kernel {
    const hit = this.#pipelines.get(name);
    if (hit) return hit;
    const t0 = performance.now();
    const code = source();
    const readOnly = parseBindings(name, code);
    // The tile choosers keep within this limit; a kernel over it is a bug in them. Checked here
    // because wgpu does not (drivers with less workgroup memory would fail or misbehave).
    if (readOnly.length > this.limits.maxStorageBuffersPerShaderStage) {
      throw new Error(
        `kernel ${name} binds ${readOnly.length} storage buffers, over this GPU's maxStorageBuffersPerShaderStage (${this.limits.maxStorageBuffersPerShaderStage})`,
      );
    }
    const smem = workgroupBytes(code);
    if (smem > this.limits.maxComputeWorkgroupStorageSize) {
      throw new Error(
        `kernel ${name} needs ${smem} bytes of workgroup memory, over this GPU's maxComputeWorkgroupStorageSize (${this.limits.maxComputeWorkgroupStorageSize})`,
      );
    }
    this.device.pushErrorScope("validation");
    const layout = this.device.createBindGroupLayout({
      label: name,
      entries: [
        {
          binding: 0,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: "uniform", hasDynamicOffset: true },
        },
        ...readOnly.map((ro, i): GPUBindGroupLayoutEntry => ({
          binding: i + 1,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: ro ? "read-only-storage" : "storage" },
        })),
      ],
    });
    const module = this.device.createShaderModule({ label: name, code });
    const pipeline = this.device.createComputePipeline({
      label: name,
      layout: this.device.createPipelineLayout({ label: name, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    this.#track(
      this.device.popErrorScope().then((err) => {
        if (err) {
          throw new GpuError(
            `kernel ${name} failed to compile: ${err.message.split("\n").slice(0, 6).join(" | ")}`,
          );
        }
      }),
    );
    const k: Kernel = { name, pipeline, layout, readOnly, compileMs: performance.now() - t0 };
    this.#pipelines.set(name, k);
    return k;
  }

  /** Names of every kernel compiled so far. */
  kernelNames(): string[] {
    return [...this.#pipelines.keys()];
  }

  /** Every kernel compiled so far with its creation time, slowest first. */
  compileTimes(): { name: string; ms: number }[] {
    return [...this.#pipelines.values()]
      .map((k) => ({ name: k.name, ms: k.compileMs }))
      .sort((a, b) => b.ms - a.ms);
  }

  /**
   * A buffer of at least `bytes` from the pool (storage, copy-src, copy-dst). `exact` skips the
   * pool's size classes (weights, which live for the whole run).
   */
  alloc(bytes: number, label = "tensor", exact = false): GPUBuffer {
    this.checkLimit("maxBufferSize", bytes, label);
    return this.#pool.alloc(bytes, label, exact);
  }

  /**
   * Throws a {@linkcode GpuLimitError} when `bytes` for `what` exceed the device's `limit`
   * (`maxBufferSize`, or `maxStorageBufferBindingSize` for a buffer a kernel binds whole).
   */
  checkLimit(
    limit: "maxBufferSize" | "maxStorageBufferBindingSize",
    bytes: number,
    what: string,
  ): void {
    const max = this.device.limits[limit];
    if (bytes <= max) return;
    throw new GpuLimitError(limitMessage(limit, max, bytes, what, this.hasF16, this.limitsMode));
  }

  /**
   * A new pool buffer of `size` bytes (within `maxBufferSize`: {@linkcode alloc} checked the
   * request, and the pool clamps its size classes); its out-of-memory error surfaces at the next
   * check.
   */
  #createBuffer(size: number, label: string): GPUBuffer {
    this.device.pushErrorScope("out-of-memory");
    const buf = this.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    this.#track(
      this.device.popErrorScope().then((err) => {
        if (err) {
          throw new GpuError(
            `out of GPU memory allocating ${size} bytes for ${label}: use a smaller image or --precision f16`,
          );
        }
      }),
    );
    return buf;
  }

  /** Returns a buffer from {@linkcode alloc} to the pool. */
  free(buf: GPUBuffer): void {
    this.#pool.free(buf);
  }

  /**
   * Destroys a buffer from {@linkcode alloc} (it must not be used again). Recorded commands are
   * submitted first: a command buffer that uses a destroyed buffer fails at submit, while
   * submitted work keeps its buffers alive until it has run.
   */
  destroyBuffer(buf: GPUBuffer): void {
    if (!this.#pool.owns(buf)) return;
    this.submit();
    this.#pool.forget(buf);
    this.#bindGroups.clear(); // entries may reference it
    buf.destroy();
  }

  /**
   * Keep pooled buffers when {@linkcode trimPool} is called: the VAE's large activations are then
   * made once, not at every image (each creation costs CPU time), at the price of a higher peak.
   */
  retainPool = false;

  /** Destroys every pooled (free) buffer (see {@linkcode destroyBuffer}), unless retainPool. */
  trimPool(): void {
    if (this.retainPool) return;
    for (const b of this.#pool.takeFree()) this.destroyBuffer(b);
  }

  /** A new buffer holding `data` (padded to 4 bytes). */
  upload(data: ArrayBufferView, label = "upload"): GPUBuffer {
    const buf = this.alloc(data.byteLength, label);
    this.write(buf, data);
    return buf;
  }

  /**
   * Writes `data` at `offset` of `buf`, in order with the work recorded so far. With commands
   * recorded (or finished and not yet submitted) the bytes go through a staging buffer copied in
   * the command encoder: `queue.writeBuffer` would run before those commands, which could still
   * read the buffer's old contents (a pooled buffer is reused as soon as it is released).
   * Otherwise `queue.writeBuffer`.
   */
  write(buf: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    const bytes = data.byteLength;
    const src = new Uint8Array(data.buffer, data.byteOffset, bytes);
    if (this.#encoder || this.#held > 0) {
      const staging = this.device.createBuffer({
        label: "upload-staging",
        size: (bytes + 3) & ~3,
        usage: GPUBufferUsage.COPY_SRC,
        mappedAtCreation: true,
      });
      new Uint8Array(staging.getMappedRange()).set(src);
      staging.unmap();
      this.copy(staging, 0, buf, offset, (bytes + 3) & ~3);
      this.#staging.push(staging);
    } else if (bytes % 4 === 0) {
      this.device.queue.writeBuffer(
        buf,
        offset,
        data.buffer as ArrayBuffer,
        data.byteOffset,
        bytes,
      );
    } else {
      const padded = new Uint8Array((bytes + 3) & ~3);
      padded.set(src);
      this.device.queue.writeBuffer(buf, offset, padded);
    }
  }

  /**
   * Records one dispatch of `kernel` with `uniforms` at binding 0 and `buffers` at bindings 1…n.
   * Nothing runs until {@linkcode flush} (or an implicit flush when the ring is full).
   */
  dispatch(
    kernel: Kernel,
    uniforms: ArrayBuffer,
    buffers: GPUBuffer[],
    workgroups: [number, number?, number?],
    cost: DispatchCost = {},
  ): void {
    const [x, y = 1, z = 1] = workgroups;
    const maxWg = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new GpuError(
        `kernel ${kernel.name}: grid ${x}×${y}×${z} exceeds ${maxWg} per dimension`,
      );
    }
    if (x === 0 || y === 0 || z === 0) return;
    if (
      this.#uniformOffset + UNIFORM_SLOT > UNIFORM_RING_BYTES ||
      this.#dispatches >= MAX_PENDING_DISPATCHES
    ) {
      this.submit();
    }
    const off = this.#uniformOffset;
    new Uint8Array(this.#uniformStaging, off, uniforms.byteLength).set(new Uint8Array(uniforms));
    this.#uniformOffset += UNIFORM_SLOT;
    if (buffers.length !== kernel.readOnly.length) {
      throw new GpuError(
        `kernel ${kernel.name}: ${buffers.length} buffers given, ${kernel.readOnly.length} bound`,
      );
    }
    // Bind groups are cached by kernel and buffers (the uniform slot is a dynamic offset), so the
    // identical dispatch sequence of every denoising step creates none after the first.
    let key = kernel.name;
    for (const b of buffers) key += "|" + bufferId(b);
    let bindGroup = this.#bindGroups.get(key);
    if (!bindGroup) {
      // Each buffer is bound whole: over the binding limit, WebGPU would only log a validation
      // error and skip the dispatch.
      for (const b of buffers) {
        const what = b.label === kernel.name
          ? `the result of kernel ${kernel.name}`
          : `${b.label} (bound by kernel ${kernel.name})`;
        this.checkLimit("maxStorageBufferBindingSize", b.size, what);
      }
      if (this.#bindGroups.size >= MAX_BIND_GROUPS) this.#bindGroups.clear();
      const entries: GPUBindGroupEntry[] = [{
        binding: 0,
        resource: { buffer: this.#uniformRing, offset: 0, size: UNIFORM_SLOT },
      }];
      for (let i = 0; i < buffers.length; i++) {
        entries.push({ binding: i + 1, resource: { buffer: buffers[i] } });
      }
      bindGroup = this.device.createBindGroup({
        label: kernel.name,
        layout: kernel.layout,
        entries,
      });
      this.#bindGroups.set(key, bindGroup);
    }
    this.#encoder ??= this.device.createCommandEncoder({ label: "sd" });
    let pass: GPUComputePassEncoder;
    if (this.profiler && this.profiling) {
      pass = this.#encoder.beginComputePass({
        label: kernel.name,
        timestampWrites: this.profiler.nextWrites(kernel.name, cost),
      });
    } else {
      this.#pass ??= this.#encoder.beginComputePass({ label: "sd" });
      pass = this.#pass;
    }
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bindGroup, [off]);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler && this.profiling) {
      pass.end();
      if (this.profiler.full) this.submit();
    }
    this.#dispatches++;
  }

  /** Records a buffer-to-buffer copy. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.#encoder ??= this.device.createCommandEncoder({ label: "sd" });
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    this.#encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Submits everything recorded so far (without waiting for it). */
  submit(): void {
    const r = this.finishCommands();
    if (r) this.submitRecorded(r);
  }

  /**
   * Ends recording: the commands recorded so far as one command buffer, not yet submitted (null
   * when nothing was recorded). Lets a caller finish the next denoising step before waiting for
   * the previous one, so that the GPU idles only for {@linkcode submitRecorded}.
   */
  finishCommands(): RecordedCommands | null {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    const encoder = this.#encoder;
    if (!encoder) return null;
    this.profiler?.resolve(encoder);
    const r: RecordedCommands = {
      commands: encoder.finish(),
      uniforms: this.#uniformStaging.slice(0, this.#uniformOffset),
      staging: this.#staging,
    };
    this.#encoder = null;
    this.#uniformOffset = 0;
    this.#dispatches = 0;
    this.#staging = [];
    this.#held++;
    return r;
  }

  /**
   * Drops, unsubmitted, every command recorded since the last submit, and forgets commands
   * finished but never handed to {@linkcode submitRecorded}: after a job failed halfway (a batch
   * then goes on with its next job), whose half-recorded work would otherwise run with the next
   * job's, on buffers the pool may have handed out again.
   */
  abandonRecorded(): void {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    this.#encoder?.finish();
    this.#encoder = null;
    for (const b of this.#staging) b.destroy();
    this.#staging = [];
    this.#uniformOffset = 0;
    this.#dispatches = 0;
    this.#held = 0;
    this.profiler?.afterSubmit();
  }

  /** Submits commands from {@linkcode finishCommands} (after their dispatches' uniforms). */
  submitRecorded(r: RecordedCommands): void {
    // queue.writeBuffer runs before the command buffer and after everything submitted earlier.
    if (r.uniforms.byteLength > 0) {
      this.device.queue.writeBuffer(this.#uniformRing, 0, r.uniforms);
    }
    this.device.queue.submit([r.commands]);
    this.profiler?.afterSubmit();
    // Destroying only ends their use by later commands; the submitted copies still run.
    for (const b of r.staging) b.destroy();
    this.#held--;
  }

  /**
   * Submits and waits until the GPU is idle; throws the first named creation error, if any.
   * In Deno 2.9 `onSubmittedWorkDone()` (like `mapAsync`) blocks the calling thread until the GPU
   * has finished everything submitted (measured: the call returns after the work, not the
   * promise), so a flush is also the end of CPU/GPU overlap: the step loop finishes the next
   * step's commands before it flushes the previous one.
   */
  async flush(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    await this.checkErrors();
    await this.profiler?.collect();
  }

  /**
   * Submits and waits for the GPU to finish everything submitted, without awaiting a promise: in
   * Deno 2.9 the `onSubmittedWorkDone()` call itself blocks until then, while its promise
   * resolves ~10 ms later (measured on llvmpipe and an H200). On a runtime where the call does
   * not block this returns at once — only progress reports would then run ahead of the GPU.
   */
  waitIdle(): void {
    this.submit();
    this.device.queue.onSubmittedWorkDone().catch(() => {});
  }

  /** Keeps an error-scope result; its error is rethrown by {@linkcode checkErrors}, never unhandled. */
  #track(p: Promise<void>): void {
    this.#pendingErrors.push(p.catch((e) => {
      this.#firstError ??= e as Error;
    }));
  }

  /** Throws the first pending kernel-compile or out-of-memory error, if any. */
  async checkErrors(): Promise<void> {
    const pending = this.#pendingErrors;
    this.#pendingErrors = [];
    await Promise.all(pending);
    if (this.#firstError) {
      const e = this.#firstError;
      this.#firstError = null;
      throw e;
    }
  }

  /** Reads `bytes` bytes of `buf` from `offset` back to the CPU (submits pending work first). */
  async read(buf: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    const size = (bytes + 3) & ~3;
    const staging = this.device.createBuffer({
      label: "readback",
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.copy(buf, offset, staging, 0, size);
    this.submit();
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    await this.checkErrors();
    return out;
  }

  /** Releases the device. */
  destroy(): void {
    this.retainPool = false;
    this.trimPool();
    this.device.destroy();
  }
}
