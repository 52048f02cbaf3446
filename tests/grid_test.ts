import { assert, assertEquals } from "../src/std/assert.ts";
import { grid1d, MAX_GROUPS_PER_DIM } from "../src/gpu/grid.ts";
import { expandIncludes, specialize, Uniforms } from "../src/gpu/wgsl.ts";
import { hasGpu, testGpu } from "./gpu.ts";

/** CPU reference of the convention: how often each unit < n is visited on grid [x, y]. */
function visitsOnCpu(n: number, perGroup: number, [x, y]: [number, number]): Uint32Array {
  const visits = new Uint32Array(n);
  for (let gy = 0; gy < y; gy++) {
    for (let gx = 0; gx < x; gx++) {
      for (let l = 0; l < perGroup; l++) {
        // id.x + id.y · nwg.x · perGroup with id.x = gx · perGroup + l, id.y = gy.
        const i = gx * perGroup + l + gy * x * perGroup;
        if (i < n) visits[i]++;
      }
    }
  }
  return visits;
}

const WG = MAX_GROUPS_PER_DIM * 256;
const SIZES: [number, number][] = [
  [1, 256],
  [255, 256],
  [256 * 300 + 7, 256],
  [WG, 256], // exactly one full row
  [WG + 1, 256], // the first size that needs a second row
  [3 * WG + 12345, 256],
  [MAX_GROUPS_PER_DIM + 77, 1], // one workgroup per unit (layernorm's rows)
  [5 * MAX_GROUPS_PER_DIM, 64],
];

Deno.test("grid1d: fits the per-dimension limit, covers n, and has no spare row", () => {
  for (const [n, per] of SIZES) {
    const [x, y] = grid1d(n, per);
    assert(x >= 1 && y >= 1 && x <= MAX_GROUPS_PER_DIM && y <= MAX_GROUPS_PER_DIM, `${n}/${per}`);
    assert(x * y * per >= n, `grid [${x}, ${y}] does not cover ${n} at ${per} a group`);
    assert((y - 1) * x * per < n, `grid [${x}, ${y}] has a row past ${n}`);
    if (n <= MAX_GROUPS_PER_DIM * per) assertEquals(y, 1);
  }
  assertEquals(grid1d(WG + 1), [32768, 2]);
});

Deno.test("grid1d: the CPU reference of the index visits every unit exactly once", () => {
  for (const [n, per] of SIZES.filter(([n]) => n < 2e7)) {
    const visits = visitsOnCpu(n, per, grid1d(n, per));
    assert(visits.every((v) => v === 1), `n = ${n}, ${per} a group`);
  }
});

// A kernel that counts its visits, in both forms of the convention: per invocation
// (global_invocation_id, the elementwise kernels) and per workgroup (workgroup_id, layernorm).
const COUNT_KERNEL = `
struct Params { n: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> visits: array<atomic<u32>>;
#include "grid1d.wgsl"
@compute @workgroup_size(\${WG})
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
#if PER_GROUP
  let i = grid1d_index(wid, nwg, 1u);
  if (lid != 0u) { return; }
#else
  let i = grid1d_index(gid, nwg, \${WG}u);
#endif
  if (i >= p.n) { return; }
  atomicAdd(&visits[i], 1u);
}`;

Deno.test({
  name: "grid1d: on the GPU every unit is visited exactly once, also past 65535 workgroups",
  ignore: !hasGpu,
  async fn() {
    const gpu = (await testGpu())!;
    const src = expandIncludes(COUNT_KERNEL, "grid_test");
    const cases = [
      [WG + 1, 256, false],
      [WG + WG / 2 + 999, 256, false],
      [MAX_GROUPS_PER_DIM + 77, 64, true],
    ] as const;
    for (const [n, per, perGroup] of cases) {
      const name = `grid_test_w${per}${perGroup ? "_per_group" : ""}`;
      const kernel = gpu.kernel(name, () => specialize(src, { WG: per, PER_GROUP: perGroup }));
      const visits = gpu.alloc(4 * n, "visits", true);
      gpu.write(visits, new Uint32Array(n));
      const grid = grid1d(n, perGroup ? 1 : per);
      assert(grid[1] > 1, "the size must need the second grid dimension");
      gpu.dispatch(kernel, new Uniforms().u32(n).buffer, [visits], grid);
      const got = new Uint32Array(await gpu.read(visits, 4 * n));
      gpu.destroyBuffer(visits);
      const want = visitsOnCpu(n, perGroup ? 1 : per, grid);
      let bad = -1;
      for (let i = 0; i < n && bad < 0; i++) if (got[i] !== 1 || want[i] !== 1) bad = i;
      assertEquals(bad, -1, `${name}, n = ${n}: unit ${bad} visited ${got[bad]} times`);
    }
  },
});
