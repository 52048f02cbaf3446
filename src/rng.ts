/**
 * PyTorch's CPU random generator, reproduced so that `--seed S` draws the same initial latents as
 * diffusers does with `torch.Generator("cpu").manual_seed(S)` and `torch.randn(shape, generator)`.
 *
 * What torch does (ATen, read from the PyTorch sources):
 * - `aten/src/ATen/core/MT19937RNGEngine.h`: the engine is MT19937 whose state is initialised
 *   from `seed & 0xffffffff` (the seed is kept as a uint64, only its low 32 bits seed the state);
 *   `random()` is one 32-bit draw, `random64()` is two, `(first << 32) | second`.
 * - `aten/src/ATen/core/DistributionsHelper.h`: `uniform_real_distribution<float>` is
 *   `(random() & (2^24 - 1)) / 2^24`; for `double` it is `(random64() & (2^53 - 1)) / 2^53`.
 *   `normal_distribution<double>` is Box–Muller on two uniform doubles `u1, u2`:
 *   `r = sqrt(-2 log1p(-u2))`, `θ = 2π u1`; it returns `r cos θ` and caches `r sin θ` in the
 *   generator, where the next scalar draw takes it (the cache survives between calls).
 * - `aten/src/ATen/native/cpu/DistributionTemplates.h` (`normal_kernel`): a contiguous f32 tensor
 *   of 16 or more elements goes through `normal_fill` (`normal_fill_AVX2` on x86-64): first every
 *   element gets a uniform float, then each block of 16 becomes 8 pairs, `u1 = 1 - data[j]`,
 *   `u2 = data[j + 8]`, `data[j] = r cos θ`, `data[j + 8] = r sin θ` with `r = sqrt(-2 log u1)`,
 *   `θ = 2π u2`, computed in f32 (avx_mathfun's `log256_ps`/`sincos256_ps`, reproduced here bit
 *   for bit). When the size is not a multiple of 16, the last 16 elements are refilled with 16
 *   fresh uniforms and transformed again (overwriting the tail of the previous blocks). Fewer than
 *   16 elements take the scalar `normal_distribution<double>` path, cast to f32.
 * - `torch/csrc/Generator.cpp` (`manual_seed`): a negative Python seed is taken as its 64-bit
 *   two's complement.
 *
 * @module
 */

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
const TWO_POW_24 = 16777216;
const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;
const f32 = Math.fround;
/** `2.0f * c10::pi<double>` rounded to f32, as the f32 Box–Muller computes θ in f32. */
const TWO_PI_F32 = f32(2 * Math.PI);

/**
 * A torch-compatible CPU generator: MT19937 plus torch's normal sampling.
 *
 * @example
 * ```ts
 * const g = new TorchGenerator(42);
 * const latents = g.randn(1 * 4 * 64 * 64); // = torch.randn([1, 4, 64, 64], generator=g)
 * ```
 */
export class TorchGenerator {
  readonly #state = new Uint32Array(N);
  #left = 1;
  #next = 0;
  /** torch's `next_double_normal_sample_`: the cached `r sin θ` of the scalar path. */
  #cachedNormal: number | null = null;

  /**
   * Seeds like `torch.Generator("cpu").manual_seed(seed)`. Any integer torch accepts works:
   * `[-2^63, 2^64)`, negative seeds taken as their 64-bit two's complement, as torch does.
   */
  constructor(seed: number | bigint) {
    if (typeof seed === "number" && !Number.isSafeInteger(seed)) {
      throw new RangeError(`seed must be an integer, got ${seed}`);
    }
    const big = BigInt(seed);
    if (big < -(1n << 63n) || big >= 1n << 64n) {
      throw new RangeError(`seed must be in [-2^63, 2^64), got ${seed}`);
    }
    const s = this.#state;
    s[0] = Number(BigInt.asUintN(32, big));
    for (let j = 1; j < N; j++) {
      const prev = s[j - 1];
      s[j] = Math.imul(1812433253, prev ^ (prev >>> 30)) + j;
    }
  }

