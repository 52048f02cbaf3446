/**
 * The forward process q(x_t | x₀): how `addNoise` puts a clean latent at timestep t
 * (image-to-image starts from there).
 *
 * @module
 */

/** x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε (variance-preserving: DDPM/DDIM/PNDM, and DPM-Solver). */
export function diffuseVP(
  x0: Float32Array,
  noise: Float32Array,
  alphaBar: number,
): Float32Array<ArrayBuffer> {
  const a = Math.sqrt(alphaBar), s = Math.sqrt(1 - alphaBar);
  return x0.map((v, i) => a * v + s * noise[i]);
}

/** x = x₀ + σ·ε (variance-exploding: Euler, Euler a, LMS). */
export function diffuseVE(
  x0: Float32Array,
  noise: Float32Array,
  sigma: number,
): Float32Array<ArrayBuffer> {
  return x0.map((v, i) => v + sigma * noise[i]);
}
