/**
 * Path helpers. Stands in for `jsr:@std/path` (JSR is unreachable here) through `node:path`;
 * switching is a change to this file only.
 *
 * @module
 */

export { basename, dirname, extname, isAbsolute, join, relative, resolve } from "node:path";

/** A file path from a `file:` URL (e.g. `new URL("../x", import.meta.url)`). */
export { fileURLToPath as fromFileUrl } from "node:url";
