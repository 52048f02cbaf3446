/**
 * Latents as linear combinations of stored GPU tensors, so the scheduler's arithmetic never stalls
 * the step loop on a readback.
 *
 * Every scheduler here updates the latents with elementwise-linear formulas whose coefficients
 * depend only on timesteps (x_{t−1} = a·x_t + b·ε + Σ c_k·history_k; ancestral noise adds d·z).
 * So the CPU scheduler runs unchanged on *coefficient vectors* of length D — one entry per stored
 * tensor (the initial noise, each guided ε, each noise draw) — while the GPU holds those tensors
 * as rows of one basis buffer and materializes a combination only where a tensor is needed (the
 * UNet input, the final latents). Rounding differs from running the scheduler on the values by
 * f32 reassociation only (~1e-7 relative).
 *
 * @module
 */

import type { DType, Gpu } from "./gpu/device.ts";
import { Tensor } from "./gpu/tensor.ts";
import { kernelSource, specialize, Uniforms } from "./gpu/wgsl.ts";
import { grid1d } from "./gpu/grid.ts";
import { cast } from "./ops/elementwise.ts";

/** The basis of stored latents-shaped tensors and the coefficient slices that combine them. */
export class LatentBasis {
  readonly #gpu: Gpu;
  readonly #basis: GPUBuffer;
  readonly #coeffs: GPUBuffer;
  readonly #maxUses: number;
  #slots = 0;
  #uses = 0;

  /**
   * @param n elements of one latents tensor
   * @param capacity the most tensors that will be stored (D)
   * @param maxUses the most combinations that will be materialized
   */
  constructor(gpu: Gpu, readonly n: number, readonly capacity: number, maxUses: number) {
    this.#gpu = gpu;
    this.#maxUses = maxUses;
    this.#basis = gpu.alloc(capacity * n * 4, "latent-basis");
    this.#coeffs = gpu.alloc(maxUses * capacity * 4, "latent-coefficients");
  }

  /** The coefficient vector of stored tensor `slot` alone. */
  unit(slot: number): Float32Array {
    const c = new Float32Array(this.capacity);
    c[slot] = 1;
    return c;
  }

  /** Stores CPU values as the next basis tensor; returns its unit coefficient vector. */
  upload(values: Float32Array): Float32Array {
    const slot = this.#nextSlot();
    this.#gpu.write(this.#basis, values, slot * this.n * 4);
    return this.unit(slot);
  }

  /** Stores a GPU tensor (any dtype, n elements) as the next basis tensor. */
  store(t: Tensor): Float32Array {
    if (t.size !== this.n) {
      throw new Error(`LatentBasis.store: ${t.size} elements, ${this.n} expected`);
    }
    const slot = this.#nextSlot();
    const f32 = t.dtype === "f32" ? t : cast(t, "f32");
    this.#gpu.copy(f32.buffer, 0, this.#basis, slot * this.n * 4, this.n * 4);
    if (f32 !== t) f32.release();
    return this.unit(slot);
  }

  /** Materializes Σ c_j·basis_j as a tensor of `shape` (its leading dim = copies of the n-vector). */
  combine(c: Float32Array, shape: readonly number[], dtype: DType): Tensor {
    if (c.length !== this.capacity) {
      throw new Error("LatentBasis.combine: wrong coefficient length");
    }
    if (this.#uses >= this.#maxUses) throw new Error("LatentBasis: more combinations than planned");
    const copies = shape.reduce((a, b) => a * b, 1) / this.n;
    const offset = this.#uses++ * this.capacity;
    this.#gpu.write(this.#coeffs, c, offset * 4);
    const name = `lincomb_${dtype}`;
    const kernel = this.#gpu.kernel(
      name,
      () => specialize(kernelSource("latents.wgsl"), { TO: dtype }),
    );
    const y = Tensor.empty(this.#gpu, shape, dtype, name);
    const u = new Uniforms().u32(this.n).u32(this.#slots).u32(offset).u32(copies).buffer;
    this.#gpu.dispatch(kernel, u, [this.#basis, this.#coeffs, y.buffer], grid1d(this.n), {
      bytes: this.#slots * this.n * 4 + y.bytes,
    });
    return y;
  }

  /** Frees the GPU buffers. */
  release(): void {
    this.#gpu.free(this.#basis);
    this.#gpu.free(this.#coeffs);
  }

  #nextSlot(): number {
    if (this.#slots >= this.capacity) throw new Error("LatentBasis: more tensors than planned");
    return this.#slots++;
  }
}
