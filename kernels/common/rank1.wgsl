// c + a ⊗ b for a 4 × 4 register block kept as 4 row vectors (c[r] = row r): one rank-1 update
// of the register-tiled products (conv2d_direct, conv2d_winograd's GEMM), 16 f32 FMAs.
fn rank1(c: mat4x4<f32>, a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
  return mat4x4<f32>(
    fma(vec4<f32>(a.x), b, c[0]),
    fma(vec4<f32>(a.y), b, c[1]),
    fma(vec4<f32>(a.z), b, c[2]),
    fma(vec4<f32>(a.w), b, c[3]),
  );
}
