/**
 * The text stage on tiny-sd against the features fixture's `text.*` states (A1111's reading:
 * per-chunk encoding, emphasis with mean restore, chunks side by side, clip skip for prompt and
 * negative): f32 within relative L2 1e-4; and A1111's emphasis arithmetic on the CPU.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { StableDiffusion } from "../src/pipeline.ts";
import { applyEmphasis } from "../src/prompt/encoder.ts";
import { featureGolden, textCases } from "./features.ts";
import { fixture } from "./fixtures.ts";
import { hasGpu, relL2, testGpu } from "./gpu.ts";

Deno.test("applyEmphasis: z·w, then the chunk's mean restored; weights 1 leave it untouched", () => {
  const z = new Float32Array([1, 2, 3, 4, 5, 6]); // 3 tokens × 2 channels
  const w = [1, 2, 0.5];
  const zw = [1, 2, 6, 8, 2.5, 3];
  const k = 21 / zw.reduce((a, b) => a + b);
  applyEmphasis(z, w, 2);
  zw.forEach((v, i) => assert(Math.abs(z[i] - v * k) < 1e-6, `z[${i}] ${z[i]} vs ${v * k}`));
  assert(Math.abs(z.reduce((a, b) => a + b) - 21) < 1e-5, "mean restored");
  const same = new Float32Array([0.1, -0.7, 3]);
  applyEmphasis(same, [1, 1, 1], 1);
  assertEquals([...same], [...new Float32Array([0.1, -0.7, 3])]);
});

Deno.test({
  name: "text stage: every features text case's states (f32) vs the fixture, rel L2 < 1e-4",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const sd = await StableDiffusion.load(gpu, { kind: "dir", dir: fixture("tiny-sd") }, {
      precision: "f32",
    });
    const golden = await featureGolden();
    const lines: string[] = [];
    const failures: string[] = [];
    const compare = async (
      name: string,
      got: Float32Array,
      keys: string[],
    ) => {
      const parts = await Promise.all(keys.map((k) => golden.readF32(k)));
      const want = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      parts.reduce((at, p) => (want.set(p, at), at + p.length), 0);
      const e = relL2(got, want);
      lines.push(`  ${name}: rel L2 ${e.toExponential(2)}`);
      if (!(e < 1e-4)) failures.push(lines.at(-1)!);
    };
    try {
      for (const c of await textCases()) {
        const clipSkip = c.clip_skip;
        const states = await sd.encodeText(c.prompt, c.negative_prompt, true, { clipSkip });
        assertEquals(states.shape, [2, 77 * (c.chunks), 32], c.key);
        // clip skip: A1111 skips the layer for the negative prompt too (`text.uncond_a1111`).
        const uncond = clipSkip > 1 ? "text.uncond_a1111" : "text.uncond";
        await compare(c.key, await states.read(), [`${c.key}.${uncond}`, `${c.key}.text.cond`]);
        states.release();
        if (golden.tensors.has(`${c.key}.text_no_emphasis.cond`)) {
          const literal = await sd.encodeText(c.prompt, "", false, { emphasis: false });
          await compare(`${c.key} --no-emphasis`, await literal.read(), [
            `${c.key}.text_no_emphasis.cond`,
          ]);
          literal.release();
        }
      }
      // No emphasis syntax, ≤ 75 tokens: bit for bit the plain encoder on diffusers' 77 ids.
      const [neg, pos] = ["blurry, (lowres", "a portrait of an old sailor"];
      const plain = await sd.encodeText(pos, neg, true, { emphasis: false });
      const ids = new Uint32Array([neg, pos].flatMap((t) => sd.tokenizer.encode(t).ids));
      const direct = sd.text.forward(ids, 2);
      assertEquals([...await plain.read()], [...await direct.read()], "plain prompt: exact");
      plain.release();
      direct.release();
    } finally {
      golden.close();
    }
    console.log(lines.join("\n"));
    assert(failures.length === 0, failures.join("\n"));
  },
});
