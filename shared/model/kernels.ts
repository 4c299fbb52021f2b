/**
 * Kernels for the wasm backend: the one it lacks and faster versions of a few it has.
 *
 * - `UnsortedSegmentSum` (the gradient of `gather`, i.e. of the word embedding) is missing.
 * - `Identity` and same-dtype `Cast` copy their input; here they share its buffer (as Reshape
 *   already does). Autodiff emits them by the thousand.
 * - `Unpack` along axis 0 slices with a generic strided kernel per output; contiguous rows are
 *   copied here with one `set` each.
 * - `Sum` over leading axes transposes the input first; here it is one pass over rows.
 * - `BatchMatMul` with a batch or a transposed operand runs a scalar loop in tfjs-backend-wasm
 *   (XNNPACK serves only the plain 2-D product); with the SIMD module of native/bmm.c, when the
 *   caller supplies it, those products run 4 lanes wide.
 * - The plain 2-D product caches XNNPACK's packed copy of the right operand under that tensor's
 *   buffer id. Reshape shares buffers, so one buffer can reach the product under two shapes (an
 *   activation as [N·36, E] in one layer's gradient and as [N, 36·E] in the head's) and the second
 *   product would read the first one's packing: such an operand is copied first.
 * Each replacement falls back to the original kernel for the cases it does not handle, and every
 * one is measured in benchmarks/train_step.ts.
 */
import { setWasmTransposedMatMulFast } from "./ops";
import { setInt8Module } from "./quantized";
import * as tf from "./tf";

interface WasmBackend {
  readSync(dataId: unknown): ArrayLike<number>;
  incRef(dataId: unknown): void;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

const unsortedSegmentSum = ({ inputs, backend, attrs }: KernelArgs) => {
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = (attrs as unknown as { numSegments: number }).numSegments;
  const b = backend as unknown as WasmBackend;
  const ids = b.readSync(segmentIds.dataId);
  const inner = x.shape.slice(segmentIds.shape.length).reduce((a, d) => a * d, 1);
  const shape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  const out = b.makeOutput(shape, "float32");
  // Views into wasm memory are taken after the allocation: growing the heap detaches older ones.
  const xv = b.typedArrayFromHeap(x);
  const ov = b.typedArrayFromHeap(out);
  ov.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let k = 0; k < inner; k++) ov[dst + k] += xv[src + k];
  }
  return out;
};

function shareBuffer(b: WasmBackend, x: tf.TensorInfo): tf.TensorInfo {
  b.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function override(name: string, make: (original: tf.KernelFunc) => tf.KernelFunc) {
  const original = tf.getKernel(name, "wasm");
  if (!original) return;
  const fast = make(original.kernelFunc);
  tf.unregisterKernel(name, "wasm");
  tf.registerKernel({ ...original, kernelFunc: fast });
}

/** The SIMD batched product of native/bmm.c, in its own linear memory (inputs are copied in). */
export class SimdBmm {
  private readonly memory = new WebAssembly.Memory({ initial: 32 });
  private readonly bmm: (a: number, b: number, c: number, scratch: number, batch: number, batchA: number, batchB: number, m: number, k: number, n: number, tA: number, tB: number) => void;
  private readonly base: number;

  constructor(module: WebAssembly.Module) {
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    const ex = instance.exports as unknown as { bmm: SimdBmm["bmm"]; heap_base: () => number };
    this.bmm = ex.bmm;
    this.base = (ex.heap_base() + 15) & ~15;
  }

  /** Bytes of its linear memory (inputs and outputs of the largest product so far; it never shrinks). */
  get byteLength(): number {
    return this.memory.buffer.byteLength;
  }

  /** out = op(a) @ op(b) per batch entry; shapes of op(a) m x k, op(b) k x n. */
  run(a: ArrayLike<number> & { length: number }, b: ArrayLike<number> & { length: number }, out: Float32Array, dims: { batch: number; batchA: number; batchB: number; m: number; k: number; n: number; transA: boolean; transB: boolean }) {
    const aOff = this.base;
    const bOff = aOff + align16(a.length * 4);
    const cOff = bOff + align16(b.length * 4);
    const sOff = cOff + align16(out.length * 4);
    const end = sOff + (dims.transB ? dims.k * dims.n * 4 : 0);
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / 65536));
    const heap = new Float32Array(this.memory.buffer);
    heap.set(a as Float32Array, aOff / 4);
    heap.set(b as Float32Array, bOff / 4);
    this.bmm(aOff, bOff, cOff, sOff, dims.batch, dims.batchA, dims.batchB, dims.m, dims.k, dims.n, dims.transA ? 1 : 0, dims.transB ? 1 : 0);
    out.set(heap.subarray(cOff / 4, cOff / 4 + out.length));
  }
}

function align16(n: number): number {
  return (n + 15) & ~15;
}

let registered = false;
let simdBmm: SimdBmm | null = null;

/** Bytes of the batched-product module's memory (0 without it): part of what a process holds. */
export function simdBmmBytes(): number {
  return simdBmm?.byteLength ?? 0;
}

export interface WasmKernelOptions {
  /** The compiled native/bmm.wasm; without it batched products stay on tfjs's own kernel. */
  bmm?: WebAssembly.Module;
}

