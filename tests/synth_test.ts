import { assert, assertEquals } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { SafeTensorsFile } from "../src/weights/safetensors.ts";
import { fnv1a32, synthTensor, synthTensorF16, synthUniform } from "../src/weights/synth.ts";
import { fixture } from "./fixtures.ts";

const TINY = fixture("tiny-sd");

Deno.test("synth: SYNTH.md test vectors", () => {
  // The spec's table: fnv1a32(name) and u[0..3].
  const vectors: [string, number, number[]][] = [
    ["a.weight", 3344269742, [
      -0.27622556686401367,
      0.035887956619262695,
      0.0010263919830322266,
      0.9676042795181274,
    ]],
    ["conv_in.weight", 2984744775, [
      -0.11171114444732666,
      -0.7597850561141968,
      -0.8224461078643799,
      -0.2859511375427246,
    ]],
    ["x.bias", 4097601506, [
      0.4557666778564453,
      0.6477328538894653,
      0.27607178688049316,
      -0.4894881248474121,
    ]],
  ];
  for (const [name, hash, u] of vectors) {
    assertEquals(fnv1a32(name), hash, `fnv1a32(${name})`);
    assertEquals([...synthUniform(name, 4)], u, `u(${name})`);
  }
  const conv = synthTensor("conv_in.weight", [320, 4, 3, 3]);
  assertEquals(conv.length, 320 * 4 * 3 * 3);
  const first = [
    -0.018618524074554443,
    -0.12663084268569946,
    -0.13707435131072998,
    -0.047658521682024,
  ];
  assertEquals([...conv.subarray(0, 4)], first.map(Math.fround));
  // The three branches: fan-in scaled, norm scale, bias — from the same u.
  const u = synthUniform("conv_in.weight", 4);
  assertEquals(
    [...synthTensor("conv_in.weight", [4])],
    [...u].map((x) => Math.fround(1 + 0.1 * x)),
  );
  const ub = synthUniform("x.bias", 4);
  assertEquals([...synthTensor("x.bias", [2, 2])], [...ub].map((x) => Math.fround(x / Math.SQRT2)));
  assertEquals([...synthTensor("x.bias", [4])], [...ub].map((x) => Math.fround(0.05 * x)));
  assertEquals(
    [...synthTensorF16("x.bias", [4])],
    [...synthTensor("x.bias", [4])].map(Math.f16round),
  );
  // A non-ASCII key hashes its UTF-8 bytes (FNV-1a of "é" = c3 a9).
  assertEquals(
    fnv1a32("é"),
    Math.imul(Math.imul(0x811c9dc5 ^ 0xc3, 0x01000193) ^ 0xa9, 0x01000193) >>> 0,
  );
});

/** Index of the first element whose bits differ, or -1. */
function firstBitDiff(a: Uint8Array, b: ArrayBufferView): number {
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (a.length !== y.length) return 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== y[i]) return i;
  return -1;
}

Deno.test("synth: tiny-sd f32 and f16 weights are the formula, bit for bit", async () => {
  const files = {
    unet: "diffusion_pytorch_model",
    vae: "diffusion_pytorch_model",
    text_encoder: "model",
  };
  let tensors = 0, values = 0;
  const t0 = performance.now();
  for (const [dir, stem] of Object.entries(files)) {
    const f32 = await SafeTensorsFile.open(join(TINY, dir, `${stem}.safetensors`));
    const f16 = await SafeTensorsFile.open(join(TINY, dir, `${stem}.fp16.safetensors`));
    assertEquals(f16.tensors.size, f32.tensors.size, `${dir}: tensor counts`);
    const before = tensors;
    for (const info of f32.tensors.values()) {
      if (info.dtype === "I64") {
        assertEquals(info.name, "text_model.embeddings.position_ids");
        const ids = await f32.readI64(info.name);
        assertEquals([...ids], Array.from({ length: 77 }, (_, i) => BigInt(i)), "position_ids");
        assertEquals([...await f16.readI64(info.name)], [...ids], "fp16 position_ids");
        continue;
      }
      assertEquals(info.dtype, "F32", `${dir}/${info.name}`);
      const key = dir === "text_encoder" ? info.name.replace(/^text_model\./, "") : info.name;
      const want = synthTensor(key, info.shape);
      const at = firstBitDiff(await f32.readRaw(info.name), want);
      assert(at < 0, `${dir}/${info.name} [${info.shape}]: f32 differs at byte ${at}`);
      const want16 = synthTensorF16(key, info.shape);
      const at16 = firstBitDiff(await f16.readRaw(info.name), want16);
      assert(at16 < 0, `${dir}/${info.name} [${info.shape}]: f16 differs at byte ${at16}`);
      tensors++;
      values += want.length;
    }
    f32.close();
    f16.close();
    assert(tensors > before, `${dir}: no float tensors checked`);
  }
  console.log(
    `  ${tensors} tensors, ${values} values bit-exact in f32 and f16 ` +
      `(${(performance.now() - t0).toFixed(0)} ms)`,
  );
});
