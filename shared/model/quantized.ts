/**
 * Weights that stay int8 in memory while serving (DecodeOptions.weights = "int8"): a package's
 * uint8-quantized encoder matrices (params.ts heldAsInt8) are kept at one byte per value and
 * multiplied by native/bmm.c's `qmm`, which widens them to float32 in registers. tfjs computes in
 * float32 only, and its wasm backend holds a second, packed copy of every weight it multiplies by
 * (XNNPACK), so a paper-size net needs 122 MB of heap there; held this way its encoders' matrices
 * take 16.2 MB and tfjs's heap stays at 16 MB.
 *
 * A package stores a uint8 weight as q with value q × scale + min. Here it is held as
 * w = q − 128 (int8) with offset = min + 128 × scale, and
 *   x · value = scale × (x · w) + offset × Σ x,
 * whose two terms do not cancel for weights centred on zero. Products equal those with the
 * dequantized float32 weights up to the order of the float32 additions.
 *
 * Each net's matrices live in their own instance of the native module (its own linear memory),
 * released with the net. Without the native module (PC2_NO_NATIVE_BMM, or a caller that supplies
 * none) the same arithmetic runs in JavaScript: slower, the same values to float32 rounding.
 */

let nativeModule: WebAssembly.Module | undefined;

/** The compiled native/bmm.wasm, for the int8 products (registerWasmKernels sets it). */
export function setInt8Module(module: WebAssembly.Module | undefined): void {
  nativeModule = module;
}

export function int8Module(): WebAssembly.Module | undefined {
  return nativeModule;
}

type Qmm = (x: number, m: number, k: number, w: number, n: number, y: number, scale: number, offset: number) => void;

/** Bytes of scratch (x rows and their outputs) one native call may use: rows are processed in blocks. */
const SCRATCH_BYTES = 2 * 1024 * 1024;

/** A [rows, cols] matrix (nn.Linear's [out, in]) held as int8 in its owner's memory. */
export class Int8Matrix {
  constructor(
    readonly owner: Int8Weights,
    readonly shape: [number, number],
    /** Byte offset in the owner's memory (native), or the values themselves (JavaScript). */
    readonly at: number,
    readonly js: Int8Array | null,
    readonly scale: number,
    /** The package's min: a value is (w + 128) × scale + min. */
    readonly min: number,
  ) {}

  /** min + 128 × scale: a value is w × scale + offset. */
  get offset(): number {
    return this.min + 128 * this.scale;
  }

  get byteLength(): number {
    return this.shape[0] * this.shape[1];
  }

  /** x [m, cols] @ thisᵀ -> [m, rows] (what nn.Linear computes before its bias). */
  matmulT(x: Float32Array, m: number): Float32Array {
    return this.owner.matmulT(this, x, m);
  }

  /** The dequantized rows `ids` (an embedding lookup), [ids.length, cols]: q × scale + min, as the package decoder computes. */
  gather(ids: ArrayLike<number>): Float32Array {
    return this.owner.gather(this, ids);
  }
}

export function isInt8(w: unknown): w is Int8Matrix {
  return w instanceof Int8Matrix;
}

/** One net's int8 matrices and the native instance that multiplies by them. */
export class Int8Weights {
  private readonly memory: WebAssembly.Memory | null = null;
  private readonly qmm: Qmm | null = null;
  private end = 0;
  private jsBytes = 0;

  /** `module`: the native module (default: the one registered), or null for JavaScript. */
  constructor(module: WebAssembly.Module | null = nativeModule ?? null) {
    if (!module) return;
    const memory = new WebAssembly.Memory({ initial: 4 }); // the module declares 2 pages (its stack)
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    const ex = instance.exports as unknown as { qmm?: Qmm; heap_base: () => number };
    if (!ex.qmm) return; // an older build of the module: JavaScript
    this.memory = memory;
    this.qmm = ex.qmm;
    this.end = (ex.heap_base() + 15) & ~15;
  }

  /** Whether the products run in the native module (else in JavaScript). */
  get native(): boolean {
    return this.qmm !== null;
  }

  /** Bytes this net's int8 weights hold (the native memory, scratch included, or the JS arrays). */
  get byteLength(): number {
    return this.memory ? this.memory.buffer.byteLength : this.jsBytes;
  }

  /** Holds a uint8-quantized matrix (value = q × scale + min) as int8. */
  add(q: Uint8Array, shape: [number, number], scale: number, min: number): Int8Matrix {
    const n = shape[0] * shape[1];
    if (q.length !== n) throw new Error(`int8 weights: ${q.length} values for shape [${shape}]`);
    if (!this.memory) {
      const js = new Int8Array(n);
      for (let i = 0; i < n; i++) js[i] = q[i] - 128;
      this.jsBytes += n;
      return new Int8Matrix(this, shape, 0, js, scale, min);
    }
    const at = this.end;
    this.ensure(at + n);
    const view = new Uint8Array(this.memory.buffer, at, n);
    for (let i = 0; i < n; i++) view[i] = q[i] ^ 0x80; // q − 128 as a two's-complement byte
    this.end = (at + n + 15) & ~15;
    return new Int8Matrix(this, shape, at, null, scale, min);
  }

  private ensure(bytes: number): void {
    const memory = this.memory!;
    const have = memory.buffer.byteLength;
    if (bytes > have) memory.grow(Math.ceil((bytes - have) / 65536));
  }

  matmulT(w: Int8Matrix, x: Float32Array, m: number): Float32Array {
    const [n, k] = w.shape;
    if (x.length !== m * k) throw new Error(`int8 product: x has ${x.length} values, expected ${m} × ${k}`);
    const y = new Float32Array(m * n);
    if (w.js) {
      const q = w.js;
      for (let i = 0; i < m; i++) {
        const xo = i * k;
        let rs = 0;
        for (let p = 0; p < k; p++) rs += x[xo + p];
        const offset = w.offset;
        for (let o = 0; o < n; o++) {
          const wo = o * k;
          let s = 0;
          for (let p = 0; p < k; p++) s += x[xo + p] * q[wo + p];
          y[i * n + o] = w.scale * s + offset * rs;
        }
      }
      return y;
    }
    // Rows in blocks, so that the scratch (block × (k + n) floats) stays small.
    const block = Math.max(4, Math.floor(SCRATCH_BYTES / (4 * (k + n))) & ~3);
    const xAt = this.end;
    for (let i0 = 0; i0 < m; i0 += block) {
      const rows = Math.min(block, m - i0);
      const yAt = xAt + ((rows * k * 4 + 15) & ~15);
      this.ensure(yAt + rows * n * 4);
      const heap = new Float32Array(this.memory!.buffer);
      heap.set(x.subarray(i0 * k, (i0 + rows) * k), xAt / 4);
      this.qmm!(xAt, rows, k, w.at, n, yAt, w.scale, w.offset);
      y.set(heap.subarray(yAt / 4, yAt / 4 + rows * n), i0 * n);
    }
    return y;
  }

  gather(w: Int8Matrix, ids: ArrayLike<number>): Float32Array {
    const [rows, k] = w.shape;
    const out = new Float32Array(ids.length * k);
    const bytes = w.js ?? new Int8Array(this.memory!.buffer, w.at, rows * k);
    for (let i = 0; i < ids.length; i++) {
      const r = ids[i];
      if (!(r >= 0 && r < rows)) throw new RangeError(`row ${r} of an int8 matrix of ${rows} rows`);
      const src = r * k;
      for (let p = 0; p < k; p++) out[i * k + p] = (bytes[src + p] + 128) * w.scale + w.min;
    }
    return out;
  }
}
