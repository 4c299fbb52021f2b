/**
 * Backend selection for the trainer and the command-line tools: a hardware WebGPU adapter (Dawn),
 * else TensorFlow's native binding (tfjs-node-gpu, then tfjs-node) when it loads, else
 * WebAssembly, else plain JavaScript. A software WebGPU adapter (SwiftShader) is slower than wasm,
 * so `auto` never takes one; `--backend webgpu` does, which is how the tests run WebGPU here.
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { loadNativeBmm } from "../native/load";
import * as tf from "../shared/model/tf";
import { registerWasmKernels } from "../shared/model/kernels";
import { type AdapterSummary, describeAdapter, SWIFTSHADER_HINT } from "./webgpu";

export { loadNativeBmm };

export const BACKENDS = ["auto", "webgpu", "tensorflow", "wasm", "cpu"] as const;
export type BackendChoice = (typeof BACKENDS)[number];

export interface BackendInfo {
  /** The tfjs backend name now active: "webgpu", "tensorflow", "wasm" or "cpu". */
  name: string;
  /** The package that provided it. */
  provider: string;
  /** Why this one: what was tried and why the others were passed over. */
  reason: string;
  /** The WebGPU adapter, when name is "webgpu". */
  adapter?: AdapterSummary;
}

/** How each candidate is loaded; injectable so that tests can exercise the selection logic. */
export interface BackendLoaders {
  /**
   * Finds a WebGPU adapter and registers the "webgpu" backend on it; throws when there is none.
   * With allowSoftware false it does not go looking for SwiftShader, but may still return a
   * software adapter that the system's drivers offer (the caller passes it over).
   */
  webgpu(options: { allowSoftware: boolean }): Promise<AdapterSummary>;
  /** Imports a native package; throws when it or its binding is missing. */
  native(pkg: "@tensorflow/tfjs-node-gpu" | "@tensorflow/tfjs-node"): Promise<void>;
  wasm(): Promise<void>;
  cpu(): Promise<void>;
  /** Activates a registered backend; false when it fails to initialise. */
  activate(name: string): Promise<boolean>;
}

export const defaultLoaders: BackendLoaders = {
  async webgpu({ allowSoftware }) {
    const w = await import("./webgpu");
    const have = w.registeredAdapter();
    if (have && (allowSoftware || !have.software)) return have;
    const found = await w.findAdapter({ allowSoftware });
    if (!found.adapter || !found.summary) throw new Error(`no WebGPU adapter (${found.notes.join("; ")})`);
    if (found.summary.software && !allowSoftware) return found.summary;
    await w.registerWebGpuBackend(found.adapter, found.summary);
    return found.summary;
  },
  async native(pkg) {
    // Importing a package whose addon was never built registers its kernels and then throws;
    // look for the addon first, so that a missing one costs nothing and says why.
    let dir: string;
    try {
      dir = dirname(require.resolve(`${pkg}/package.json`));
    } catch {
      throw new Error(`${pkg} is not installed`);
    }
    const lib = join(dir, "lib");
    const built = existsSync(lib) && readdirSync(lib).some((d) => d.startsWith("napi-v") && existsSync(join(lib, d, "tfjs_binding.node")));
    if (!built) throw new Error(`${pkg} is installed but its native addon (lib/napi-v*/tfjs_binding.node) was never built`);
    await import(pkg);
  },
  async wasm() {
    await import("@tensorflow/tfjs-backend-wasm");
  },
  async cpu() {
    await import("@tensorflow/tfjs-backend-cpu");
  },
  async activate(name) {
    return tf.setBackend(name);
  },
};

export class BackendUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackendUnavailableError";
  }
}

const NATIVE = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"] as const;

/** What a user runs to make a native package usable (its install script fetches libtensorflow). */
export const NATIVE_INSTALL_HINT =
  "bun pm trust @tensorflow/tfjs-node-gpu (CUDA GPU) or bun pm trust @tensorflow/tfjs-node (CPU); both download libtensorflow, see the README";

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}

