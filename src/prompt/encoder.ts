/**
 * The text stage for prompts of any length with A1111's emphasis and clip skip: prompts →
 * chunks (`chunks.ts`, padded to one count) → CLIP on every chunk at once → per chunk A1111's
 * "Original" emphasis → the chunks side by side, [B, 77·k, C], for cross-attention.
 *
 * Emphasis (A1111's `EmphasisOriginal`): z = encoder(chunk); m₀ = mean(z); z ← z · w[token];
 * z ← z · m₀ / mean(z) — the mean over the whole chunk [77, C]. It runs on the CPU in f64 on the
 * states read back (77·C values a chunk: ~0.2 MB for SD), and only for chunks with a weight ≠ 1:
 * those keep the encoder's output bit for bit, so a prompt without emphasis syntax within 75
 * tokens gives exactly diffusers' states, with no readback.
 *
 * @module
 */

import { Tensor } from "../gpu/tensor.ts";
import type { ClipTextModel } from "../models/clip.ts";
import { type ClipTokenizer, MAX_LENGTH } from "../tokenizer.ts";
import { CHUNK_TOKENS, chunkPrompt, padChunks, type PromptChunk } from "./chunks.ts";
import { literalPrompt, parsePrompt } from "./parser.ts";

/** How prompts are read and encoded. */
export interface TextOptions {
  /** Read A1111's emphasis syntax (default true); false reads the text literally. */
  emphasis?: boolean;
  /** A1111's clip skip: 1 = the last layer (default), 2 = the penultimate, … */
  clipSkip?: number;
}

/** The chunks of some texts, padded to one count. */
export interface TextChunks {
  /** Per text, its chunks (all texts the same count). */
  chunks: PromptChunk[][];
  /** Per text, its prompt tokens before padding. */
  tokens: number[];
}

/**
 * Parses (unless `emphasis` is false), tokenizes and chunks `texts`, padding the shorter ones with
 * empty-prompt chunks.
 */
export function textChunks(
  tokenizer: ClipTokenizer,
  texts: readonly string[],
  opts: TextOptions = {},
): TextChunks {
  const read = opts.emphasis ?? true ? parsePrompt : literalPrompt;
  const each = texts.map((t) => chunkPrompt(read(t), (s) => tokenizer.textIds(s)));
  return { chunks: padChunks(each.map((c) => c.chunks)), tokens: each.map((c) => c.tokens) };
}

/**
 * Checks the syntax of `texts` before any work (a job's prompt and negative prompt): what
 * {@linkcode textChunks} would throw.
 *
 * @throws {UserError} (usage) for a `(text:w)` whose w is not a number
 */
export function checkTexts(texts: readonly string[], opts: TextOptions = {}): void {
  if (opts.emphasis ?? true) texts.forEach(parsePrompt);
}

/** The note for texts longer than one chunk, or null. */
export function longPromptNote(texts: TextChunks): string | null {
  const longest = Math.max(...texts.tokens);
  if (longest <= CHUNK_TOKENS) return null;
  const k = texts.chunks[0].length;
  return `sd: a prompt of ${longest} tokens, over CLIP's ${CHUNK_TOKENS}: encoded in ${k} chunks of ${CHUNK_TOKENS} side by side (as A1111 does)`;
}

/**
 * Encodes padded chunks (`texts.chunks`) → [B, 77·k, C] in the encoder's dtype, before emphasis
 * ({@linkcode emphasize}): text b's chunk j at tokens 77·j … 77·j + 76 of row b. Records the
 * encoder's commands and returns at once (a wrapper that swaps weights around it, such as
 * `LoraMerger.withText`, covers them).
 *
 * @throws {UserError} (usage) for a clip skip outside 1 … the encoder's layers
 */
export function encodeChunks(
  model: ClipTextModel,
  prompts: readonly PromptChunk[][],
  clipSkip = 1,
): Tensor {
  const all = prompts.flat();
  const ids = new Uint32Array(all.length * MAX_LENGTH);
  all.forEach((c, i) => ids.set(c.ids, i * MAX_LENGTH));
  // [B·k, 77, C] and [B, 77·k, C] are the same memory: row b's chunks are consecutive.
  const z = model.forward(ids, all.length, clipSkip);
  const out = z.reshape([prompts.length, prompts[0].length * MAX_LENGTH, z.shape[2]]);
  z.release();
  return out;
}

/**
 * A1111's emphasis on the states `z` [B, 77·k, C] of `prompts` (from {@linkcode encodeChunks}):
 * `z` itself when every weight is 1, else a new tensor (and `z` is released).
 */
export async function emphasize(z: Tensor, prompts: readonly PromptChunk[][]): Promise<Tensor> {
  const all = prompts.flat();
  if (all.every((ch) => ch.weights.every((w) => w === 1))) return z;
  const { gpu, dtype, shape } = z;
  const values = await z.read();
  z.release();
  const per = MAX_LENGTH * shape[2];
  all.forEach((ch, i) =>
    applyEmphasis(values.subarray(i * per, (i + 1) * per), ch.weights, shape[2])
  );
  return Tensor.from(gpu, values, shape, dtype, { label: "text_states" });
}

/**
 * A1111's "Original" emphasis on one chunk's states `z` [77, C] (in place): each token's vector
 * times its weight, then the whole chunk rescaled to its former mean. A chunk whose weights are
 * all 1 is left as it is.
 */
export function applyEmphasis(z: Float32Array, weights: readonly number[], channels: number): void {
  if (weights.every((w) => w === 1)) return;
  let before = 0, after = 0;
  for (let t = 0; t < weights.length; t++) {
    for (let i = t * channels; i < (t + 1) * channels; i++) {
      before += z[i];
      after += z[i] * weights[t];
    }
  }
  const restore = before / after;
  for (let t = 0; t < weights.length; t++) {
    const m = weights[t] * restore;
    for (let i = t * channels; i < (t + 1) * channels; i++) z[i] *= m;
  }
}
