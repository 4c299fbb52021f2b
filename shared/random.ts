/**
 * A small seedable PRNG (xoshiro128**, seeded through splitmix32) for everything drawn on the CPU:
 * parameter initialisation, dropout masks, epoch orders, generated noise indices, the synthetic dataset.
 *
 * Its whole state is four uint32 words, so a checkpoint can store it and a resumed run continues
 * the exact same sequence. numpy's and torch's generators are not reproduced (nothing here could
 * match their streams bit for bit), which is why official noise files must be read, not redrawn.
 */

export interface RandomState {
  algorithm: "xoshiro128**";
  /** The four state words, each an unsigned 32-bit integer. */
  s: [number, number, number, number];
}

/** splitmix32: spreads a seed over the state so that nearby seeds give unrelated streams. */
function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Random {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** `seed` is any integer (taken modulo 2^32; the high word of larger seeds is mixed in too). */
  constructor(seed = 0) {
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    const next = splitmix32((seed >>> 0) ^ Math.imul(hi, 0x27d4eb2f));
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    // xoshiro's one forbidden state; splitmix32 cannot return four zeros in a row, but a restored
    // state could carry it.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  static fromState(state: RandomState): Random {
    const r = new Random(0);
    r.setState(state);
    return r;
  }

  state(): RandomState {
    return { algorithm: "xoshiro128**", s: [this.s0, this.s1, this.s2, this.s3] };
  }

  setState(state: RandomState): void {
    if (state.algorithm !== "xoshiro128**" || !Array.isArray(state.s) || state.s.length !== 4) {
      throw new Error(`not a xoshiro128** state: ${JSON.stringify(state)}`);
    }
    for (const w of state.s) {
      if (!Number.isInteger(w) || w < 0 || w > 0xffffffff) throw new Error(`state word ${w} is not a uint32`);
    }
    if (state.s.every((w) => w === 0)) throw new Error("the all-zero state is not a valid xoshiro128** state");
    [this.s0, this.s1, this.s2, this.s3] = state.s;
  }

  /** A uniform unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    this.s3 >>>= 0;
    return result;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Float32Array of n uniform values in [lo, hi) (one 32-bit draw each: masks and initialisers are float32). */
  uniformArray(n: number, lo: number, hi: number): Float32Array {
    const out = new Float32Array(n);
    const scale = (hi - lo) / 4294967296;
    for (let i = 0; i < n; i++) out[i] = lo + this.nextUint32() * scale;
    return out;
  }

  /** A uniform integer in [0, n), unbiased (rejection sampling); n ≤ 2^32. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) throw new Error(`nextInt: n must be an integer in [1, 2^32], got ${n}`);
    // Reject the top partial block of 2^32 so that every residue is equally likely.
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Fisher–Yates shuffle in place; returns `arr`. */
  shuffle<T extends { length: number; [i: number]: any }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
    return arr;
  }

  /** A random permutation of 0..n-1 (like np.random.permutation). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /**
   * A standard normal draw (Box–Muller). The second value of each pair is discarded so that the
   * state stays four words and a restored generator continues exactly.
   */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
