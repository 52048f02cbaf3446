// Where a head starts in q, k, v and o: [B, N, H·d] token-major, head h at channels h·d … h·d+d−1,
// so a token's stride is ld = H·d. The including kernel's uniforms p hold heads (H) and d.

// Element offset of head (batch·head) bh's first token in a tensor of n tokens per batch item.
fn head_base(bh: u32, n: u32) -> u32 {
  let b = bh / p.heads;
  let h = bh % p.heads;
  return b * n * (p.heads * p.d) + h * p.d;
}
