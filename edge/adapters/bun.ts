/**
 * Bun side of the edge app: the model directory as an AssetSource, and the tfjs wasm binary read
 * from node_modules. Nothing else of the app depends on Bun.
 */
import { resolve, sep } from "node:path";
import { assetPath, type AssetSource } from "../../shared/retrieval/assets.ts";
import { WASM_BINARIES, wasmSimdSupported } from "../wasm-binaries.ts";

// Named and probed in a runtime-free module: the browser page picks its binary with them too.
export { WASM_BINARIES, wasmSimdSupported };

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

/** The tfjs-backend-wasm binary for this CPU (SIMD where JavaScriptCore validates it). */
export async function tfjsWasmBytes(): Promise<Uint8Array> {
  const name = wasmSimdSupported() ? WASM_BINARIES.simd : WASM_BINARIES.plain;
  const path = Bun.resolveSync(`@tensorflow/tfjs-backend-wasm/dist/${name}`, import.meta.dir);
  return new Uint8Array(await Bun.file(path).arrayBuffer());
}
