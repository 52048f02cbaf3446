// The one 1-D grid convention: a kernel that runs one invocation (or one workgroup) per unit of a
// flat range is dispatched on the 2-D grid of src/gpu/grid.ts's grid1d(n, per_group) — more than
// 65535 workgroups wrap into y — and finds its unit with grid1d_index: `id` is
// global_invocation_id (per_group = the workgroup size) or workgroup_id (per_group = 1), `nwg` is
// num_workgroups. Units past n (the last row of the grid is partial) must be skipped by the caller.
fn grid1d_index(id: vec3<u32>, nwg: vec3<u32>, per_group: u32) -> u32 {
  return id.x + id.y * nwg.x * per_group;
}
