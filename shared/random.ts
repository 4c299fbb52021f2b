/**
 * A small seedable PRNG (xoshiro128**, seeded through splitmix32) whose whole state is four
 * 32-bit words, so that checkpoints can store it and a resumed run draws the same numbers.
 */
export class Rng {
  private s: Uint32Array;

  constructor(seed: number | Uint32Array = 0) {
    if (seed instanceof Uint32Array) {
      if (seed.length !== 4) throw new Error(`Rng state must have 4 words, got ${seed.length}`);
      this.s = Uint32Array.from(seed);
    } else {
      this.s = new Uint32Array(4);
      let x = seed >>> 0;
      for (let i = 0; i < 4; i++) {
        // splitmix32: spreads a small integer seed over all state bits.
        x = (x + 0x9e3779b9) >>> 0;
        let z = x;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
        this.s[i] = (z ^ (z >>> 16)) >>> 0;
      }
      if (this.s.every((w) => w === 0)) this.s[0] = 1;
    }
  }

  /** The generator's state, for checkpoints. */
  get state(): Uint32Array {
    return Uint32Array.from(this.s);
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of randomness. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!(n > 0) || n > 4294967296) throw new Error(`Rng.int: n must be in (0, 2^32], got ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    let x: number;
    do x = this.nextU32();
    while (x >= limit);
    return x % n;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: any }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** A permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** Float32Array of uniform values in [lo, hi). */
  uniformArray(n: number, lo: number, hi: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.next();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
