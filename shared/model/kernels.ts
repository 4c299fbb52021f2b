/**
 * Kernels the model needs that a backend lacks. The wasm backend has no `UnsortedSegmentSum`,
 * which is the gradient of `gather` (the word embedding); a JS implementation over the backend's
 * own read/write calls is registered for it.
 */
import * as tf from "./tf";

interface JsBackend {
  readSync(dataId: unknown): ArrayLike<number>;
  makeOutput?(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): tf.TensorInfo;
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

const unsortedSegmentSum: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = (attrs as { numSegments: number }).numSegments;
  const b = backend as unknown as JsBackend;
  const xv = b.readSync(x.dataId);
  const ids = b.readSync(segmentIds.dataId);
  const inner = x.shape.slice(segmentIds.shape.length).reduce((a, d) => a * d, 1);
  const out = new Float32Array(numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let k = 0; k < inner; k++) out[dst + k] += xv[src + k];
  }
  const shape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  if (b.makeOutput) return b.makeOutput(shape, "float32", undefined, out);
  return b.makeTensorInfo!(shape, "float32", out);
};

let registered = false;

/** Registers the missing kernels (idempotent); call after importing the wasm backend. */
export function registerMissingKernels(): void {
  if (registered) return;
  registered = true;
  if (!tf.getKernel("UnsortedSegmentSum", "wasm")) {
    tf.registerKernel({ kernelName: "UnsortedSegmentSum", backendName: "wasm", kernelFunc: unsortedSegmentSum });
  }
}
