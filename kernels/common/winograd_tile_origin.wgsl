// Tile pg of m × m output pixels (tiles row-major within an image, images one after another):
// its image b and the top-left output pixel (oy, ox), as vec3(b, oy, ox). Shared by the Winograd
// transforms (conv2d_winograd m = 2, conv2d_winograd4 m = 4); the kernel declares `p.H`, `p.W`.
fn tile_origin(pg: u32, m: u32) -> vec3<u32> {
  let tw = (p.W + m - 1u) / m;
  let th = (p.H + m - 1u) / m;
  let rem = pg % (tw * th);
  return vec3<u32>(pg / (tw * th), (rem / tw) * m, (rem % tw) * m);
}
