/** `sd tokens`: the plain ids, the chunk listing, and the note on a long prompt (kept short). */

import { assert, assertEquals } from "../src/std/assert.ts";
import { tokensOutput } from "../src/cli/tokens.ts";
import { ClipTokenizer } from "../src/tokenizer.ts";
import { fixture } from "./fixtures.ts";

const tokenizer = await ClipTokenizer.fromFolder(fixture("clip-tokenizer"));

Deno.test("tokensOutput: 77 plain ids; chunks with weights; a long prompt's note is one short line", () => {
  const short = tokensOutput(tokenizer, "a cat", { chunks: false, text: {} });
  assertEquals(short.note, null);
  const ids = JSON.parse(short.json) as number[];
  assertEquals([ids.length, ids[0], ids.at(-1)], [77, 49406, 49407]);

  const chunks = JSON.parse(
    tokensOutput(tokenizer, "a (cat:1.5)", { chunks: true, text: {} }).json,
  ) as { ids: number[]; weights: number[] }[];
  assertEquals(chunks.length, 1);
  assert(chunks[0].weights.includes(1.5), JSON.stringify(chunks[0].weights));

  // 3000 words: the note names the count and the chunks, and quotes only the first dropped words.
  const long = Array.from({ length: 3000 }, (_, i) => `w${i}`).join(" ");
  const { note } = tokensOutput(tokenizer, long, { chunks: false, text: {} });
  assert(note !== null && note.startsWith("sd: the prompt has "), `${note}`);
  assert(note.length < 300 && !note.includes("\n"), `${note.length} characters`);
  assert(note.includes("chunks (sd tokens --chunks shows them)"), note);
});
