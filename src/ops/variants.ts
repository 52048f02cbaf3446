/**
 * Which implementation each optimized op family uses — the paper's Table 1 switches. Every
 * optimized kernel keeps its naive twin selectable so each gain is measured in the same run.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";

/** Kernel choices per op family. */
export interface Variants {
  /**
   * `--attention`: FlashAttention, the paper's partitioned softmax, scores → softmax → PV, or
   * `auto` — per shape, whichever measured faster on an H200: flash for head dims ≤ 80 with
   * enough query rows for its rows kernel (SD's 64×64 and 32×32 levels), naive for larger ones
   * (d 160 at 16×16: 0.44 vs 0.86 ms; the VAE's d 512: 2.3 vs 4.4 ms) and CLIP's 77 tokens.
   */
  attention: "auto" | "flash" | "partitioned" | "naive";
  /**
   * `--conv`: `winograd` — Winograd F(2×2,3×3) for 3×3 stride-1 padding-1 convolutions, the direct
   * implicit-GEMM kernel for the rest; `auto` — Winograd likewise, and the rest (1×1, stride 2) as
   * a GEMM on the tiled matmul (im2col first where not 1×1); `direct` — the direct kernel for all.
   */
  conv: "auto" | "winograd" | "direct";
  /**
   * `--winograd`: the tile of the Winograd convolutions — `f2` F(2×2, 3×3) everywhere, `f4`
   * F(4×4, 3×3) everywhere (1.78× fewer multiplies, its transformed filters 4× the weights), or
   * `auto`: F(4×4) where both channel counts are ≤ 640 (the VAE decoder, the UNet's 64×64 and
   * 32×32 levels), F(2×2) for the 1280-channel levels (see `winogradTile` in src/ops/conv2d.ts).
   */
  winograd: "auto" | "f4" | "f2";
  /** `--groupnorm`: one fused kernel (stats, normalize, affine, SiLU) or separate passes. */
  groupnorm: "fused" | "naive";
  /** `--gelu`: GEGLU in the matmul epilogue, or split + GELU + multiply. */
  gelu: "fused" | "naive";
}

/** The optimized choice for every family. */
export const OPTIMIZED: Readonly<Variants> = {
  attention: "auto",
  conv: "auto",
  winograd: "auto",
  groupnorm: "fused",
  gelu: "fused",
};

/** The naive choice for every family (the bench's baseline). */
export const NAIVE: Readonly<Variants> = {
  attention: "naive",
  conv: "direct",
  winograd: "f2",
  groupnorm: "naive",
  gelu: "naive",
};

const chosen = new WeakMap<Gpu, Variants>();

/** The variants in force on `gpu` (optimized unless set). */
export function variants(gpu: Gpu): Readonly<Variants> {
  return chosen.get(gpu) ?? OPTIMIZED;
}

/** Sets some variants on `gpu`; the rest keep their current value. */
export function setVariants(gpu: Gpu, v: Partial<Variants>): void {
  chosen.set(gpu, { ...variants(gpu), ...v });
}
