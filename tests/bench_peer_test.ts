/** The peer beside the bench: peer.py's output parsed, its columns and sd's ratios to them. */

import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { parsePeer, peerColumns, peerLabel, ratios } from "../scripts/bench_peer.ts";

const STAGES =
  `{"gpu": "NVIDIA H200", "torch": "2.11.0+cu130", "size": 512, "diffusers": "0.40.0.dev0", "unet_step_b2_ms": 30.5, "vae_decode_ms": 21.2, "text_encoder_ms": 9.8}`;
const RESULT =
  `{"gpu": "NVIDIA H200", "torch": "2.11.0+cu130", "size": 512, "diffusers": "0.40.0.dev0", "unet_step_b2_ms": 30.5, "vae_decode_ms": 21.2, "text_encoder_ms": 9.8, "end_to_end_ms": 836, "end_to_end_all_ms": [836, 845, 687], "peak_allocated_GB": 2.85}`;

Deno.test("parsePeer: the RESULT line wins over the per-stage lines; else the last JSON line", () => {
  const p = parsePeer(`${STAGES}\n${RESULT}\nRESULT ${RESULT}\n`);
  assertEquals(p.end_to_end_ms, 836);
  assertEquals(parsePeer(`noise\n${STAGES}\n`).end_to_end_ms, undefined);
  assertThrows(() => parsePeer("Traceback (most recent call last):\n"), "no JSON line");
  assertThrows(() => parsePeer(`{"size": 512}`), 'no "gpu"');
});

Deno.test("ratios: sd ÷ peer where the peer measures the column, undefined elsewhere", () => {
  const p = parsePeer(`RESULT ${RESULT}`);
  const sd = {
    totalMs: 1672,
    progressMs: 1700,
    textMs: 19.6,
    unetStepMs: 61,
    recordMs: 20,
    vaeMs: 42.4,
    pngMs: 8,
    peakGB: 2.85,
  };
  const r = ratios(sd, p);
  assertEquals(r.totalMs, 2);
  assertEquals(r.textMs, 2);
  assertEquals(r.unetStepMs, 2);
  assertEquals(r.vaeMs, 2);
  assertEquals(r.peakGB, 1);
  assertEquals([r.progressMs, r.recordMs, r.pngMs], [undefined, undefined, undefined]);
  assertEquals(peerColumns(p).unetStepMs, 30.5);
  const label = peerLabel(p);
  assert(label.includes("diffusers 0.40.0.dev0") && label.includes("687–845 ms"), label);
});
