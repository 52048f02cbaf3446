/**
 * Prompts as chunks of 77 ids and weights: exact against the features fixture's `tokens.*` and
 * `weights.*` (emphasis, a 126-token prompt with a 12-token negative padded with an empty chunk,
 * clip skip), plus the chunk boundaries, BREAK and padding on their own.
 */

import { assert, assertEquals } from "../src/std/assert.ts";
import { BOS, ClipTokenizer, EOS, MAX_LENGTH } from "../src/tokenizer.ts";
import { CHUNK_TOKENS, chunkPrompt, emptyChunk, padChunks } from "../src/prompt/chunks.ts";
import { textChunks } from "../src/prompt/encoder.ts";
import { parsePrompt } from "../src/prompt/parser.ts";
import { featureGolden, textCases } from "./features.ts";
import { fixture } from "./fixtures.ts";

const tokenizer = await ClipTokenizer.fromFolder(fixture("tiny-sd/tokenizer"));
const ids = (t: string) => tokenizer.textIds(t);

Deno.test("chunks: ids and weights of every features text case, exact", async () => {
  const cases = await textCases();
  assertEquals(cases.length, 3, "emphasis, long and clip skip cases");
  const golden = await featureGolden();
  try {
    for (const c of cases) {
      const key = c.key;
      const texts = textChunks(tokenizer, [c.negative_prompt, c.prompt]);
      assertEquals(texts.tokens, [c.uncond_token_count, c.cond_token_count], `${key}: tokens`);
      for (const [i, side] of ["uncond", "cond"].entries()) {
        const chunks = texts.chunks[i];
        assertEquals(chunks.length, c.chunks, `${key}.${side}: chunk count`);
        const wantIds = [...await golden.readI64(`${key}.tokens.${side}`)].map(Number);
        const wantW = [...await golden.readF32(`${key}.weights.${side}`)];
        assertEquals(chunks.flatMap((ch) => ch.ids), wantIds, `${key}.tokens.${side}`);
        assertEquals(
          chunks.flatMap((ch) => ch.weights.map(Math.fround)),
          wantW,
          `${key}.weights.${side}`,
        );
      }
      if (golden.tensors.has(`${key}.tokens_no_emphasis.cond`)) {
        const literal = textChunks(tokenizer, [c.prompt], { emphasis: false });
        const want = [...await golden.readI64(`${key}.tokens_no_emphasis.cond`)].map(Number);
        assertEquals(literal.chunks[0].flatMap((ch) => ch.ids), want, `${key}: --no-emphasis`);
        assertEquals(want, tokenizer.encode(c.prompt).ids, "= diffusers' tokens");
      }
    }
  } finally {
    golden.close();
  }
});

Deno.test("chunks: 75 tokens are one chunk, 76 two; BREAK; the empty prompt; padding", () => {
  const a = ids("a")[0];
  const one = chunkPrompt(parsePrompt("a ".repeat(75)), ids);
  assertEquals(one.chunks.length, 1);
  assertEquals(one.tokens, 75);
  assertEquals(one.chunks[0].ids, [BOS, ...new Array(CHUNK_TOKENS).fill(a), EOS]);
  // Without emphasis syntax and within 75 tokens: exactly diffusers' 77 ids.
  assertEquals(one.chunks[0].ids, tokenizer.encode("a ".repeat(75)).ids);
  const two = chunkPrompt(parsePrompt("a ".repeat(76)), ids);
  assertEquals(two.chunks.length, 2);
  assertEquals(two.chunks[1].ids, [BOS, a, ...new Array(MAX_LENGTH - 2).fill(EOS)]);
  assert(two.chunks.every((c) => c.ids.length === MAX_LENGTH && c.weights.length === MAX_LENGTH));

  const broken = chunkPrompt(parsePrompt("(a) BREAK a"), ids);
  assertEquals(broken.chunks.map((c) => c.ids.slice(0, 3)), [[BOS, a, EOS], [BOS, a, EOS]]);
  assertEquals(broken.chunks.map((c) => c.weights[1]), [1.1, 1]);
  // A BREAK at the start gives an empty chunk first, as in A1111.
  assertEquals(chunkPrompt(parsePrompt("BREAK a"), ids).chunks[0], emptyChunk());

  assertEquals(chunkPrompt(parsePrompt(""), ids).chunks, [emptyChunk()]);
  assertEquals(emptyChunk().ids, tokenizer.encode("").ids);
  assertEquals(emptyChunk().weights, new Array(MAX_LENGTH).fill(1));
  const padded = padChunks([[emptyChunk()], two.chunks]);
  assertEquals(padded[0], [emptyChunk(), emptyChunk()]);
  assertEquals(padded[1], two.chunks);
  assertEquals(EOS, 49407);
});
