// The convolution epilogue of one output element, shared by conv2d_direct and conv2d_winograd:
// v = acc + bias, then SiLU (SILU), then + res[yi] (RESIDUAL), rounded to T once at the store.
// Skipped outside the output (ok false). The including kernel declares `y` (and `res`).
fn store_one(acc: f32, bo: f32, yi: u32, ok: bool) {
  if (!ok) {
    return;
  }
  var v = acc + bo;
#if SILU
  v = v / (1.0 + exp(-v));
#endif
#if RESIDUAL
  v += f32(res[yi]);
#endif
  y[yi] = ${T}(v);
}
