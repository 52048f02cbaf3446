/**
 * The CLIP BPE tokenizer of Stable Diffusion 1.x, from a folder's `vocab.json` and `merges.txt`.
 *
 * The SD repositories ship no `tokenizer.json`, so this builds in memory the tokenizers-library
 * JSON that transformers builds from those two files (its `CLIPConverter`) and runs it with
 * `@huggingface/tokenizers`: NFC, whitespace runs to one space, lower-case; CLIP's split regex then
 * byte-level mapping; BPE with the end-of-word suffix `</w>`; `<|startoftext|>` … `<|endoftext|>`
 * around the text. Padding and truncation to 77 are done here, as `CLIPTokenizer(...,
 * padding="max_length", max_length=77, truncation=True)` does (pad id 49407, the last id stays
 * EOS); {@linkcode ClipTokenizer.textIds} gives a text's ids alone, for prompts of any length
 * (`src/prompt/chunks.ts`).
 *
 * @module
 */

import { UserError } from "./errors.ts";
import { Tokenizer } from "@huggingface/tokenizers";
import { join } from "./std/path.ts";

/** `<|startoftext|>`, the first id of every prompt. */
export const BOS = 49406;
/** `<|endoftext|>`, which ends every prompt and pads it (SD's tokenizer pads with it). */
export const EOS = 49407;
/** CLIP's context length: every prompt becomes exactly this many ids. */
export const MAX_LENGTH = 77;

const BOS_TOKEN = "<|startoftext|>";
const EOS_TOKEN = "<|endoftext|>";
/**
 * transformers' `CLIPTokenizer` reads `merges.txt` lines `[1 : 49152 - 256 - 2 + 1]`: the
 * vocabulary is 256 bytes ×2 (with and without `</w>`), the merges and the two special tokens.
 */
const MAX_MERGES = 49152 - 256 - 2;

/** A tokenizer folder that cannot be loaded; the message names the file and what is wrong. */
export class TokenizerError extends UserError {
  override name = "TokenizerError";
}

/** The result of {@linkcode ClipTokenizer.encode}. */
export interface ClipEncoding {
  /** Exactly {@linkcode MAX_LENGTH} ids: BOS, the text's ids, EOS, then EOS as padding. */
  ids: number[];
  /** The text of the tokens cut off to fit 77 ids ("" when nothing was cut), as CLIP decodes it. */
  dropped: string;
}

/**
 * CLIP's tokenizer as Stable Diffusion uses it.
 *
 * @example
 * ```ts
 * const tok = await ClipTokenizer.fromFolder("tiny-sd/tokenizer");
 * const { ids } = tok.encode("a photograph of an astronaut riding a horse");
 * tok.textIds("a cat"); // [320, 2368]
 * ```
 */
export class ClipTokenizer {
  readonly #tokenizer: Tokenizer;

  private constructor(tokenizer: Tokenizer) {
    this.#tokenizer = tokenizer;
  }

  /**
   * Loads `vocab.json` and `merges.txt` from `dir`; a missing or malformed file throws a
   * {@linkcode TokenizerError} naming it.
   */
  static async fromFolder(dir: string): Promise<ClipTokenizer> {
    return new ClipTokenizer(new Tokenizer(await clipTokenizerJson(dir), {}));
  }

  /** The ids of `text` without BOS and EOS, however many (`add_special_tokens=False`). */
  textIds(text: string): number[] {
    return this.#tokenizer.encode(text).ids.slice(1, -1); // [BOS, ...text, EOS]
  }

