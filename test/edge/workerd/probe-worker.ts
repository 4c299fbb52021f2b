/**
 * Test double Worker: the real Worker plumbing (edge/worker.ts: wasm module import, assets
 * binding, lazy engine) with a probe engine in place of the model. The probe reads a weight
 * matrix through the ASSETS binding and scores with a real tfjs matMul, and reports which tfjs
 * backend ran it, so a test can tell that tfjs-wasm works inside workerd.
 */
import * as tf from "@tensorflow/tfjs-core";
import { createWorker } from "../../../edge/worker.ts";
import type { EngineLoader, RetrievalEngine } from "../../../shared/retrieval/engine.ts";

/**
 * The asset the probe reads: `{ "weights": number[imgDim] }`. Not exported: workerd takes every
 * export of the entry module for a handler.
 */
const PROBE_ASSET = "probe/weights.json";

const probeLoader: EngineLoader = async (assets) => {
  const bytes = await assets.get(PROBE_ASSET);
  if (bytes === null) throw new Error(`probe: no ${PROBE_ASSET} in the assets`);
  const { weights } = JSON.parse(new TextDecoder().decode(bytes)) as { weights: number[] };
  const regions = 2;
  const imgDim = weights.length;
  const w = tf.tensor2d(weights, [imgDim, 1]);
  const unsupported = () => Promise.reject(new Error("probe engine: not supported"));
  const engine: RetrievalEngine = {
    imgDim,
    regions,
    vocabSize: 100,
    maxTokens: 16,
    info: () => ({
      config: { probe: true, backend: tf.getBackend() },
      dtype: "float32",
      sha256: "",
      nets: [],
      gallery: null,
    }),
    searchImages: unsupported,
    searchCaptions: unsupported,
    evaluate: unsupported,
    // score = sum over regions of features·weights, computed by tfjs (matMul on the backend).
    async score(pairs) {
      return Promise.all(
        pairs.map(async (p) => {
          const s = tf.tidy(() => tf.sum(tf.matMul(tf.tensor2d(p.features!, [regions, imgDim]), w)));
          const [value] = await s.data();
          s.dispose();
          return value!;
        }),
      );
    },
  };
  return engine;
};

export default createWorker(probeLoader);