/**
 * Picks and activates a backend. `auto` tries a hardware WebGPU adapter, then tensorflow (native),
 * then wasm, then cpu; an explicit choice that cannot be activated is an error naming what to install.
 */
export async function initBackend(preferred: BackendChoice = "auto", loaders: BackendLoaders = defaultLoaders): Promise<BackendInfo> {
  if (!BACKENDS.includes(preferred)) throw new BackendUnavailableError(`unknown backend '${preferred}' (valid: ${BACKENDS.join(", ")})`);
  const skipped: string[] = [];

  if (preferred === "auto" || preferred === "webgpu") {
    const provider = "@tensorflow/tfjs-backend-webgpu on Dawn";
    try {
      const adapter = await loaders.webgpu({ allowSoftware: preferred === "webgpu" });
      if (adapter.software && preferred === "auto") {
        skipped.push(`webgpu: only a software adapter, ${describeAdapter(adapter)}, slower than wasm`);
      } else if (await loaders.activate("webgpu")) {
        const why = preferred === "auto" ? `WebGPU adapter ${describeAdapter(adapter)}` : `requested; adapter ${describeAdapter(adapter)}`;
        return { name: "webgpu", provider, reason: why, adapter };
      } else {
        skipped.push(`webgpu: adapter ${describeAdapter(adapter)} found but the backend failed to initialise`);
      }
    } catch (e) {
      skipped.push(`webgpu: ${firstLine(e)}`);
    }
    if (preferred === "webgpu") {
      const why = skipped.join("; ");
      throw new BackendUnavailableError(`--backend webgpu is unavailable (${why})${why.includes(SWIFTSHADER_HINT) ? "" : `. Without a GPU: ${SWIFTSHADER_HINT}`}`);
    }
  }

  if (preferred === "auto" || preferred === "tensorflow") {
    for (const pkg of NATIVE) {
      try {
        await loaders.native(pkg);
        if (await loaders.activate("tensorflow")) {
          return { name: "tensorflow", provider: pkg, reason: preferred === "auto" ? `native binding of ${pkg} loaded${skipped.length ? ` (${skipped.join("; ")})` : ""}` : "requested" };
        }
        skipped.push(`${pkg}: loaded but the 'tensorflow' backend failed to initialise`);
      } catch (e) {
        skipped.push(`${pkg}: ${firstLine(e)}`);
      }
    }
    if (preferred === "tensorflow") {
      throw new BackendUnavailableError(`--backend tensorflow is unavailable (${skipped.join("; ")}). To enable it: ${NATIVE_INSTALL_HINT}`);
    }
  }

  if (preferred === "auto" || preferred === "wasm") {
    try {
      await loaders.wasm();
      if (await loaders.activate("wasm")) {
        registerWasmKernels({ bmm: loadNativeBmm() });
        const why = preferred === "auto" ? `no native TensorFlow binding (${skipped.join("; ")}); wasm is the fastest CPU backend` : "requested";
        return { name: "wasm", provider: "@tensorflow/tfjs-backend-wasm", reason: why };
      }
      skipped.push("wasm: failed to initialise");
    } catch (e) {
      skipped.push(`wasm: ${firstLine(e)}`);
    }
    if (preferred === "wasm") throw new BackendUnavailableError(`--backend wasm is unavailable (${skipped.join("; ")}); reinstall @tensorflow/tfjs-backend-wasm`);
  }

  try {
    await loaders.cpu();
    if (await loaders.activate("cpu")) {
      return { name: "cpu", provider: "@tensorflow/tfjs-backend-cpu", reason: preferred === "auto" ? `fallback: ${skipped.join("; ")}` : "requested" };
    }
    skipped.push("cpu: failed to initialise");
  } catch (e) {
    skipped.push(`cpu: ${firstLine(e)}`);
  }
  throw new BackendUnavailableError(`no TensorFlow.js backend could be activated (${skipped.join("; ")})`);
}

/** One line for logs: which backend and why. */
export function describeBackend(info: BackendInfo): string {
  return `backend: ${info.name} (${info.provider}) — ${info.reason}`;
}
