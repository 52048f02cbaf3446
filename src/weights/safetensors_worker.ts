/**
 * The reader behind {@linkcode SafeTensorsFile.stream}: on its own thread, reads the requested
 * tensors in file order in groups of about `groupBytes` (a group never spans a gap of more than
 * 1 MiB of unrequested data), converts each to the wanted dtype and posts the group with its
 * buffers transferred. It stays at most `window` groups ahead: each consumed group sends a
 * "credit" back. The messages of this protocol are the types below.
 *
 * @module
 */

import { convertTensor, type SafeDType } from "./safetensors_dtype.ts";

/** One tensor for the worker of {@linkcode SafeTensorsFile.stream} (absolute byte range). */
export interface StreamItem {
  name: string;
  begin: number;
  end: number;
  dtype: SafeDType;
}

/** What {@linkcode SafeTensorsFile.stream} asks of its worker (then one "credit" a group). */
export interface StreamRequest {
  path: string;
  /** In file order. */
  items: StreamItem[];
  to: "f32" | "f16";
  groupBytes: number;
  window: number;
}

/** The worker's messages: a group of converted tensors (buffers transferred), the end, a failure. */
export type StreamReply =
  | {
    type: "group";
    tensors: {
      name: string;
      f16: boolean;
      buffer: ArrayBuffer;
      byteOffset: number;
      length: number;
    }[];
  }
  | { type: "done" }
  | { type: "error"; message: string };

/** The worker's global scope (the window-typed `self` lacks these members). */
const scope = self as unknown as {
  onmessage: (e: MessageEvent<StreamRequest | "credit">) => void;
  postMessage(message: StreamReply, transfer?: Transferable[]): void;
};

const MAX_GAP = 1 << 20;

let credits = 0;
let wake: (() => void) | null = null;

/** Consecutive runs of items, each spanning at most `groupBytes` (or one larger tensor). */
function groups(items: StreamItem[], groupBytes: number): StreamItem[][] {
  const out: StreamItem[][] = [];
  let g: StreamItem[] = [];
  for (const it of items) {
    const last = g.at(-1);
    if (last && (it.end - g[0].begin > groupBytes || it.begin - last.end > MAX_GAP)) {
      out.push(g);
      g = [];
    }
    g.push(it);
  }
  if (g.length) out.push(g);
  return out;
}

function readExactSync(file: Deno.FsFile, offset: number, buf: Uint8Array): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < buf.length) {
    const n = file.readSync(buf.subarray(got));
    if (n === null) {
      throw new Error(`unexpected end of file at byte ${offset + got}`);
    }
    got += n;
  }
}

async function run(req: StreamRequest): Promise<void> {
  credits = req.window;
  const file = Deno.openSync(req.path, { read: true });
  try {
    for (const g of groups(req.items, req.groupBytes)) {
      while (credits === 0) await new Promise<void>((r) => wake = r);
      credits--;
      const begin = g[0].begin;
      const buf = new Uint8Array(g.at(-1)!.end - begin);
      readExactSync(file, begin, buf);
      const tensors = g.map((it) => {
        const data = convertTensor(
          buf.subarray(it.begin - begin, it.end - begin),
          it.dtype,
          req.to,
        );
        return {
          name: it.name,
          f16: data instanceof Float16Array,
          buffer: data.buffer as ArrayBuffer,
          byteOffset: data.byteOffset,
          length: data.length,
        };
      });
      const transfer = [...new Set(tensors.map((t) => t.buffer))];
      scope.postMessage({ type: "group", tensors }, transfer);
    }
    scope.postMessage({ type: "done" });
  } finally {
    file.close();
  }
}

scope.onmessage = (e) => {
  if (e.data === "credit") {
    credits++;
    wake?.();
    wake = null;
    return;
  }
  run(e.data).catch((err) => {
    scope.postMessage({ type: "error", message: err instanceof Error ? err.message : String(err) });
  });
};
