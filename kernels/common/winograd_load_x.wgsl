// x[row + ix] widened to f32, 0 left or right of the image: the Winograd input transforms'
// horizontal zero padding (conv2d_winograd, conv2d_winograd4). The including kernel declares `x`
// and `p.W`.
fn load_x(row: u32, ix: i32) -> f32 {
  if (ix >= 0 && ix < i32(p.W)) {
    return f32(x[row + u32(ix)]);
  }
  return 0.0;
}
