/**
 * How the command reports failures: one line on stderr, `sd: <what>; <what to do>`, and an exit
 * code — 2 for bad options or usage, 1 for a failed generation, 130 after Ctrl-C.
 *
 * Errors the program expects are {@linkcode UserError}s (bad input, missing or corrupt weights,
 * no GPU adapter, network): they print their message only. Anything else is a bug: its message, a
 * request to report it, and the stack only with `SD_DEBUG=1`.
 *
 * @module
 */

import { firstLine, UserError } from "../errors.ts";

/** Exit code: every image was written. */
export const EXIT_OK = 0;
/** Exit code: a generation (or a batch line) failed. */
export const EXIT_FAILED = 1;
/** Exit code: bad options or usage. */
export const EXIT_USAGE = 2;
/** Exit code: interrupted with Ctrl-C (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;

/** Whether `SD_DEBUG=1` asks for stack traces. */
export function debugEnabled(): boolean {
  try {
    return Deno.env.get("SD_DEBUG") === "1";
  } catch {
    return false;
  }
}

/**
 * The stderr text for `e` (without trailing newline): `sd: <message>` for an expected error;
 * for an unexpected one also a request to report it, and with `SD_DEBUG=1` the stack.
 */
export function describeError(e: unknown, prefix = "sd: "): string {
  const err = e instanceof Error ? e : new Error(String(e));
  const known = err instanceof UserError;
  let text = `${prefix}${firstLine(err)}`;
  if (!known) {
    text += " (unexpected: please report it with the command you ran" +
      (debugEnabled() ? ")" : "; SD_DEBUG=1 shows the stack)");
  }
  if (debugEnabled()) {
    for (let c: unknown = err; c instanceof Error; c = c.cause) if (c.stack) text += `\n${c.stack}`;
  }
  return text;
}

/** The exit code for an error that ended the run. */
export function exitCodeOf(e: unknown): number {
  return e instanceof UserError && e.kind === "usage" ? EXIT_USAGE : EXIT_FAILED;
}
