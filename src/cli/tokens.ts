/**
 * What `sd tokens` prints: the plain CLIP ids of a prompt (77, as diffusers' tokenizer gives
 * them, brackets read literally and the text cut at 75 tokens), or with `--chunks` what `sd`
 * itself encodes — the prompt's chunks of 77 ids with their emphasis weights.
 *
 * @module
 */

import { CHUNK_TOKENS } from "../prompt/chunks.ts";
import { textChunks, type TextOptions } from "../prompt/encoder.ts";
import type { ClipTokenizer } from "../tokenizer.ts";
import { excerpt } from "./args.ts";

/** The stdout JSON of `sd tokens` and a note for stderr (null for none). */
export interface TokensOutput {
  json: string;
  note: string | null;
}

/**
 * `sd tokens` for `prompt`: with `chunks`, a JSON array of `{"ids": [77], "weights": [77]}`
 * (emphasis parsed unless `text.emphasis` is false), else the 77 plain ids; a plain listing of
 * a prompt over 75 tokens comes with a note saying that `sd` encodes all of it.
 */
export function tokensOutput(
  tokenizer: ClipTokenizer,
  prompt: string,
  opts: { chunks: boolean; text: TextOptions },
): TokensOutput {
  if (opts.chunks) {
    const chunks = textChunks(tokenizer, [prompt], opts.text).chunks[0];
    return {
      json: JSON.stringify(chunks.map(({ ids, weights }) => ({ ids, weights }))),
      note: null,
    };
  }
  const { ids, dropped } = tokenizer.encode(prompt);
  if (!dropped) return { json: JSON.stringify(ids), note: null };
  const n = tokenizer.textIds(prompt).length;
  const k = textChunks(tokenizer, [prompt], opts.text).chunks[0].length;
  return {
    json: JSON.stringify(ids),
    note:
      `sd: the prompt has ${n} tokens: these ids stop at ${CHUNK_TOKENS} (diffusers' truncation, dropping ${
        JSON.stringify(excerpt(dropped))
      }); sd encodes it all, in ${k} chunks (sd tokens --chunks shows them)`,
  };
}
