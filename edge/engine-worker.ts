/**
 * One engine of edge/engine-pool.ts, in a Bun Worker: its own tfjs with its own wasm backend and
 * its own copy of the model, so that an evaluation computing here leaves the server's thread free
 * to answer /health and to parse the next request.
 *
 * Protocol (structured-cloned messages): the pool sends `{type: "load", …}` once and the worker
 * answers `{type: "ready", …}` with what the RetrievalEngine interface exposes synchronously, or
 * `{type: "failed", message}`; then each `{type: "call", id, verb, args}` gets one
 * `{type: "result", id, value}` or `{type: "error", id, name, message}`. Calls run one at a time,
 * as the pool sends them. A call is cancelled by terminating the worker (wasm computes
 * synchronously; nothing else would stop it mid-shard).
 */
import { fileAssets, tfjsWasmBytes } from "./adapters/bun.ts";
import { initWasmBackend } from "./tfjs-wasm.ts";
import { loadNativeBmm } from "../native/load.ts";
import { Pc2Engine, loadPackage } from "../shared/retrieval/pc2-engine.ts";
import type { ModelInfo } from "../shared/retrieval/engine.ts";
import type { ShardOptions } from "../shared/model/inference.ts";
import type { WeightHolding } from "../shared/model/package.ts";

export type EngineVerb = "searchImages" | "searchCaptions" | "score" | "evaluate";

export type ToWorker = { type: "load"; modelDir: string; nets?: string[]; weights?: WeightHolding; regionCacheBytes?: number; shard: Partial<ShardOptions> } | { type: "call"; id: number; verb: EngineVerb; args: unknown[] };

export interface EngineShape {
  info: ModelInfo;
  imgDim: number;
  regions: number;
  vocabSize: number;
  maxTokens: number;
  digest: string;
}

export type FromWorker =
  | ({ type: "ready" } & EngineShape)
  | { type: "failed"; message: string }
  | { type: "result"; id: number; value: unknown }
  | { type: "error"; id: number; name: string; message: string };

declare const self: Worker;
let engine: Pc2Engine | null = null;
const post = (m: FromWorker) => self.postMessage(m);

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  if (m.type === "load") {
    try {
      await initWasmBackend({ bytes: await tfjsWasmBytes(), bmm: loadNativeBmm() });
      // A quick collection between batches keeps a 256-pair score's garbage from piling up
      // (pc2-engine.ts, betweenBatches): without it the worker grows by ~150 MB during one.
      const e = new Pc2Engine(await loadPackage(fileAssets(m.modelDir), m.modelDir, { nets: m.nets, weights: m.weights, transposes: "replace" }), { shard: m.shard, regionCacheBytes: m.regionCacheBytes, betweenBatches: () => Bun.gc(false) });
      engine = e;
      post({ type: "ready", info: e.info(), imgDim: e.imgDim, regions: e.regions, vocabSize: e.vocabSize, maxTokens: e.maxTokens, digest: e.pkg.json.digest });
    } catch (error) {
      post({ type: "failed", message: (error as Error).message });
    }
    return;
  }
  try {
    if (engine === null) throw new Error("engine-worker: a call before the model was loaded");
    const run = engine[m.verb] as (...args: unknown[]) => Promise<unknown>;
    post({ type: "result", id: m.id, value: await run.apply(engine, m.args) });
  } catch (error) {
    const e = error as Error;
    post({ type: "error", id: m.id, name: e.name, message: e.message });
  } finally {
    Bun.gc(false); // the call's read-backs, before the next call adds its own
  }
};
