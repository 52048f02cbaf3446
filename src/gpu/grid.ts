/**
 * The one 1-D grid convention (WGSL side: `kernels/common/grid1d.wgsl`): n units, `perGroup` a
 * workgroup, on a 2-D grid because a dimension holds at most 65535 workgroups. The kernel's unit
 * index is `id.x + id.y · num_workgroups.x · perGroup`.
 *
 * @module
 */

/** Most workgroups along one grid dimension (WebGPU's guaranteed `maxComputeWorkgroupsPerDimension`). */
export const MAX_GROUPS_PER_DIM = 65535;

/**
 * The workgroup grid `[x, y]` covering `n` units at `perGroup` units a workgroup: one row when
 * that fits, else y rows of equal width (x · y ≥ the workgroups needed, x ≤ 65535).
 */
export function grid1d(n: number, perGroup = 256): [number, number] {
  const groups = Math.ceil(n / perGroup);
  if (groups <= MAX_GROUPS_PER_DIM) return [groups, 1];
  const y = Math.ceil(groups / MAX_GROUPS_PER_DIM);
  return [Math.ceil(groups / y), y];
}