  /** One 32-bit MT19937 output (torch's `random()`). */
  #random(): number {
    if (--this.#left === 0) this.#twist();
    let y = this.#state[this.#next++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Regenerates the 624 state words (torch's `next_state`). */
  #twist(): void {
    const s = this.#state;
    const mix = (u: number, v: number) =>
      (((u & UPPER_MASK) | (v & LOWER_MASK)) >>> 1) ^ (v & 1 ? MATRIX_A : 0);
    let k = 0;
    for (; k < N - M; k++) s[k] = s[k + M] ^ mix(s[k], s[k + 1]);
    for (; k < N - 1; k++) s[k] = s[k + M - N] ^ mix(s[k], s[k + 1]);
    s[N - 1] = s[M - 1] ^ mix(s[N - 1], s[0]);
    this.#left = N;
    this.#next = 0;
  }

  /** `uniform_real_distribution<float>(0, 1)`: 24 random bits, exact in f32. */
  #uniformF32(): number {
    return (this.#random() & (TWO_POW_24 - 1)) / TWO_POW_24;
  }

  /** `uniform_real_distribution<double>(0, 1)`: the low 53 bits of `random64()`. */
  #uniformF64(): number {
    const hi = this.#random();
    const lo = this.#random();
    // (hi << 32 | lo) & (2^53 - 1) = (hi & (2^21 - 1)) * 2^32 + lo, exact in a double.
    return ((hi & 0x1fffff) * TWO_POW_32 + lo) / TWO_POW_53;
  }

  /** `normal_distribution<double>(0, 1)` with torch's cached second value. */
  #normalF64(): number {
    if (this.#cachedNormal !== null) {
      const z = this.#cachedNormal;
      this.#cachedNormal = null;
      return z;
    }
    const u1 = this.#uniformF64();
    const u2 = this.#uniformF64();
    const r = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = 2 * Math.PI * u1;
    this.#cachedNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /**
   * `n` standard-normal f32 values, exactly as `torch.randn(shape, generator=g)` for any shape of
   * `n` elements (contiguous, the default), advancing the generator as torch does.
   */
  randn(n: number): Float32Array {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`randn: element count must be a non-negative integer, got ${n}`);
    }
    const out = new Float32Array(n);
    if (n < 16) {
      for (let i = 0; i < n; i++) out[i] = this.#normalF64();
      return out;
    }
    for (let i = 0; i < n; i++) out[i] = this.#uniformF32();
    for (let i = 0; i + 16 <= n; i += 16) boxMuller16(out, i);
    if (n % 16 !== 0) {
      const tail = n - 16;
      for (let i = 0; i < 16; i++) out[tail + i] = this.#uniformF32();
      boxMuller16(out, tail);
    }
    return out;
  }
}

/**
 * torch's `normal_fill_16_AVX2` on `data[at .. at + 16)`, which holds uniforms in [0, 1): element
 * j pairs with j + 8, `r = sqrt(-2 log(1 - u_j))`, `θ = 2π u_{j+8}` (2π rounded to f32, θ in f32),
 * `data[j] = r cos θ`, `data[j + 8] = r sin θ`. x86-64 builds of torch (the reference) take this
 * AVX2 path; `log` and `sincos` are avx_mathfun's Cephes polynomials, reproduced below in f32 so
 * the values are bit-identical. (torch's portable `normal_fill_16`, used on CPUs without AVX2,
 * computes the same formula with libm's `logf`/`cosf`/`sinf` and θ rounded from a double product;
 * it differs by an ulp or two.)
 */
function boxMuller16(data: Float32Array, at: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = 1 - data[at + j]; // [0, 1) → (0, 1] for the log; exact for 24-bit uniforms.
    const u2 = data[at + j + 8];
    const radius = f32(Math.sqrt(f32(-2 * logF32(u1))));
    sincosF32(f32(TWO_PI_F32 * u2));
    data[at + j] = radius * sincosOut[1];
    data[at + j + 8] = radius * sincosOut[0];
  }
}

// f32 emulation of avx_mathfun.h (aten/src/ATen/native/cpu/avx_mathfun.h; Julien Pommier's
// sse_mathfun ported to AVX, after Cephes `logf`/`sinf`/`cosf`). Every operation is rounded to
// f32 as the vector instructions do. torch is built with GCC's default `-ffp-contract=fast`, which
// fuses a multiply into the add/sub that consumes it (the first multiply in program order when both
// operands are products); `fmaF32` marks exactly those places. Without the fusion about 1% of the
// values differ from torch's by one ulp.

const fbits = new Float32Array(1);
const ubits = new Uint32Array(fbits.buffer);
const dbits = new Float64Array(1);
const dwords = new Uint32Array(dbits.buffer); // [low, high] words of dbits[0] (little-endian)

