/**
 * LoRAs on the command line, in batch lines and in prompts:
 * - `--lora FILE.safetensors[:SCALE]` (repeatable; SCALE 1 by default) — in a batch line
 *   `"lora": ["FILE:SCALE", …]`, which replaces the command line's list;
 * - A1111's `<lora:NAME>`, `<lora:NAME:SCALE>` or `<lora:NAME:TE:UNET>` in the prompt, resolved as
 *   `NAME.safetensors` in `--lora-dir DIR` and removed from the text before encoding. As in A1111,
 *   only the prompt activates LoRAs: a tag in the negative prompt stays text (with a note).
 *
 * What the PNG records, as A1111 writes it: the prompt with its tags, plus a `<lora:NAME:SCALE>`
 * tag for each `--lora` file (A1111 appends its "Add network to prompt" LoRAs the same way), and
 * `Lora hashes: "NAME: hash12, …"` (see `loraShortHash`).
 *
 * @module
 */

import { isDecimal } from "./numbers.ts";
import type { LoraRequest } from "../models/lora_merge.ts";
import { existsSync } from "../std/fs.ts";
import { basename, join } from "../std/path.ts";
import { loraShortHash } from "../weights/lora.ts";
import { UsageError } from "../errors.ts";

/** `--lora` and each `<lora:…>` tag: a file with its name for the PNG and multipliers. */
export interface LoraUse extends LoraRequest {
  /** The name A1111 records (the tag's NAME, or the file's name without `.safetensors`). */
  name: string;
  /** Whether it came from a `--lora` option or `"lora"` field (not a prompt tag). */
  option: boolean;
}

/** A job's LoRAs resolved: what to merge, what to encode and what to record. */
export interface JobLoras {
  /** The prompt without its `<lora:…>` tags (what the text encoder reads). */
  prompt: string;
  /** The files to merge, in order. */
  loras: LoraUse[];
  /** The prompt as the PNG records it: with its tags and one for each `--lora` file. */
  recordedPrompt: string;
}

const TAG = /<lora:([^:>]+)(?::([^:>]*))?(?::([^:>]*))?>/g;

function scaleOf(raw: string, what: string): number {
  if (!isDecimal(raw.trim())) {
    throw new UsageError(`${what}: "${raw}" is not a decimal number; write a scale such as 0.8`);
  }
  return Number(raw);
}

/**
 * Parses `FILE[:SCALE]` (`--lora`, a batch line's `"lora"` entry). A colon followed by a number
 * ends the file name; other colons belong to it (`C:\loras\x.safetensors`).
 */
export function parseLoraOption(raw: string, field = "--lora"): LoraUse {
  const colon = raw.lastIndexOf(":");
  const tail = colon >= 0 ? raw.slice(colon + 1) : "";
  const numeric = isDecimal(tail.trim());
  const path = numeric ? raw.slice(0, colon) : raw;
  if (path === "") {
    throw new UsageError(
      `${field} "${raw}" names no file; write ${field} FILE.safetensors[:SCALE]`,
    );
  }
  const scale = numeric ? Number(tail) : 1;
  return { path, te: scale, unet: scale, name: loraName(path), option: true };
}

/** A file's LoRA name: its base name without `.safetensors`. */
function loraName(path: string): string {
  return basename(path).replace(/\.safetensors$/i, "");
}

/** The `<lora:…>` tags of `prompt` and the prompt without them. */
export function extractLoraTags(
  prompt: string,
): { text: string; tags: { name: string; te: number; unet: number }[] } {
  const tags: { name: string; te: number; unet: number }[] = [];
  const text = prompt.replace(TAG, (tag, name: string, te?: string, unet?: string) => {
    const teScale = te === undefined ? 1 : scaleOf(te, tag);
    tags.push({
      name: name.trim(),
      te: teScale,
      unet: unet === undefined ? teScale : scaleOf(unet, tag),
    });
    return "";
  });
  return { text, tags };
}

/** `NAME.safetensors` in `dir` (or a file whose name differs only in case). */
function findInDir(dir: string, name: string): string | null {
  const exact = join(dir, `${name}.safetensors`);
  if (existsSync(exact)) return exact;
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && e.name.toLowerCase() === `${name}.safetensors`.toLowerCase()) {
        return join(dir, e.name);
      }
    }
  } catch {
    return null;
  }
  return null;
}

/**
 * The LoRAs of one job: `options` (`--lora` or the line's `"lora"`), then the prompt's tags
 * resolved in `loraDir`.
 *
 * @throws {UsageError} for a `--lora` file that does not exist, a tag without `--lora-dir`, or a
 *   name not found there
 */
export function resolveJobLoras(
  prompt: string,
  options: readonly LoraUse[],
  loraDir: string | null,
): JobLoras {
  const { text, tags } = extractLoraTags(prompt);
  for (const l of options) {
    if (!existsSync(l.path)) {
      throw new UsageError(`--lora ${l.path}: no such file; check the path of the LoRA`);
    }
  }
  const loras: LoraUse[] = [...options];
  for (const t of tags) {
    if (loraDir === null) {
      throw new UsageError(
        `the prompt names <lora:${t.name}:…> but no --lora-dir was given; pass --lora-dir DIR (the folder of ${t.name}.safetensors) or use --lora FILE:SCALE`,
      );
    }
    const path = findInDir(loraDir, t.name);
    if (!path) {
      throw new UsageError(
        `<lora:${t.name}:…>: no ${t.name}.safetensors in ${loraDir}; check the name or --lora-dir`,
      );
    }
    loras.push({ path, te: t.te, unet: t.unet, name: t.name, option: false });
  }
  const added = options.map((l) => `<lora:${l.name}:${l.unet}>`).join("");
  return { prompt: text, loras, recordedPrompt: prompt + added };
}

/** Whether `negative` holds `<lora:…>` tags (which only the prompt activates). */
export function hasLoraTags(negative: string): boolean {
  return extractLoraTags(negative).tags.length > 0;
}

const hashes = new Map<string, Promise<string>>();

/**
 * The `Lora hashes` value A1111 writes — `NAME: hash12` per distinct name, names without `:`
 * and `,` — or "" without LoRAs. Hashes are computed once per file.
 */
export async function loraHashes(loras: readonly LoraUse[]): Promise<string> {
  const parts: string[] = [];
  for (const l of loras) {
    let h = hashes.get(l.path);
    if (!h) hashes.set(l.path, h = loraShortHash(l.path));
    const entry = `${l.name.replace(/[:,]/g, "")}: ${await h}`;
    if (!parts.includes(entry)) parts.push(entry);
  }
  return parts.join(", ");
}
