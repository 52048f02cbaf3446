/** src/gpu/device.ts: recording, and dropping what a failed job left recorded. */

import { assert, assertEquals } from "../src/std/assert.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { add } from "../src/ops/elementwise.ts";
import { hasGpu, testGpu } from "./gpu.ts";

Deno.test({
  name: "abandonRecorded: a failed job's recorded commands never run; recording goes on",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const n = 1024;
    const a = Tensor.from(gpu, new Float32Array(n).fill(1), [n], "f32");
    const b = Tensor.from(gpu, new Float32Array(n).fill(2), [n], "f32");
    const target = Tensor.from(gpu, new Float32Array(n), [n], "f32");
    await gpu.flush();

    // A job records a dispatch, then an upload (staged in the encoder, since commands are
    // recorded), then fails before anything is submitted.
    const half = add(a, b);
    gpu.write(target.buffer, new Float32Array(n).fill(7));
    gpu.abandonRecorded();
    assertEquals(gpu.finishCommands(), null, "nothing left recorded");

    // The next job: its own work runs, the abandoned upload does not.
    const sum = await add(a, b).read();
    assert(sum.every((v) => v === 3), "the next job's result");
    const kept = await target.read();
    assert(kept.every((v) => v === 0), `the abandoned upload ran: ${kept[0]}`);
    for (const t of [a, b, target, half]) t.release();
  },
});
