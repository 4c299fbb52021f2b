/**
 * TEMPORARY engine loader: the seam where the model's files become a RetrievalEngine. The real
 * loader (SGRAF nets on tfjs, gallery features) replaces this file; until then it checks that
 * the model directory has its manifest and then says plainly that no engine exists yet.
 */
import type { EngineLoader } from "./engine.ts";

/** The file every model directory has; the real loader defines its contents. */
export const MODEL_MANIFEST = "model.json";

export const loadEngine: EngineLoader = async (assets) => {
  const manifest = await assets.get(MODEL_MANIFEST);
  if (manifest === null) throw new Error(`the model has no ${MODEL_MANIFEST}; is this a model directory?`);
  throw new Error("no retrieval engine is implemented yet (edge/engine-loader.ts is a placeholder)");
};
