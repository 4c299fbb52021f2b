/**
 * Cloudflare Workers entry. Workers may not compile WebAssembly from bytes at run time, so the
 * tfjs binary is imported as a module (wrangler.toml's CompiledWasm rule) and handed to
 * `initWasmBackend`. The model comes from the static-assets binding (ASSETS) or, for files over
 * the 25 MiB asset limit, an R2 bucket (MODEL_BUCKET, keys under MODEL_PREFIX). The app and the
 * engine are made on the first request, once per isolate, and kept.
 *
 * Jieba (NoW models trained on its ids) is left out of this entry: its module adds 2.7 MB gzipped,
 * which would put the Worker over the free plan's 3 MB. edge/worker-jieba.ts is this Worker with
 * it; a jieba model served here answers text queries with a 501 that names that entry (token ids
 * still work).
 *
 * The browser page (/app) cannot be bundled here (no Bun.build in a Worker): `bun run
 * build:browser` writes its files into the assets directory under app/ before a deploy, and the
 * Worker serves them from ASSETS; without them /app answers 404.
 */
import type { ExecutionContext, Hono } from "hono";
import wasmModule from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm";
import bmmModule from "../native/bmm.wasm";
import { createApp, type EdgeAppOptions } from "./app.ts";
import { bucketAssets, workersAssets, type AssetSource, type AssetsBinding, type BucketBinding } from "../shared/retrieval/assets.ts";
import { BROWSER_ASSETS_PREFIX } from "./browser/files.ts";
import type { EngineLoader } from "../shared/retrieval/engine.ts";
import { loadPc2Engine } from "../shared/retrieval/pc2-engine.ts";
import { WEIGHT_HOLDINGS, type WeightHolding } from "../shared/model/package.ts";
import { WORKER_REGION_CACHE_BYTES } from "../shared/retrieval/region-store.ts";
import { WORKER_SHARD_BYTES } from "../shared/model/inference.ts";
import { configureJieba, type JiebaSource } from "../shared/text/jieba.ts";
import { initWasmBackend } from "./tfjs-wasm.ts";
import { WORKER_WITHOUT_JIEBA } from "./worker-text.ts";

export interface WorkerEnv {
  ASSETS?: AssetsBinding;
  MODEL_BUCKET?: BucketBinding;
  MODEL_PREFIX?: string;
  /** The package's nets to serve, comma-separated (default all): "A" serves net A alone, in half the memory. */
  MODEL_NETS?: string;
  /**
   * How the nets' encoder matrices are held: "int8" (the default here) keeps a uint8 export's at a
   * byte per value, multiplied by native/bmm.wasm, so that a paper-size net fits the isolate's
   * 128 MB; "float32" decodes them for tfjs (faster, about 4× the memory with tfjs's packed copies).
   */
  MODEL_WEIGHTS?: string;
}

/** The Worker's weight holding: MODEL_WEIGHTS, int8 by default; anything else is a configuration error. */
export function workerWeights(env: WorkerEnv): WeightHolding {
  const w = env.MODEL_WEIGHTS?.trim() || "int8";
  if (!(WEIGHT_HOLDINGS as readonly string[]).includes(w)) throw new Error(`MODEL_WEIGHTS is ${JSON.stringify(env.MODEL_WEIGHTS)}; it must be one of ${WEIGHT_HOLDINGS.join(", ")}`);
  return w as WeightHolding;
}

/** Where this deployment's model files are: the bucket when bound, else the assets. */
export function modelAssets(env: WorkerEnv): AssetSource {
  if (env.MODEL_BUCKET) return bucketAssets(env.MODEL_BUCKET, env.MODEL_PREFIX ?? "");
  if (env.ASSETS) return workersAssets(env.ASSETS, env.MODEL_PREFIX ?? "");
  throw new Error("the Worker has neither an ASSETS nor a MODEL_BUCKET binding (wrangler.toml)");
}

/** A Worker serving the edge app with the engine that `loader` makes from the model files. */
export function createWorker(loader: EngineLoader, limits?: EdgeAppOptions["limits"], jieba?: JiebaSource) {
  configureJieba(jieba ?? WORKER_WITHOUT_JIEBA);
  let app: Hono | null = null;
  return {
    fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Response | Promise<Response> {
      const hasModel = env.MODEL_BUCKET !== undefined || env.ASSETS !== undefined;
      app ??= createApp({
        limits,
        modelAssets: hasModel ? modelAssets(env) : undefined,
        browserAssets: env.ASSETS ? workersAssets(env.ASSETS, BROWSER_ASSETS_PREFIX) : undefined,
        loadEngine: async () => {
          await initWasmBackend({ module: wasmModule, bmm: bmmModule });
          return loader(modelAssets(env), {
            nets: env.MODEL_NETS ? env.MODEL_NETS.split(",").map((n) => n.trim()) : undefined,
            weights: workerWeights(env),
            regionCacheBytes: WORKER_REGION_CACHE_BYTES,
            shardBytes: WORKER_SHARD_BYTES,
          });
        },
      });
      return app.fetch(request, env, ctx);
    },
  };
}

export default createWorker(loadPc2Engine);
