/**
 * Command-line parsing. Stands in for `jsr:@std/cli`'s `parseArgs` (JSR is unreachable here)
 * through `node:util`'s `parseArgs`; switching is a change to this file only.
 *
 * What it adds to `node:util`'s strict mode, all of which `sd` needs:
 * - positionals stay strings (`sd 42` is the prompt "42", never the number 42);
 * - options with an optional value: `--profile` alone, or `--profile=json`;
 * - a negative number may follow a string option as its value (`--seed -1`), so the CLI's own
 *   range check answers, not a parser complaint;
 * - where `--` stood, so `sd -- tokens` can mean the prompt "tokens", not the subcommand;
 * - errors as {@linkcode ArgsError} with a short message and the offending option.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { parseArgs as nodeParseArgs } from "node:util";

/** What options a command takes. Every option not listed is an error. */
export interface ArgsSpec {
  /** Options that take a value (`--steps 20`, `--steps=20`). */
  string?: readonly string[];
  /** Options that take a value and may be repeated (`--lora a --lora b`): a list of strings. */
  multiple?: readonly string[];
  /** Flags (`--quiet`); they take no value. */
  boolean?: readonly string[];
  /** Options whose value is optional and must be attached: `--profile` or `--profile=json`. */
  optionalValue?: readonly string[];
  /** One-letter short names: `{ h: "help" }` makes `-h` mean `--help`. */
  alias?: Readonly<Record<string, string>>;
}

/** The result of {@linkcode parseArgs}. */
export interface ParsedArgs {
  /**
   * Option values by long name: strings for `string` options, `true` for flags, and `true` or
   * the attached string for `optionalValue` options, the list for `multiple` ones. Absent
   * options are absent.
   */
  values: Record<string, string | true | string[]>;
  /** Positional arguments, as given (strings). */
  positionals: string[];
  /** Index in `positionals` of the first one after `--` (`positionals.length` when none was). */
  afterDashDash: number;
}

/** Why an argument list was rejected. */
export type ArgsErrorKind = "unknown" | "missing-value" | "unexpected-value";

/** A rejected argument list; `message` is short and lower-case, ready to prefix with the program. */
export class ArgsError extends UsageError {
  /** What went wrong. */
  readonly reason: ArgsErrorKind;
  /** The option as written (`--foo`, `-x`). */
  readonly option: string;
  /** @param kind what went wrong @param option the option as written @param message one line */
  constructor(kind: ArgsErrorKind, option: string, message: string) {
    super(message);
    this.name = "ArgsError";
    this.reason = kind;
    this.option = option;
  }
}

const NEGATIVE_NUMBER = /^-(\d|\.\d)/;

/**
 * Parses `args` strictly against `spec`.
 *
 * @throws {ArgsError} for an unknown option, a missing value, or a value given to a flag
 * @example
 * ```ts
 * const { values, positionals } = parseArgs(["a cat", "--steps", "4", "--profile"], {
 *   string: ["steps"],
 *   optionalValue: ["profile"],
 * });
 * // values = { steps: "4", profile: true }, positionals = ["a cat"]
 * ```
 */
export function parseArgs(args: readonly string[], spec: ArgsSpec): ParsedArgs {
  const strings = new Set([...spec.string ?? [], ...spec.multiple ?? []]);
  const optional = new Set(spec.optionalValue ?? []);
  const alias = spec.alias ?? {};
  const longName = (token: string): string | undefined => {
    if (token.startsWith("--")) return token.slice(2);
    if (/^-[^-]$/.test(token)) return alias[token[1]];
    return undefined;
  };

  // Rewrite, up to `--`: a bare optional-value option gets an empty attached value, and a
  // string option followed by a negative number takes it as its value.
  const rewritten: string[] = [];
  let i = 0;
  for (; i < args.length; i++) {
    const token = args[i];
    if (token === "--") break;
    const name = longName(token);
    if (name !== undefined && optional.has(name) && token.startsWith("--")) {
      rewritten.push(`${token}=`);
    } else if (
      name !== undefined && strings.has(name) && i + 1 < args.length &&
      NEGATIVE_NUMBER.test(args[i + 1])
    ) {
      rewritten.push(`--${name}=${args[++i]}`);
    } else {
      rewritten.push(token);
    }
  }
  rewritten.push(...args.slice(i));

  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const n of spec.string ?? []) options[n] = { type: "string" };
  for (const n of spec.multiple ?? []) options[n] = { type: "string", multiple: true };
  for (const n of spec.optionalValue ?? []) options[n] = { type: "string" };
  for (const n of spec.boolean ?? []) options[n] = { type: "boolean" };
  for (const [short, long] of Object.entries(alias)) {
    if (options[long]) options[long].short = short;
  }

  let parsed;
  try {
    parsed = nodeParseArgs({
      args: rewritten,
      options,
      strict: true,
      allowPositionals: true,
      tokens: true,
    });
  } catch (e) {
    throw translate(e as Error & { code?: string });
  }

  const values: Record<string, string | true | string[]> = {};
  for (const [k, v] of Object.entries(parsed.values)) {
    if (v === undefined || v === false) continue;
    if (optional.has(k)) values[k] = v === "" ? true : v as string;
    else values[k] = v as string | true | string[];
  }
  const terminator = parsed.tokens.find((t) => t.kind === "option-terminator");
  const afterDashDash = terminator
    ? parsed.tokens.filter((t) => t.kind === "positional" && t.index < terminator.index).length
    : parsed.positionals.length;
  return { values, positionals: parsed.positionals, afterDashDash };
}

function translate(e: Error & { code?: string }): Error {
  const option = /'(-[^' ]*)/.exec(e.message)?.[1] ?? "";
  switch (e.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return new ArgsError("unknown", option, `unknown option ${option}`);
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      if (/does not take an argument/.test(e.message)) {
        return new ArgsError("unexpected-value", option, `${option} takes no value`);
      }
      if (/ambiguous/.test(e.message)) {
        return new ArgsError(
          "missing-value",
          option,
          `${option} needs a value (for a value starting with "-", write ${option}=-…)`,
        );
      }
      return new ArgsError("missing-value", option, `${option} needs a value`);
    default:
      return e;
  }
}
