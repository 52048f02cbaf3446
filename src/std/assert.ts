/**
 * Assertions for tests. Stands in for `jsr:@std/assert` (JSR is unreachable here); switching is a
 * change to this file only.
 *
 * @module
 */

import nodeAssert from "node:assert/strict";

/** Throws with `msg` when `cond` is falsy. */
export function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

/** Deep strict equality. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  nodeAssert.deepEqual(actual, expected, msg);
}

/** Expects `fn` to throw (or reject) an error whose message includes `includes`. */
export async function assertRejects(
  fn: () => unknown,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    const err = e as Error;
    if (includes !== undefined && !String(err?.message).includes(includes)) {
      throw new Error(`expected an error including "${includes}", got "${err?.message}"`);
    }
    return err;
  }
  throw new Error(`expected an error${includes ? ` including "${includes}"` : ""}, none thrown`);
}

/** Expects `fn` to throw synchronously; returns the error. */
export function assertThrows(fn: () => unknown, includes?: string): Error {
  try {
    fn();
  } catch (e) {
    const err = e as Error;
    if (includes !== undefined && !String(err?.message).includes(includes)) {
      throw new Error(`expected an error including "${includes}", got "${err?.message}"`);
    }
    return err;
  }
  throw new Error(`expected an error${includes ? ` including "${includes}"` : ""}, none thrown`);
}
