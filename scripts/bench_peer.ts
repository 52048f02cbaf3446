/**
 * The peer beside the bench: reads the output of `../shared/reference/peer.py` (diffusers on the
 * same GPU, same job) and lays it out under the bench's own columns, with sd's ratio to it, so the
 * table a user reads compares against what they would use instead.
 *
 * @module
 */

/** What peer.py reports (times in ms, memory in GB); absent stages stay undefined. */
export interface Peer {
  gpu: string;
  torch: string;
  diffusers: string;
  size: number;
  end_to_end_ms?: number;
  end_to_end_all_ms?: number[];
  unet_step_b2_ms?: number;
  vae_decode_ms?: number;
  text_encoder_ms?: number;
  peak_allocated_GB?: number;
}

/** The bench's columns (the peer has figures for some; the rest print "–"). */
export interface BenchColumns {
  /** The whole job with no per-step hooks (how scripts and pipes run it). */
  totalMs: number;
  /** The same with a progress line's `onStep` hook (steps waited for every few). */
  progressMs: number;
  /** Text encoder (both prompts), until the GPU is done. */
  textMs: number;
  /** The UNet loop's time over its calls (batch 2 with guidance). */
  unetStepMs: number;
  /** CPU time recording one UNet step (every step waited for). */
  recordMs: number;
  /** VAE decode with the image read back. */
  vaeMs: number;
  /** RGB8 conversion and PNG encoding. */
  pngMs: number;
  /** Peak GPU memory of the timed runs. */
  peakGB: number;
}

/**
 * Parses peer.py's output: its `RESULT {…}` line, else the last line that is a JSON object
 * (the script prints one per stage).
 */
export function parsePeer(text: string): Peer {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
  const result = lines.findLast((l) => l.startsWith("RESULT "));
  const line = result ? result.slice("RESULT ".length) : lines.findLast((l) => l.startsWith("{"));
  if (!line) throw new Error("peer file holds no JSON line from peer.py");
  const p = JSON.parse(line) as Peer;
  if (typeof p.gpu !== "string") throw new Error('peer file: its JSON line has no "gpu"');
  return p;
}

/** The peer's figure for each bench column (undefined: peer.py does not measure it). */
export function peerColumns(p: Peer): Record<keyof BenchColumns, number | undefined> {
  return {
    totalMs: p.end_to_end_ms,
    progressMs: undefined,
    textMs: p.text_encoder_ms,
    unetStepMs: p.unet_step_b2_ms,
    recordMs: undefined,
    vaeMs: p.vae_decode_ms,
    pngMs: undefined,
    peakGB: p.peak_allocated_GB,
  };
}

/** sd ÷ peer per column (undefined where the peer has no figure). */
export function ratios(sd: BenchColumns, p: Peer): Record<keyof BenchColumns, number | undefined> {
  const peer = peerColumns(p);
  const out = {} as Record<keyof BenchColumns, number | undefined>;
  for (const k of Object.keys(peer) as (keyof BenchColumns)[]) {
    const v = peer[k];
    out[k] = v ? sd[k] / v : undefined;
  }
  return out;
}

/** The peer's label: library versions and card. */
export function peerLabel(p: Peer): string {
  const range = p.end_to_end_all_ms?.length
    ? `, end to end ${Math.min(...p.end_to_end_all_ms).toFixed(0)}–${
      Math.max(...p.end_to_end_all_ms).toFixed(0)
    } ms`
    : "";
  return `diffusers ${p.diffusers} eager (torch ${p.torch}, ${p.gpu}, median${range})`;
}
