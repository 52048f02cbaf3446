/**
 * Prompts of any length as CLIP sees them, the way AUTOMATIC1111 feeds them
 * (`sd_hijack_clip.tokenize_line`): each fragment of the parsed prompt is tokenized on its own
 * (no BOS/EOS), the ids concatenated, and cut into chunks of 75; each chunk becomes BOS, its 75
 * ids (padded with EOS) and EOS — 77 ids with a weight each (1 on BOS, EOS and padding). `BREAK`
 * ends a chunk early. The text encoder encodes each chunk on its own and the UNet attends to the
 * chunks' states side by side (77·k tokens).
 *
 * A1111 can also move the words after a comma near a chunk's end into the next chunk (its
 * `comma_padding_backtrack`); this cuts exactly every 75 tokens, as ComfyUI and the issue do.
 *
 * @module
 */

import { BOS, EOS, MAX_LENGTH } from "../tokenizer.ts";
import type { Fragment } from "./parser.ts";

/** Prompt tokens a chunk holds: CLIP's 77 less BOS and EOS. */
export const CHUNK_TOKENS = MAX_LENGTH - 2;

/** One chunk: {@linkcode MAX_LENGTH} ids and their weights. */
export interface PromptChunk {
  ids: number[];
  weights: number[];
}

/** A prompt's chunks and how many tokens its text gave. */
export interface ChunkedPrompt {
  chunks: PromptChunk[];
  /** Prompt tokens (without BOS, EOS and padding). */
  tokens: number;
}

/** The chunk of the empty prompt: BOS then EOS × 76, weights 1. */
export function emptyChunk(): PromptChunk {
  return close([], []);
}

function close(ids: number[], weights: number[]): PromptChunk {
  const pad = CHUNK_TOKENS - ids.length;
  return {
    ids: [BOS, ...ids, ...new Array(pad).fill(EOS), EOS],
    weights: [1, ...weights, ...new Array(pad).fill(1), 1],
  };
}

/**
 * Chunks a parsed prompt; `tokenize` gives a text's CLIP ids without BOS/EOS. At least one chunk
 * (the empty prompt gives {@linkcode emptyChunk}).
 *
 * @example
 * ```ts
 * const { chunks } = chunkPrompt(parsePrompt("a (cat:1.2)"), (t) => tokenizer.textIds(t));
 * chunks[0].weights.slice(0, 4); // [1, 1, 1.2, 1]
 * ```
 */
export function chunkPrompt(
  fragments: readonly Fragment[],
  tokenize: (text: string) => number[],
): ChunkedPrompt {
  const chunks: PromptChunk[] = [];
  let ids: number[] = [], weights: number[] = [];
  let tokens = 0;
  const next = () => {
    chunks.push(close(ids, weights));
    ids = [];
    weights = [];
  };
  for (const f of fragments) {
    if (f.kind === "break") {
      next();
      continue;
    }
    for (const id of tokenize(f.text)) {
      if (ids.length === CHUNK_TOKENS) next();
      ids.push(id);
      weights.push(f.weight);
      tokens++;
    }
  }
  if (ids.length || chunks.length === 0) next();
  return { chunks, tokens };
}

/**
 * Pads every prompt with empty-prompt chunks to the chunk count of the longest (the negative
 * prompt to the prompt's, or the other way round), as A1111 does.
 */
export function padChunks(prompts: readonly PromptChunk[][]): PromptChunk[][] {
  const k = Math.max(...prompts.map((p) => p.length));
  return prompts.map((p) => [...p, ...Array.from({ length: k - p.length }, emptyChunk)]);
}