/** `fmaf(a, b, c)` for f32 `a, b, c`: `a·b + c` rounded once to f32. */
function fmaF32(a: number, b: number, c: number): number {
  const p = a * b; // exact: 24 × 24 bits fit a double's 53.
  const s = p + c;
  const t = s - p;
  const err = (p - (s - t)) + (c - t); // s + err = p + c exactly (TwoSum).
  if (err === 0) return f32(s);
  // Double rounding goes wrong only when s lies exactly halfway between two f32 values (its 29
  // low mantissa bits are 1000…0) while the exact sum does not: then step s one double ulp
  // towards the exact sum, which makes the f32 rounding single and correct.
  dbits[0] = s;
  if ((dwords[0] & 0x1fffffff) !== 0x10000000) return f32(s);
  dwords[0] += (err > 0) === (s > 0) ? 1 : -1;
  return f32(dbits[0]);
}

const SQRTHF = f32(0.707106781186547524);
const LOG_P = [
  7.0376836292e-2,
  -1.1514610310e-1,
  1.1676998740e-1,
  -1.2420140846e-1,
  1.4249322787e-1,
  -1.6668057665e-1,
  2.0000714765e-1,
  -2.4999993993e-1,
  3.3333331174e-1,
].map(f32);
const LOG_Q1 = f32(-2.12194440e-4);
const LOG_Q2 = f32(0.693359375);

/** avx_mathfun `log256_ps` for one normal f32 `x > 0`. */
function logF32(x: number): number {
  fbits[0] = x;
  const bits = ubits[0];
  // x = m · 2^k with m in [0.5, 1): e = k, then fold m below √½ into [√½, √2) around 1.
  ubits[0] = (bits & ~0x7f800000) | 0x3f000000;
  let m = fbits[0];
  let e = (bits >>> 23) - 127 + 1;
  const small = m < SQRTHF;
  const tmp = small ? m : 0;
  m = f32(m - 1);
  if (small) e -= 1;
  m = f32(m + tmp);
  const z = f32(m * m);
  let y = LOG_P[0];
  for (let i = 1; i < LOG_P.length; i++) y = fmaF32(y, m, LOG_P[i]);
  y = f32(y * m);
  y = fmaF32(y, z, f32(e * LOG_Q1));
  y = fmaF32(-z, 0.5, y);
  return fmaF32(e, LOG_Q2, f32(m + y));
}

const FOPI = f32(1.27323954473516); // 4/π
const MINUS_DP = [-0.78515625, -2.4187564849853515625e-4, -3.77489497744594108e-8].map(f32);
const SINCOF = [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1].map(f32);
const COSCOF = [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2].map(f32);
/** `sincosF32`'s result: [sin, cos] (a module-level pair, so the hot loop allocates nothing). */
const sincosOut = [0, 0];

/** avx_mathfun `sincos256_ps` for one f32 `t` (|t| well below 8192); writes {@link sincosOut}. */
function sincosF32(t: number): void {
  let x = Math.abs(t);
  // Octant j (rounded up to even) of |t|, and x reduced to [-π/4, π/4] in three exact-ish steps.
  let j = Math.trunc(f32(x * FOPI));
  j = (j + 1) & ~1;
  x = fmaF32(j, MINUS_DP[0], x);
  x = fmaF32(j, MINUS_DP[1], x);
  x = fmaF32(j, MINUS_DP[2], x);
  const z = f32(x * x);
  let c = fmaF32(COSCOF[0], z, COSCOF[1]);
  c = fmaF32(c, z, COSCOF[2]);
  c = f32(c * z);
  c = fmaF32(c, z, -f32(z * 0.5));
  c = f32(c + 1);
  let s = fmaF32(SINCOF[0], z, SINCOF[1]);
  s = fmaF32(s, z, SINCOF[2]);
  s = f32(s * z);
  s = fmaF32(s, x, x);
  const swap = (j & 2) !== 0; // octants 2, 3 (mod 4): the polynomials trade places.
  const sin = swap ? c : s;
  const cos = swap ? s : c;
  const sinNegative = ((j & 4) !== 0) !== (t < 0);
  const cosNegative = ((j - 2) & 4) === 0;
  sincosOut[0] = sinNegative ? -sin : sin;
  sincosOut[1] = cosNegative ? -cos : cos;
}

/** A random seed in [0, 2^32) for runs where the user gives none (recorded with the image). */
export function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
