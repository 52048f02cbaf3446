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
