/**
 * Device limits: `SD_WEBGPU_LIMITS=default` creates the device with WebGPU's spec-default limits
 * and no `shader-f16`; the workgroup memory a kernel declares is checked against the granted limit
 * (wgpu does not); a buffer over `maxBufferSize` or bound over `maxStorageBufferBindingSize` fails
 * with one line naming the limit and what to do — in-process and through `sd` (a subprocess).
 */

import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { GpuLimitError, LIMITS_ENV, limitsModeFromEnv } from "../src/gpu/device.ts";
import { UserError } from "../src/errors.ts";
import { workgroupBytes } from "../src/gpu/wgsl.ts";
import { Vae } from "../src/models/vae.ts";
import { sd15Configs } from "../src/models/config.ts";
import { fixture } from "./fixtures.ts";
import { defaultLimitsGpu, hasGpu, testGpu } from "./gpu.ts";
import { oneErrorLine, sd } from "./sd_command.ts";
import { listDir, withTmp } from "./temp.ts";

const MIB = 1 << 20;

/** WebGPU's spec defaults of the limits `sd` depends on. */
const SPEC_DEFAULTS = {
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupSizeY: 256,
  maxComputeWorkgroupSizeZ: 64,
  maxStorageBufferBindingSize: 128 * MIB,
  maxBufferSize: 256 * MIB,
  maxStorageBuffersPerShaderStage: 8,
  maxComputeWorkgroupsPerDimension: 65535,
};

/** The error `fn` throws, checked to be an instance of `cls`. */
function thrown<E extends Error>(fn: () => unknown, cls: new (...a: never[]) => E): E {
  const e = assertThrows(fn);
  assert(e instanceof cls, `${e} is not a ${cls.name}`);
  return e;
}

/** Runs `fn` with SD_WEBGPU_LIMITS set to `value` (unset for undefined), then restores it. */
function withLimitsEnv<T>(value: string | undefined, fn: () => T): T {
  const saved = Deno.env.get(LIMITS_ENV);
  if (value === undefined) Deno.env.delete(LIMITS_ENV);
  else Deno.env.set(LIMITS_ENV, value);
  try {
    return fn();
  } finally {
    if (saved === undefined) Deno.env.delete(LIMITS_ENV);
    else Deno.env.set(LIMITS_ENV, saved);
  }
}

Deno.test("limits: SD_WEBGPU_LIMITS is unset/adapter or default; anything else is a usage error", () => {
  assertEquals(withLimitsEnv(undefined, limitsModeFromEnv), "adapter");
  assertEquals(withLimitsEnv("", limitsModeFromEnv), "adapter");
  assertEquals(withLimitsEnv("adapter", limitsModeFromEnv), "adapter");
  assertEquals(withLimitsEnv("default", limitsModeFromEnv), "default");
  const e = thrown(() => withLimitsEnv("small", limitsModeFromEnv), UserError);
  assertEquals(e.kind, "usage");
  assert(e.message.startsWith("SD_WEBGPU_LIMITS=small is not a limits mode: use"), e.message);
});

Deno.test("limits: workgroupBytes reads var<workgroup> arrays sized by consts (16-byte rounding)", () => {
  const code = `
const TY = 4u;
const BM = TY * 4u;          // 16
const A_STRIDE = BM / 4u + 1u; // 5
const WG: u32 = 256u;
var<workgroup> As: array<vec4<f32>, 16u * A_STRIDE>;  // 80 · 16 = 1280
var<workgroup> red: array<f32, WG>;                   // 1024
var<workgroup> chan: array<vec3<f32>, 3>;             // stride 16: 48
var<workgroup> h: array<vec2<f16>, 5>;                // 20 → 32
var<workgroup> one: f32;                              // 4 → 16
`;
  assertEquals(workgroupBytes(code), 1280 + 1024 + 48 + 32 + 16);
  assertThrows(() => workgroupBytes("var<workgroup> x: array<f32, N>;"), "N: not declared");
});

Deno.test({
  name: "limits: the default-limits device has WebGPU's spec defaults and no shader-f16",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await defaultLimitsGpu())!;
    assertEquals(gpu.limitsMode, "default");
    assert(!gpu.hasF16, "no shader-f16 under default limits");
    for (const [name, v] of Object.entries(SPEC_DEFAULTS)) {
      assertEquals(gpu.limits[name as keyof typeof SPEC_DEFAULTS], v, name);
    }
    // The adapter-limits device gets at least as much as the defaults.
    const big = (await testGpu())!;
    for (const [name, v] of Object.entries(SPEC_DEFAULTS)) {
      assert(big.limits[name as keyof typeof SPEC_DEFAULTS] >= v, name);
    }
  },
});