/** Registers the wasm kernels above (idempotent); call once the wasm backend is imported. */
export function registerWasmKernels(options: WasmKernelOptions = {}): void {
  if (registered) return;
  registered = true;
  setInt8Module(options.bmm);
  const simd = options.bmm ? new SimdBmm(options.bmm) : null;
  simdBmm = simd;
  setWasmTransposedMatMulFast(simd !== null);
  const packedShape = new WeakMap<object, string>();
  override("BatchMatMul", (orig) => (args) => {
      const backend0 = args.backend as unknown as WasmBackend;
      const inputs = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const attrs0 = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
      const plain2d = !attrs0.transposeA && !attrs0.transposeB && inputs.b.shape.slice(0, -2).reduce((x, d) => x * d, 1) === 1;
      if (plain2d || !simd) {
        const key = inputs.b.shape.slice(-2).join("x");
        const seen = packedShape.get(inputs.b.dataId as object);
        if (seen === undefined) packedShape.set(inputs.b.dataId as object, key);
        else if (seen !== key) {
          // A fresh buffer, so that XNNPACK packs this shape instead of reusing the other one.
          const copy = backend0.makeOutput(inputs.b.shape, inputs.b.dtype);
          backend0.typedArrayFromHeap(copy).set(backend0.typedArrayFromHeap(inputs.b));
          const out = orig({ ...args, inputs: { a: inputs.a, b: copy } } as typeof args) as tf.TensorInfo;
          (backend0 as unknown as { disposeData(id: unknown): void }).disposeData(copy.dataId);
          return out;
        }
        if (!simd) return orig(args);
      }
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
      const ra = a.shape.length;
      const rb = b.shape.length;
      const batchA = a.shape.slice(0, -2).reduce((x, d) => x * d, 1);
      const batchB = b.shape.slice(0, -2).reduce((x, d) => x * d, 1);
      // XNNPACK already serves the plain 2-D product; odd broadcasts go to the original too.
      const plain = batchA === 1 && batchB === 1 && !transposeA && !transposeB;
      if (plain || a.dtype !== "float32" || b.dtype !== "float32" || (batchA !== batchB && batchA !== 1 && batchB !== 1) || ra !== rb) return orig(args);
      const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
      const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
      const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
      const batch = Math.max(batchA, batchB);
      const outShape = [...(batchA >= batchB ? a.shape : b.shape).slice(0, -2), m, n];
      const backend = args.backend as unknown as WasmBackend;
      const out = backend.makeOutput(outShape, "float32");
      simd.run(backend.typedArrayFromHeap(a), backend.typedArrayFromHeap(b), backend.typedArrayFromHeap(out) as Float32Array, { batch, batchA, batchB, m, k, n, transA: transposeA, transB: transposeB });
      return out;
  });
  if (!tf.getKernel("UnsortedSegmentSum", "wasm")) {
    tf.registerKernel({ kernelName: "UnsortedSegmentSum", backendName: "wasm", kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc });
  }
  override("Identity", (orig) => (args) => {
    const x = (args.inputs as { x: tf.TensorInfo }).x;
    return x.dtype === "string" ? orig(args) : shareBuffer(args.backend as unknown as WasmBackend, x);
  });
  override("Cast", (orig) => (args) => {
    const x = (args.inputs as { x: tf.TensorInfo }).x;
    const dtype = (args.attrs as unknown as { dtype: tf.DataType }).dtype;
    return x.dtype === dtype && dtype !== "string" ? shareBuffer(args.backend as unknown as WasmBackend, x) : orig(args);
  });
  override("Unpack", (orig) => (args) => {
    const value = (args.inputs as { value: tf.TensorInfo }).value;
    const axis = (args.attrs as unknown as { axis: number }).axis;
    if ((axis !== 0 && axis !== -value.shape.length) || value.dtype === "string") return orig(args);
    const b = args.backend as unknown as WasmBackend;
    const n = value.shape[0];
    const shape = value.shape.slice(1);
    const chunk = shape.reduce((a, d) => a * d, 1);
    const outs: tf.TensorInfo[] = [];
    for (let i = 0; i < n; i++) outs.push(b.makeOutput(shape, value.dtype));
    const src = b.typedArrayFromHeap(value);
    for (let i = 0; i < n; i++) b.typedArrayFromHeap(outs[i]).set(src.subarray(i * chunk, (i + 1) * chunk));
    return outs;
  });
  override("Sum", (orig) => (args) => {
    const x = (args.inputs as { x: tf.TensorInfo }).x;
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, c) => a - c);
    // Only a reduction over a prefix of the axes (e.g. a bias gradient over rows) is handled here.
    const isPrefix = axes.length > 0 && axes.length < rank && axes.every((a, i) => a === i);
    if (!isPrefix || x.dtype !== "float32") return orig(args);
    const b = args.backend as unknown as WasmBackend;
    const outer = x.shape.slice(0, axes.length).reduce((a, d) => a * d, 1);
    const innerShape = x.shape.slice(axes.length);
    const inner = innerShape.reduce((a, d) => a * d, 1);
    const outShape = keepDims ? [...axes.map(() => 1), ...innerShape] : innerShape;
    const out = b.makeOutput(outShape, "float32");
    const xv = b.typedArrayFromHeap(x);
    const ov = b.typedArrayFromHeap(out);
    const acc = new Float64Array(inner);
    for (let r = 0; r < outer; r++) {
      const base = r * inner;
      for (let k = 0; k < inner; k++) acc[k] += xv[base + k];
    }
    ov.set(acc);
    return out;
  });
}
