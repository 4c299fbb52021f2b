/**
 * Loads the SIMD batched-matmul module (bmm.c, committed as bmm.wasm) for Bun processes: the
 * trainer, the CLIs and the edge's Bun entry. Workers import the .wasm as a module instead.
 * PC2_NO_NATIVE_BMM=1 turns it off (tfjs-backend-wasm's own kernel then serves every product).
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

export function loadNativeBmm(): WebAssembly.Module | undefined {
  const path = resolve(import.meta.dir, "bmm.wasm");
  if (process.env.PC2_NO_NATIVE_BMM || !existsSync(path)) return undefined;
  return new WebAssembly.Module(readFileSync(path));
}
