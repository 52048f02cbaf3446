import { assert, assertEquals, assertRejects } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { BOS, ClipTokenizer, clipTokenizerJson, EOS, MAX_LENGTH } from "../src/tokenizer.ts";
import { fixture } from "./fixtures.ts";

const TOKENIZER_DIR = fixture("clip-tokenizer");

const tokenizer = await ClipTokenizer.fromFolder(TOKENIZER_DIR);

Deno.test("tokenizer: every prompt of tokens.json gives exactly its 77 ids", async () => {
  const cases = JSON.parse(await Deno.readTextFile(fixture("tokens.json"))) as {
    prompt: string;
    ids: number[];
  }[];
  assert(cases.length > 0, "tokens.json has no prompts");
  const failures: string[] = [];
  for (const { prompt, ids } of cases) {
    const got = tokenizer.encode(prompt).ids;
    if (got.join() !== ids.join()) {
      failures.push(`${JSON.stringify(prompt)}\n  got  ${got.join(",")}\n  want ${ids.join(",")}`);
    }
  }
  console.log(`tokens ${cases.length - failures.length}/${cases.length} exact`);
  assertEquals(failures, []);
});

Deno.test("tokenizer: the in-memory JSON equals what transformers builds (but padding)", async () => {
  const reference = JSON.parse(
    await Deno.readTextFile(fixture("clip-tokenizer/tokenizer.reference.json")),
  );
  assertEquals(await clipTokenizerJson(TOKENIZER_DIR), { ...reference, padding: null });
});

Deno.test("tokenizer: a prompt over 77 tokens keeps BOS…EOS and reports the dropped words", () => {
  // "a" is one token: 80 + 2 text tokens, 75 fit between BOS and EOS.
  const { ids, dropped } = tokenizer.encode("a ".repeat(80) + "cat dog");
  assertEquals(ids.length, MAX_LENGTH);
  assertEquals(ids[0], BOS);
  assertEquals(ids[MAX_LENGTH - 1], EOS);
  assert(!ids.slice(1, -1).includes(EOS), "truncated prompt contains padding");
  assertEquals(dropped, "a a a a a cat dog");
});

Deno.test("tokenizer: textIds are encode's ids without BOS, EOS, padding or truncation", () => {
  const long = "a ".repeat(80) + "cat dog";
  const ids = tokenizer.textIds(long);
  assertEquals(ids.length, 82);
  assertEquals(ids.slice(0, 75), tokenizer.encode(long).ids.slice(1, -1));
  assertEquals(tokenizer.textIds(""), []);
  assertEquals(tokenizer.textIds("  "), []);
});

Deno.test("tokenizer: the fixture's long prompt drops exactly the words past 75", async () => {
  const cases = JSON.parse(await Deno.readTextFile(fixture("tokens.json"))) as {
    prompt: string;
  }[];
  const long = cases.find(({ prompt }) => prompt.split(/\s+/).length > MAX_LENGTH);
  assert(long !== undefined, "tokens.json has no prompt longer than 77 words");
  // Its words ("one" … "ten") are one token each.
  const words = long.prompt.trim().split(/\s+/);
  assertEquals(tokenizer.encode(long.prompt).dropped, words.slice(MAX_LENGTH - 2).join(" "));
});

Deno.test("tokenizer: boundaries — 75 text tokens fit, 76 drop one, a cut word reports its tail", () => {
  const full = tokenizer.encode("a ".repeat(75));
  assertEquals(full.dropped, "");
  assertEquals(new Set(full.ids.slice(1, -1)).size, 1); // 75 times the id of "a"
  assertEquals(full.ids[MAX_LENGTH - 1], EOS);
  assertEquals(tokenizer.encode("a ".repeat(76)).dropped, "a");
  // "naïve" is several tokens ("na", …); a cut through it reports the part CLIP does not see.
  const { ids, dropped } = tokenizer.encode("a ".repeat(74) + "naïve");
  assertEquals(ids.length, MAX_LENGTH);
  assert(dropped.length > 0 && "naïve".endsWith(dropped), `dropped ${JSON.stringify(dropped)}`);
  assertEquals(tokenizer.encode("").ids, [BOS, ...new Array(MAX_LENGTH - 1).fill(EOS)]);
});

Deno.test("tokenizer: missing or malformed files give one line naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sd-tokenizer-test-" });
  try {
    const vocabText = await Deno.readTextFile(join(TOKENIZER_DIR, "vocab.json"));
    const mergesText = await Deno.readTextFile(join(TOKENIZER_DIR, "merges.txt"));
    const expectError = async (includes: string) => {
      const err = await assertRejects(() => ClipTokenizer.fromFolder(dir), includes);
      assert(!err.message.includes("\n"), `multi-line message: ${err.message}`);
    };

    await expectError(join(dir, "vocab.json") + ": not found");
    await Deno.writeTextFile(join(dir, "vocab.json"), vocabText);
    await expectError(join(dir, "merges.txt") + ": not found");

    await Deno.writeTextFile(join(dir, "merges.txt"), "#version: 0.2\ni n\nt h e\n");
    await expectError(join(dir, "merges.txt") + ":3: expected two space-separated tokens");
    await Deno.writeTextFile(join(dir, "merges.txt"), mergesText);

    await Deno.writeTextFile(join(dir, "vocab.json"), vocabText.slice(0, 1000));
    await expectError(join(dir, "vocab.json") + ": not valid JSON");
    await Deno.writeTextFile(join(dir, "vocab.json"), JSON.stringify({ a: 0, b: 1 }));
    await expectError(join(dir, "vocab.json") + ": <|startoftext|> must have id 49406");
    await Deno.writeTextFile(join(dir, "vocab.json"), JSON.stringify(["a"]));
    await expectError(join(dir, "vocab.json") + ": expected a JSON object");

    await Deno.writeTextFile(join(dir, "vocab.json"), vocabText);
    const copy = await ClipTokenizer.fromFolder(dir);
    assertEquals(copy.encode("a cat").ids, tokenizer.encode("a cat").ids);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
