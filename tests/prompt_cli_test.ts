/**
 * Emphasis, long prompts and clip skip through the `sd` command (a subprocess, the PNG read
 * back): every features text case with the fixture's own arguments, f32 within max abs
 * 0.02 + 1/255 of the reference image (clip skip: `image_a1111`, the negative prompt skipped
 * too), f16 within mean abs 0.01; the PNG's `Clip skip:`; `sd tokens` plain and `--chunks`; the
 * options' errors.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { featureCli, featureGolden, textCases } from "./features.ts";
import { TINY, TINY_ARGS } from "./bad_inputs.ts";
import { hasGpu, testGpu } from "./gpu.ts";
import { oneErrorLine, pngText, sd } from "./sd_command.ts";
import { decodePng, imageError, withinImageTolerance } from "./image_compare.ts";
import { withTmp } from "./temp.ts";

for (const precision of ["f32", "f16"] as const) {
  for (const c of await textCases()) {
    Deno.test({
      name: `sd: features case ${c.key} (${precision}) vs its image`,
      ignore: !hasGpu,
      async fn() {
        const gpu = (await testGpu())!;
        if (precision === "f16" && !gpu.hasF16) return;
        await withTmp(async (dir) => {
          const out = join(dir, "out.png");
          const r = await sd(dir, [...featureCli(c), "--precision", precision, "--out", out]);
          assertEquals(r.code, 0, r.stderr);
          const chunks = c.chunks;
          // No truncation warning; a long prompt says how it is encoded.
          assert(!/dropped/.test(r.stderr), r.stderr);
          assertEquals(r.stderr.includes(`in ${chunks} chunks of 75`), chunks > 1, r.stderr);
          const bytes = await Deno.readFile(out);
          const img = decodePng(bytes);
          assertEquals([img.width, img.height], [c.width, c.height]);
          // Clip skip applies to the negative prompt too, as in A1111: `image_a1111`.
          const clipSkip = c.clip_skip;
          const golden = await featureGolden();
          const want = await golden.readF32(`${c.key}.${clipSkip > 1 ? "image_a1111" : "image"}`);
          golden.close();
          const e = imageError(img, want);
          console.log(
            `${c.key} ${precision}: max ${e.max.toFixed(4)} mean ${e.mean.toExponential(2)}`,
          );
          assert(withinImageTolerance(precision, e), `max ${e.max} mean ${e.mean}`);
          const params = pngText(bytes).parameters;
          assert(params.startsWith(c.prompt + "\n"), params);
          assertEquals(params.includes(`Clip skip: ${clipSkip}, `), clipSkip > 1, params);
        });
      },
    });
  }
}

Deno.test("sd tokens: plain ids stay diffusers'; --chunks gives the fixture's ids and weights", async () => {
  const golden = await featureGolden();
  try {
    await withTmp(async (dir) => {
      for (const c of await textCases()) {
        const plain = await sd(dir, ["tokens", c.prompt, "--weights", TINY]);
        assertEquals(plain.code, 0, plain.stderr);
        assertEquals(JSON.parse(plain.stdout).length, 77);
        const chunked = await sd(dir, ["tokens", "--chunks", c.prompt, "--weights", TINY]);
        assertEquals(chunked.code, 0, chunked.stderr);
        const got = JSON.parse(chunked.stdout) as { ids: number[]; weights: number[] }[];
        const ids = [...await golden.readI64(`${c.key}.tokens.cond`)].map(Number);
        const weights = [...await golden.readF32(`${c.key}.weights.cond`)];
        assertEquals(got.flatMap((ch) => ch.ids), ids, c.key);
        assertEquals(got.flatMap((ch) => ch.weights.map(Math.fround)), weights, c.key);
        if (c.chunks > 1) {
          assert(plain.stderr.includes(`in ${c.chunks} chunks`), plain.stderr);
        } else assertEquals(plain.stderr, "");
      }
      const literal = await sd(dir, [
        "tokens",
        "--chunks",
        "--no-emphasis",
        "(a)",
        "--weights",
        TINY,
      ]);
      const plain = await sd(dir, ["tokens", "(a)", "--weights", TINY]);
      assertEquals(JSON.parse(literal.stdout)[0].ids, JSON.parse(plain.stdout));
    });
  } finally {
    golden.close();
  }
});

Deno.test({
  name: "sd: --clip-skip over the text encoder's layers (tiny-sd: 3): one line, exit 2, no file",
  ignore: !hasGpu,
  async fn() {
    await withTmp(async (dir) => {
      const r = await sd(dir, ["a cat", ...TINY_ARGS, "--clip-skip", "4"]);
      assertEquals(r.code, 2, r.stderr);
      oneErrorLine(r, "has 3 layers");
      assertEquals([...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".png")), []);
    });
  },
});
