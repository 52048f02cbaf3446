/**
 * A1111's emphasis syntax: the doctest examples of its `parse_prompt_attention`, the fixture
 * cases' fragments, and the edge cases (escapes, lone backslashes, unbalanced brackets, weights
 * with spaces, a weighted `:w)` outside brackets, BREAK, angle-bracket tags).
 */

import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { UserError } from "../src/errors.ts";
import { type Fragment, literalPrompt, parsePrompt } from "../src/prompt/parser.ts";
import { textCases } from "./features.ts";

/** Fragments as A1111 prints them: [text, weight], a BREAK as ["BREAK", -1]. */
function pairs(fragments: Fragment[]): [string, number][] {
  return fragments.map((f) => f.kind === "text" ? [f.text, f.weight] : ["BREAK", -1]);
}

Deno.test("parsePrompt: A1111's doctest examples, weights as the same doubles", () => {
  assertEquals(pairs(parsePrompt("normal text")), [["normal text", 1]]);
  assertEquals(pairs(parsePrompt("an (important) word")), [
    ["an ", 1],
    ["important", 1.1],
    [" word", 1],
  ]);
  assertEquals(pairs(parsePrompt("(unbalanced")), [["unbalanced", 1.1]]);
  assertEquals(pairs(parsePrompt("\\(literal\\]")), [["(literal]", 1]]);
  assertEquals(pairs(parsePrompt("(unnecessary)(parens)")), [["unnecessaryparens", 1.1]]);
  assertEquals(pairs(parsePrompt("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")), [
    ["a ", 1],
    ["house", 1.5730000000000004],
    [" ", 1.1],
    ["on", 1],
    [" a ", 1.1],
    ["hill", 0.55],
    [", sun, ", 1.1],
    ["sky", 1.4641000000000006],
    [".", 1.1],
  ]);
});

Deno.test("parsePrompt: the fragments of every features text case", async () => {
  const cases = await textCases();
  assertEquals(cases.length, 3);
  for (const c of cases) {
    assertEquals(pairs(parsePrompt(c.prompt)), c.cond_fragments, `${c.key} prompt`);
    assertEquals(
      pairs(parsePrompt(c.negative_prompt)),
      c.uncond_fragments,
      `${c.key} negative`,
    );
  }
});

Deno.test("parsePrompt: escapes, brackets, weights and plain text edge cases", () => {
  // A backslash escapes ( ) [ ] and itself; before anything else it is dropped, as A1111 does.
  assertEquals(pairs(parsePrompt("a\\\\b \\[c\\] d\\e")), [["a\\b [c] de", 1]]);
  // Unopened closers are text; unclosed openers run to the end.
  assertEquals(pairs(parsePrompt("a) b] c")), [["a) b] c", 1]]);
  assertEquals(pairs(parsePrompt("[a (b")), [["a ", 1 / 1.1], ["b", 1.1 / 1.1]]);
  assertEquals(pairs(parsePrompt("[[a]]")), [["a", 1 / 1.1 / 1.1]]);
  // Spaces around the weight; a weight may be signed or start with a dot.
  assertEquals(pairs(parsePrompt("(a: 1.5 )")), [["a", 1.5]]);
  assertEquals(pairs(parsePrompt("(a:.5) (b:-1)")), [["a", 0.5], [" ", 1], ["b", -1]]);
  // Nested explicit weights multiply; (x:w) inside [ ] too.
  assertEquals(pairs(parsePrompt("((a:2):3)")), [["a", 6]]);
  assertEquals(pairs(parsePrompt("[(a:2)]")), [["a", 2 / 1.1]]);
  // `:w)` with no open round bracket, colons and words: plain text.
  assertEquals(pairs(parsePrompt("a:1.5) b:c")), [["a:1.5) b:c", 1]]);
  assertEquals(pairs(parsePrompt("[a:1.5)]")), [["a:1.5)", 1 / 1.1]]);
  // A weight that is not a number inside round brackets: a usage error (A1111 crashes).
  const e = assertThrows(() => parsePrompt("(a:1.2.3)"), '"1.2.3"');
  assert(e instanceof UserError && e.kind === "usage", `${e}`);
  // Angle-bracket tags (LoRA, hypernetworks) are plain text to this parser.
  assertEquals(pairs(parsePrompt("<lora:x:0.5> (a)")), [["<lora:x:0.5> ", 1], ["a", 1.1]]);
  // Empty input and empty brackets.
  assertEquals(pairs(parsePrompt("")), [["", 1]]);
  assertEquals(pairs(parsePrompt("()")), [["", 1]]);
  assertEquals(pairs(literalPrompt("(a)")), [["(a)", 1]]);
});

Deno.test("parsePrompt: BREAK is a word of its own, spaces around it dropped", () => {
  assertEquals(pairs(parsePrompt("a BREAK b")), [["a", 1], ["BREAK", -1], ["b", 1]]);
  assertEquals(pairs(parsePrompt("aBREAK b, break, BREAKING")), [["aBREAK b, break, BREAKING", 1]]);
  // As in A1111, the text after a BREAK is a fragment even when empty.
  assertEquals(pairs(parsePrompt("a\nBREAK\n(b)")), [
    ["a", 1],
    ["BREAK", -1],
    ["", 1],
    ["b", 1.1],
  ]);
  // Inside brackets it still breaks (A1111 would read the word "break" at weight −1.1).
  assertEquals(pairs(parsePrompt("(a BREAK b)")), [["a", 1.1], ["BREAK", -1], ["b", 1.1]]);
  assertEquals(pairs(parsePrompt("éBREAK")), [["éBREAK", 1]]);
});
