/**
 * How the command reports failures: one line on stderr, `sd: <what>; <what to do>`, and an exit
 * code — 2 for bad options or usage, 1 for a failed generation, 130 after Ctrl-C.
 *
 * Errors the program expects (bad input, missing or corrupt weights, no GPU adapter, network)
 * print their message only. Anything else is a bug: its message, a request to report it, and the
 * stack only with `SD_DEBUG=1`.
 *
 * @module
 */

/** Exit code: every image was written. */
export const EXIT_OK = 0;
/** Exit code: a generation (or a batch line) failed. */
export const EXIT_FAILED = 1;
/** Exit code: bad options or usage. */
export const EXIT_USAGE = 2;
/** Exit code: interrupted with Ctrl-C (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;

/** Bad options or usage; the message is `<what>; <what to do>` without the `sd: ` prefix. */
export class UsageError extends Error {
  /** @param message one line: what is wrong; what to do */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * A failure with a message written for users (e.g. weights that do not fit the model), ending the
 * run with exit code 1; the original error is its `cause`.
 */
export class RunError extends Error {
  /** @param message one line @param options the original error as `cause` */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RunError";
  }
}

/**
 * Names of the error classes whose message is written for users (one line, naming the file or
 * option); these print without a stack. Matched by `name` so this file imports nothing above it.
 */
const USER_FACING = new Set([
  "UserError",
  "UsageError",
  "RunError",
  "ArgsError",
  "GpuError",
  "PipelineError",
  "SafetensorsError",
  "TokenizerError",
  "LockError",
  "WeightsError",
  "UnknownCheckpointKeyError",
  // Deno's file-system errors name the path: "No such file or directory (os error 2): open 'x'".
  "NotFound",
  "PermissionDenied",
  "AlreadyExists",
  "IsADirectory",
  "NotADirectory",
]);

/** Whether `SD_DEBUG=1` asks for stack traces. */
export function debugEnabled(): boolean {
  try {
    return Deno.env.get("SD_DEBUG") === "1";
  } catch {
    return false;
  }
}

/** The first line of an error's message (messages of nested causes can span lines). */
export function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0].trim();
}

/**
 * The stderr text for `e` (without trailing newline): `sd: <message>` for an expected error;
 * for an unexpected one also a request to report it, and with `SD_DEBUG=1` the stack.
 * `expected` forces the plain form (e.g. for errors raised while reading the user's weights).
 */
export function describeError(e: unknown, prefix = "sd: ", expected = false): string {
  const err = e instanceof Error ? e : new Error(String(e));
  const known = expected || USER_FACING.has(err.name);
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
  const usage = e instanceof Error &&
    (e.name === "UsageError" || e.name === "ArgsError" ||
      (e.name === "UserError" && (e as { kind?: string }).kind === "usage"));
  return usage ? EXIT_USAGE : EXIT_FAILED;
}
