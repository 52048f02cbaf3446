/**
 * The one base of every failure the program expects (bad input, missing or corrupt weights, no GPU
 * adapter, network, an image that cannot be read): its message is written for users, one line that
 * says what is wrong and what to do. Anything that is not a `UserError` is a bug and is reported
 * as one. Lives at the bottom of the tree so that every layer can throw it.
 *
 * @module
 */

/** Which exit code a user error ends the command with: 2 for bad options or usage, 1 otherwise. */
export type UserErrorKind = "usage" | "failed";

/** An expected failure whose message is written for users: `<what>; <what to do>`. */
export class UserError extends Error {
  /** `usage` (exit 2: the command line or a batch line is wrong) or `failed` (exit 1). */
  readonly kind: UserErrorKind;

  /**
   * @param message one line: what is wrong; what to do
   * @param options `kind` (default `failed`) and the original error as `cause`
   */
  constructor(message: string, options: ErrorOptions & { kind?: UserErrorKind } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "UserError";
    this.kind = options.kind ?? "failed";
  }
}

/** A bad command line, option or batch line (exit 2): `<what>; <what to do>`. */
export class UsageError extends UserError {
  /** @param message one line: what is wrong; what to do */
  constructor(message: string, options: ErrorOptions = {}) {
    super(message, { ...options, kind: "usage" });
    this.name = "UsageError";
  }
}

/** The first line of an error's message (messages of nested causes can span lines). */
export function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0].trim();
}

/** Whether `e` says the disk (or the user's quota) is full (Deno: an `Error` with `code`). */
export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT" ||
    (e instanceof Error && /\(os error 28\)|No space left on device/.test(e.message));
}

/** The disk (or quota) filled up while writing a file: what was written before stays. */
export class DiskFullError extends UserError {
  /**
   * @param path the file being written @param cause the file system's error
   * @param alternative what else to do besides freeing space (e.g. `choose another --out`)
   */
  constructor(path: string, cause: unknown, alternative = "run again") {
    super(`disk full writing ${path}: free some space and ${alternative}`, { cause });
    this.name = "DiskFullError";
  }
}

/** Deno's file-system errors (`NotFound`, `PermissionDenied`, …): each names the path. */
export function isFileSystemError(e: unknown): e is Error {
  return Object.values(Deno.errors).some((C) => e instanceof C);
}

/**
 * `e` as a {@linkcode UserError} naming `path` when it is a file-system error (a folder that is
 * not writable, a file that vanished); any other error unchanged.
 *
 * A full disk is a {@linkcode DiskFullError}.
 *
 * @param doing what was done to the file, e.g. `cannot write`
 * @param alternative for a full disk, what else to do besides freeing space (default `run again`)
 */
export function fileError(e: unknown, doing: string, path: string, alternative?: string): unknown {
  if (isDiskFull(e)) return new DiskFullError(path, e, alternative);
  if (!isFileSystemError(e)) return e;
  return new UserError(`${doing} ${path}: ${firstLine(e)}`, { cause: e });
}
