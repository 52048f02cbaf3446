/**
 * The worker behind {@linkcode sha256FileInWorker}: receives `{ path }`, streams the file through
 * sha256 and posts `{ sha256 }` (hex) or `{ error }` (one line).
 *
 * @module
 */

import { sha256File } from "./sha256.ts";

/** The worker's global scope (the window-typed `self` lacks these members). */
const scope = self as unknown as {
  onmessage: (e: MessageEvent<{ path: string }>) => void;
  postMessage(message: { sha256: string } | { error: string }): void;
  close(): void;
};

scope.onmessage = async (e) => {
  try {
    scope.postMessage({ sha256: await sha256File(e.data.path) });
  } catch (err) {
    scope.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
  scope.close();
};
