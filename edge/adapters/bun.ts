/**
 * Bun side of the edge app: the model directory as an AssetSource, and the tfjs wasm binary read
 * from node_modules. Nothing else of the app depends on Bun.
 */
import { resolve, sep } from "node:path";
import { assetPath, type AssetSource } from "../../shared/retrieval/assets.ts";

/** Files under `dir`; a missing file is null, any other read error throws. */
export function fileAssets(dir: string): AssetSource {
  const root = resolve(dir);
  return {
    async get(path) {
      const full = resolve(root, assetPath(path));
      if (!full.startsWith(root + sep)) throw new Error(`asset ${path} is outside ${root}`);
      const file = Bun.file(full);
      if (!(await file.exists())) return null;
      return new Uint8Array(await file.arrayBuffer());
    },
  };
}

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

/** The tfjs-backend-wasm binary for this CPU (SIMD where JavaScriptCore validates it). */
export async function tfjsWasmBytes(): Promise<Uint8Array> {
  const name = wasmSimdSupported() ? WASM_BINARIES.simd : WASM_BINARIES.plain;
  const path = Bun.resolveSync(`@tensorflow/tfjs-backend-wasm/dist/${name}`, import.meta.dir);
  return new Uint8Array(await Bun.file(path).arrayBuffer());
}