  /**
   * Tokenizes `prompt` to exactly 77 ids as diffusers does (truncating), reporting any text cut
   * off to fit.
   */
  encode(prompt: string): ClipEncoding {
    const text = this.textIds(prompt);
    const room = MAX_LENGTH - 2;
    const kept = text.slice(0, room);
    const cut = text.slice(room);
    const ids = [BOS, ...kept, EOS];
    while (ids.length < MAX_LENGTH) ids.push(EOS);
    const dropped = cut.length === 0
      ? ""
      : this.#tokenizer.decode(cut, { clean_up_tokenization_spaces: false }).trim();
    return { ids, dropped };
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new TokenizerError(
        `${path}: not found (a CLIP tokenizer needs vocab.json and merges.txt)`,
      );
    }
    throw new TokenizerError(`${path}: cannot be read: ${(e as Error).message}`);
  }
}

function parseVocab(text: string, path: string): Record<string, number> {
  let vocab: unknown;
  try {
    vocab = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  if (vocab === null || typeof vocab !== "object" || Array.isArray(vocab)) {
    throw new TokenizerError(`${path}: expected a JSON object of token → id`);
  }
  const entries = Object.entries(vocab);
  const bad = entries.find(([, id]) => !Number.isInteger(id) || (id as number) < 0);
  if (bad) {
    throw new TokenizerError(
      `${path}: token ${JSON.stringify(bad[0])} has id ${
        JSON.stringify(bad[1])
      }, not a non-negative integer`,
    );
  }
  const ids = vocab as Record<string, number>;
  for (const [token, id] of [[BOS_TOKEN, BOS], [EOS_TOKEN, EOS]] as const) {
    if (ids[token] !== id) {
      throw new TokenizerError(
        `${path}: ${token} must have id ${id} (found ${ids[token]}); not a CLIP vocabulary`,
      );
    }
  }
  return ids;
}

function parseMerges(text: string, path: string): [string, string][] {
  const lines = text.split("\n");
  const merges: [string, string][] = [];
  for (let i = 0; i < lines.length && merges.length < MAX_MERGES; i++) {
    const line = lines[i].replace(/\r$/, "");
    if (line === "" || (i === 0 && line.startsWith("#version"))) continue;
    const parts = line.split(" ");
    if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
      throw new TokenizerError(
        `${path}:${i + 1}: expected two space-separated tokens, got ${JSON.stringify(line)}`,
      );
    }
    merges.push([parts[0], parts[1]]);
  }
  if (merges.length === 0) throw new TokenizerError(`${path}: no merges`);
  return merges;
}

/**
 * The tokenizers-library JSON of CLIP built from `dir`'s `vocab.json` and `merges.txt`, as
 * transformers' `CLIPConverter` builds it, except `padding` (transformers sets a fixed 77), left
 * `null` because {@linkcode ClipTokenizer.encode} pads and truncates itself. Exported for tests.
 */
export async function clipTokenizerJson(dir: string): Promise<Record<string, unknown>> {
  const vocabPath = join(dir, "vocab.json");
  const mergesPath = join(dir, "merges.txt");
  const vocab = parseVocab(await readText(vocabPath), vocabPath);
  const merges = parseMerges(await readText(mergesPath), mergesPath);
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      { id: BOS, content: BOS_TOKEN, normalized: true, special: true },
      { id: EOS, content: EOS_TOKEN, normalized: false, special: true },
    ].map((t) => ({ single_word: false, lstrip: false, rstrip: false, ...t })),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "NFC" },
        { type: "Replace", pattern: { Regex: "\\s+" }, content: " " },
        { type: "Lowercase" },
      ],
    },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        {
          // CLIP's `pat` (openai/CLIP simple_tokenizer.py): special tokens, English contractions,
          // letter runs, single digits, runs of other non-space characters; spaces are dropped.
          type: "Split",
          pattern: {
            Regex:
              "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
          },
          behavior: "Removed",
          invert: true,
        },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      ],
    },
    post_processor: {
      type: "RobertaProcessing",
      sep: [EOS_TOKEN, EOS],
      cls: [BOS_TOKEN, BOS],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: EOS_TOKEN,
      continuing_subword_prefix: "",
      end_of_word_suffix: "</w>",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}