Deno.test({
  name: "limits: a kernel over the workgroup-memory limit is refused by name (wgpu would not)",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await defaultLimitsGpu())!;
    const code = `
@group(0) @binding(0) var<uniform> p: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
var<workgroup> big: array<vec4<f32>, 1300>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) i: u32) {
  big[i] = vec4<f32>(f32(p.x));
  workgroupBarrier();
  o[i] = big[i + 1u].x;
}`;
    assertThrows(
      () => gpu.kernel("limits_test_big_smem", () => code),
      "kernel limits_test_big_smem needs 20800 bytes of workgroup memory, over this GPU's maxComputeWorkgroupStorageSize (16384)",
    );
  },
});

Deno.test({
  name:
    "limits: buffers over maxBufferSize and bindings over maxStorageBufferBindingSize fail with one line",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await defaultLimitsGpu())!;
    const e1 = thrown(() => gpu.alloc(300 * MIB, "vae-activation"), GpuLimitError);
    assertEquals(
      e1.message,
      "this GPU's maxBufferSize is 256 MiB, and vae-activation needs 300 MiB: use a smaller --width/--height or unset SD_WEBGPU_LIMITS (now default)",
    );
    const k = gpu.kernel("limits_test_fill", () => `
@group(0) @binding(0) var<uniform> p: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) { o[id.x] = f32(p.x); }`);
    const big = gpu.alloc(160 * MIB, "scores");
    try {
      const e2 = thrown(
        () => gpu.dispatch(k, new ArrayBuffer(16), [big], [1]),
        GpuLimitError,
      );
      assertEquals(
        e2.message,
        "this GPU's maxStorageBufferBindingSize is 128 MiB, and scores (bound by kernel limits_test_fill) needs 160 MiB: use a smaller --width/--height or unset SD_WEBGPU_LIMITS (now default)",
      );
      await gpu.flush(); // nothing was recorded: no validation error follows
    } finally {
      gpu.destroyBuffer(big);
    }
    // With the adapter's limits and shader-f16 the advice names --precision f16 instead.
    const adapterGpu = (await testGpu())!;
    const over = adapterGpu.limits.maxStorageBufferBindingSize + 1;
    const e3 = thrown(
      () => adapterGpu.checkLimit("maxStorageBufferBindingSize", over, "x"),
      GpuLimitError,
    );
    assert(e3.message.startsWith("this GPU's maxStorageBufferBindingSize is "), e3.message);
    assert(e3.message.endsWith(" or a GPU with larger limits"), e3.message);
    assertEquals(e3.message.includes("--precision f16"), adapterGpu.hasF16, e3.message);
  },
});

Deno.test("limits: the VAE's largest activation — SD 1.5 at 512×512: 256 MiB in f32, 128 MiB in f16", () => {
  const vae = (dtype: "f32" | "f16") => new Vae(sd15Configs().vae, dtype);
  // up_blocks.2's upsampler: 256 channels at 512×512.
  assertEquals(vae("f32").largestActivationBytes(512, 512, false), 256 * 512 * 512 * 4);
  assertEquals(vae("f16").largestActivationBytes(512, 512, true), 256 * MIB / 2);
  assertEquals(vae("f32").largestActivationBytes(256, 384, false), 256 * 256 * 384 * 4);
  // The tiny test VAE: 32 channels at full size, also the encoder's first level at 16.
  const tiny = new Vae({ ...sd15Configs().vae, block_out_channels: [16, 32, 32, 32] }, "f32");
  assertEquals(tiny.largestActivationBytes(1536, 2048, true), 32 * 1536 * 2048 * 4);
});

Deno.test({
  name:
    "limits: `sd` under SD_WEBGPU_LIMITS=default — a size over 128 MiB bindings, f16, a bad mode",
  ignore: !hasGpu,
  async fn() {
    await withTmp(async (dir) => {
      const tiny = ["--weights", fixture("tiny-sd"), "--steps", "2", "--quiet"];
      const env = { [LIMITS_ENV]: "default" };
      // 2048×1536 in f32: the VAE decoder's last level (32 channels) needs 384 MiB; refused
      // before the first step.
      const big = await sd(dir, [
        "a cat",
        ...tiny,
        "--width",
        "2048",
        "--height",
        "1536",
        "-o",
        "out.png",
      ], { env });
      assertEquals(big.code, 1, big.stderr);
      oneErrorLine(
        big,
        "sd: this GPU's maxStorageBufferBindingSize is 128 MiB, and the VAE (f32) at 2048×1536 needs 384 MiB: use a smaller --width/--height or unset SD_WEBGPU_LIMITS (now default)",
      );
      assertEquals(listDir(dir), []);

      const f16 = await sd(dir, ["a cat", ...tiny, "--precision", "f16"], { env });
      assertEquals(f16.code, 1, f16.stderr);
      oneErrorLine(
        f16,
        "sd: --precision f16 needs the shader-f16 feature, which SD_WEBGPU_LIMITS=default turns off: use --precision f32",
      );

      const bad = await sd(dir, ["a cat", ...tiny], { env: { [LIMITS_ENV]: "tiny" } });
      assertEquals(bad.code, 2, bad.stderr);
      oneErrorLine(bad, "sd: SD_WEBGPU_LIMITS=tiny is not a limits mode");
      assertEquals(listDir(dir), []);
    });
  },
});
