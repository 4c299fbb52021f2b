/**
 * edge/worker.ts with Jieba, for NoW models trained on `*_caps_jieba.txt`: the jieba-rs module
 * imported precompiled (Workers compile no WebAssembly at run time), instantiated on the first
 * text query only; its dictionary then takes ~60 MB of the isolate's 128 MB. The bundle is
 * ~3.1 MB gzipped (the free plan allows 3 MB, the paid one 10 MB). Set `main` in wrangler.toml to
 * this file to deploy it.
 */
// A relative path: jieba-wasm's package exports do not list its .wasm.
import jiebaModule from "../node_modules/jieba-wasm/pkg/web/jieba_rs_wasm_bg.wasm";
import { loadPc2Engine } from "../shared/retrieval/pc2-engine.ts";
import { createWorker } from "./worker.ts";

export default createWorker(loadPc2Engine, undefined, { module: jiebaModule });
