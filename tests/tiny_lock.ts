/**
 * tiny-sd as a model of a weights lock, for tests of fetching: a server of its fixture files on
 * 127.0.0.1 and a lock naming them (real sizes and sha256; `.fp16.safetensors` files for f16, the
 * other `.safetensors` for f32).
 *
 * @module
 */

import { join } from "../src/std/path.ts";
import { fixture } from "./fixtures.ts";

const TINY = fixture("tiny-sd");

async function sha256Hex(path: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(path)));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Writes a lock of model `tiny` (revision `0123456789abcdef`) served from `base`; its path. */
export async function writeTinyLock(dir: string, base: string): Promise<string> {
  const files = [];
  for (const sub of Deno.readDirSync(TINY)) {
    const names = sub.isDirectory
      ? [...Deno.readDirSync(join(TINY, sub.name))].map((f) => `${sub.name}/${f.name}`)
      : [sub.name];
    for (const path of names) {
      const full = join(TINY, ...path.split("/"));
      const variants = path.endsWith(".fp16.safetensors")
        ? { variants: ["f16"] }
        : path.endsWith(".safetensors")
        ? { variants: ["f32"] }
        : {};
      files.push({
        path,
        bytes: Deno.statSync(full).size,
        sha256: await sha256Hex(full),
        ...variants,
      });
    }
  }
  const lock = join(dir, "test.lock");
  await Deno.writeTextFile(
    lock,
    JSON.stringify({
      version: 1,
      default: "tiny",
      models: { tiny: { revision: "0123456789abcdef", base, files } },
    }),
  );
  return lock;
}

/** A server of tiny-sd's files on 127.0.0.1, and the paths it was asked for. */
export function serveTiny(): { base: string; served: string[]; close: () => Promise<void> } {
  const served: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname.slice(1));
    served.push(path);
    try {
      return new Response(Deno.readFileSync(join(TINY, ...path.split("/"))));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return { base: `http://127.0.0.1:${server.addr.port}/`, served, close: () => server.shutdown() };
}
