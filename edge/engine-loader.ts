/**
 * The seam where a model directory's files become a RetrievalEngine: an exported PC2 model
 * (model.json, weight shards, vocabulary, gallery) served by Pc2Engine.
 */
export { MODEL_JSON as MODEL_MANIFEST } from "../shared/model/package";
export { loadPc2Engine as loadEngine } from "./pc2-engine.ts";
