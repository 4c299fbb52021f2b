/**
 * Kernels for the wasm backend: the one it lacks and faster versions of a few it has.
 *
 * - `UnsortedSegmentSum` (the gradient of `gather`, i.e. of the word embedding) is missing.
 * - `Identity` and same-dtype `Cast` copy their input; here they share its buffer (as Reshape
 *   already does). Autodiff emits them by the thousand.
 * - `Unpack` along axis 0 slices with a generic strided kernel per output; contiguous rows are
 *   copied here with one `set` each.
 * - `Sum` over leading axes transposes the input first; here it is one pass over rows.
 * Each replacement falls back to the original kernel for the cases it does not handle, and every
 * one is measured in benchmarks/train_step.ts.
 */
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

let registered = false;

/** Registers the wasm kernels above (idempotent); call once the wasm backend is imported. */
export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
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
