/**
 * tfjs-backend-wasm's binaries by name, and the SIMD probe that picks one. Imports nothing, so that
 * the app's list of the browser page's files (browser/files.ts) does not load tfjs.
 */

/** The tfjs-backend-wasm binaries that its single-threaded glue loads (both share it). */
export const WASM_BINARIES = {
  plain: "tfjs-backend-wasm.wasm",
  simd: "tfjs-backend-wasm-simd.wasm",
} as const;

/** The SIMD probe of wasm-feature-detect (the one tfjs-backend-wasm's own flag uses). */
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10, 9, 1, 7, 0, 65, 0, 253, 15, 26, 11,
]);

export function wasmSimdSupported(): boolean {
  try {
    return WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}
