/**
 * tfjs-core on the WebAssembly backend, single-threaded, from a wasm binary the caller supplies.
 *
 * tfjs-backend-wasm's own `init` lets Emscripten fetch or read the `.wasm` itself and compile it
 * from bytes, which Cloudflare Workers forbid (code may not be compiled at run time). So this
 * module calls the same Emscripten factory with an `instantiateWasm` hook that instantiates a
 * `WebAssembly.Module` compiled ahead of time (Workers: `import m from "….wasm"`), or one compiled
 * here from bytes (Bun, the browser page of edge/browser/), and registers 'wasm' with a
 * `BackendWasm` built on it.
 *
 * The vanilla and the SIMD binary share this glue (`wasm-out/tfjs-backend-wasm.js`); the
 * threaded-SIMD one needs a Web Worker and its own glue, and is never used here.
 */
import * as tf from "@tensorflow/tfjs-core";
import { BackendWasm, setThreadsCount } from "@tensorflow/tfjs-backend-wasm";
import wasmFactory from "@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm.js";
import { registerWasmKernels } from "../shared/model/kernels";

/** Where the wasm binary comes from: a precompiled module (Workers) or its bytes (Bun, tests, the browser page). */
export interface WasmSource {
  module?: WebAssembly.Module;
  bytes?: Uint8Array;
  /** The SIMD batched-matmul module (native/bmm.wasm), precompiled like `module`; optional. */
  bmm?: WebAssembly.Module;
}

let ready: Promise<void> | null = null;

/**
 * Makes 'wasm' the tfjs backend, built on `source`. Idempotent: later calls return the first
 * call's promise whatever their source (one process holds one backend). A failed call may be
 * retried.
 */
export function initWasmBackend(source: WasmSource): Promise<void> {
  ready ??= start(source).catch((error: unknown) => {
    ready = null;
    throw error;
  });
  return ready;
}

async function start(source: WasmSource): Promise<void> {
  let module = source.module;
  if (module === undefined) {
    if (source.bytes === undefined) throw new Error("initWasmBackend: give module or bytes");
    module = await WebAssembly.compile(source.bytes as Uint8Array<ArrayBuffer>);
  }
  const compiled = module;
  // Importing tfjs-backend-wasm registered a 'wasm' factory that loads the binary by itself;
  // replace it, unless something in this process already started it (then it is used as is).
  if (!("wasm" in tf.engine().registry)) {
    if (tf.findBackendFactory("wasm") !== null) tf.removeBackend("wasm");
    setThreadsCount(1);
    tf.registerBackend("wasm", async () => new BackendWasm(await instantiate(compiled)), 3);
  }
  const ok = await tf.setBackend("wasm");
  if (!ok || tf.getBackend() !== "wasm") {
    throw new Error(`initWasmBackend: tfjs could not start the wasm backend (active: ${tf.getBackend()})`);
  }
  registerWasmKernels({ bmm: source.bmm });
}

type BackendWasmModule = ConstructorParameters<typeof BackendWasm>[0];

/** The Emscripten module, wired the way tfjs-backend-wasm's `init` wires it (`module.tfjs`). */
async function instantiate(compiled: WebAssembly.Module): Promise<BackendWasmModule> {
  // Under Bun the glue takes itself for Node and adds process listeners that rethrow any
  // unhandled rejection; a server must not die of that, so they are removed again below.
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  const before = proc?.listeners ? snapshotListeners(proc) : null;
  let aborted: ((reason: unknown) => void) | null = null;
  const abortedPromise = new Promise<never>((_, reject) => {
    aborted = reject;
  });
  const factoryPromise = wasmFactory({
    instantiateWasm: (
      imports: WebAssembly.Imports,
      receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
    ) => {
      WebAssembly.instantiate(compiled, imports).then(
        (instance) => receive(instance, compiled),
        (error: unknown) => aborted?.(error),
      );
      return {}; // asynchronous instantiation, as Emscripten's hook contract asks
    },
    onAbort: (message: string) => aborted?.(new Error(`tfjs wasm aborted: ${message}`)),
  });
  // Emscripten's ready promise resolves to the module itself; take it inside `then`.
  const wasm = await Promise.race([factoryPromise.then((m) => ({ m })), abortedPromise]).then((r) => r.m);
  if (proc && before) removeNewListeners(proc, before);
  const cwrap = (wasm as unknown as { cwrap: (n: string, r: string | null, a: string[]) => Function }).cwrap;
  const tfjs = {
    init: cwrap("init", null, []),
    initWithThreadsCount: cwrap("init_with_threads_count", null, ["number"]),
    getThreadsCount: cwrap("get_threads_count", "number", []),
    registerTensor: cwrap("register_tensor", null, ["number", "number", "number"]),
    disposeData: cwrap("dispose_data", null, ["number"]),
    dispose: cwrap("dispose", null, []),
  };
  return Object.assign(wasm, { tfjs }) as unknown as BackendWasmModule;
}

type ProcessEvent = "uncaughtException" | "unhandledRejection";
const EVENTS: ProcessEvent[] = ["uncaughtException", "unhandledRejection"];

function snapshotListeners(proc: NodeJS.Process): Map<ProcessEvent, Function[]> {
  return new Map(EVENTS.map((e) => [e, proc.listeners(e) as Function[]]));
}

function removeNewListeners(proc: NodeJS.Process, before: Map<ProcessEvent, Function[]>): void {
  for (const event of EVENTS) {
    for (const listener of proc.listeners(event)) {
      if (!before.get(event)!.includes(listener)) proc.removeListener(event, listener as (...a: unknown[]) => void);
    }
  }
}
