/**
 * AUTOMATIC1111's prompt emphasis syntax (its `prompt_parser.parse_prompt_attention`): the prompt
 * becomes a list of text fragments, each with the weight its brackets give it.
 *
 * - `(text)` multiplies the weight of `text` by 1.1, `((text))` by 1.1², `[text]` divides it by
 *   1.1, `(text:1.5)` multiplies it by 1.5 (spaces allowed around the number);
 * - `\(`, `\)`, `\[`, `\]`, `\\` are the literal characters; a backslash before anything else is
 *   dropped (as A1111 drops it);
 * - unbalanced brackets are not an error: a `(` or `[` never closed applies to the end of the
 *   prompt, a `)` or `]` never opened is plain text — as in A1111;
 * - `BREAK` (upper case, a word of its own) ends the current 75-token chunk. A1111 reads a BREAK
 *   inside brackets as the word "break" with a negative weight (an accident of its -1 marker);
 *   here it always breaks;
 * - everything else is plain text, `<lora:…>` and other angle-bracket tags included.
 *
 * Runs of equal weight are merged, so a prompt without this syntax is one fragment of weight 1.
 * Weights are multiplied in the order A1111 multiplies them, so they are the same doubles.
 *
 * @module
 */

import { UserError } from "../errors.ts";

/** A run of prompt text and the weight of its tokens. */
export interface TextFragment {
  kind: "text";
  text: string;
  weight: number;
}

/** `BREAK`: the next fragment starts a new chunk. */
export interface BreakFragment {
  kind: "break";
}

/** One piece of a parsed prompt. */
export type Fragment = TextFragment | BreakFragment;

/** `(text)` multiplies weights by this; `[text]` divides by it. */
export const ROUND_MULTIPLIER = 1.1;
const SQUARE_MULTIPLIER = 1 / ROUND_MULTIPLIER;

/**
 * A1111's `re_attention`, alternative by alternative: escapes, a lone backslash, openings, the
 * weighted closing `:1.5)`, closings, plain text, a lone colon. Every character of a prompt
 * belongs to exactly one match.
 */
const ATTENTION = /\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()[\]:]+|:/g;
/** A1111's `re_break` (`\s*\bBREAK\b\s*`), with Python's Unicode word characters. */
const BREAK = /\s*(?<![\p{L}\p{N}_])BREAK(?![\p{L}\p{N}_])\s*/u;

/**
 * Parses A1111's emphasis syntax.
 *
 * @throws {UserError} (usage) for a `(text:w)` whose w is not a number (`(a:1.2.3)`)
 * @example
 * ```ts
 * parsePrompt("an (important) word");
 * // [{text: "an ", weight: 1}, {text: "important", weight: 1.1}, {text: " word", weight: 1}]
 * ```
 */
export function parsePrompt(prompt: string): Fragment[] {
  const res: Fragment[] = [];
  const round: number[] = [];
  const square: number[] = [];
  const multiplyFrom = (start: number, m: number) => {
    for (let p = start; p < res.length; p++) {
      const f = res[p];
      if (f.kind === "text") f.weight *= m;
    }
  };
  const text = (t: string) => res.push({ kind: "text", text: t, weight: 1 });

  for (const match of prompt.matchAll(ATTENTION)) {
    const token = match[0];
    const weight = match[1];
    if (token.startsWith("\\")) text(token.slice(1));
    else if (token === "(") round.push(res.length);
    else if (token === "[") square.push(res.length);
    else if (weight !== undefined && round.length) {
      const w = Number(weight);
      if (!Number.isFinite(w)) {
        throw new UserError(
          `the prompt weight "${weight}" in "(…${token}" is not a number; write e.g. (word:1.2), or \\( \\) for literal brackets`,
          { kind: "usage" },
        );
      }
      multiplyFrom(round.pop()!, w);
    } else if (token === ")" && round.length) multiplyFrom(round.pop()!, ROUND_MULTIPLIER);
    else if (token === "]" && square.length) multiplyFrom(square.pop()!, SQUARE_MULTIPLIER);
    else {
      token.split(BREAK).forEach((part, i) => {
        if (i > 0) res.push({ kind: "break" });
        text(part);
      });
    }
  }
  for (const pos of round) multiplyFrom(pos, ROUND_MULTIPLIER);
  for (const pos of square) multiplyFrom(pos, SQUARE_MULTIPLIER);
  return mergeRuns(res);
}

/** The prompt read literally (`--no-emphasis`): one fragment of weight 1. */
export function literalPrompt(prompt: string): Fragment[] {
  return [{ kind: "text", text: prompt, weight: 1 }];
}

/** Merges neighbouring text fragments of equal weight; an empty list becomes `[("", 1)]`. */
function mergeRuns(res: Fragment[]): Fragment[] {
  const out: Fragment[] = [];
  for (const f of res) {
    const last = out.at(-1);
    if (f.kind === "text" && last?.kind === "text" && last.weight === f.weight) {
      last.text += f.text;
    } else out.push(f);
  }
  return out.length ? out : literalPrompt("");
}
