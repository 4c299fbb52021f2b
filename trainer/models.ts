/**
 * Loads the nets to evaluate or export from any of the three things a user may hold:
 * - a checkpoint of this trainer (`*.safetensors` with `format: pc2-tfjs-checkpoint`);
 * - an exported model directory (`model.json` + weight shards, see shared/model/package.ts);
 * - a safetensors file with the official PyTorch names: one net (`img_enc.fc.weight`, …) or both
 *   nets prefixed `model_A.` / `model_B.` as the official checkpoint's entries hold them — for
 *   these the architecture is read from the tensor names and shapes.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FormatError, type NdArray } from "../shared/formats/ndarray";
import { readSafetensors } from "../shared/formats/safetensors";
import type { SgrafConfig } from "../shared/model/config";
import { type ModelPackage, decodeModelPackage, MODEL_JSON } from "../shared/model/package";
import { ParamStore, inferConfig } from "../shared/model/params";
import { CHECKPOINT_FORMAT, readCheckpointFile } from "./checkpoint";

export interface LoadedModel {
  kind: "checkpoint" | "official" | "export";
  source: string;
  config: SgrafConfig;
  nets: ParamStore[];
  /** Net names in order ("A", "B", or "net" for a single official net). */
  names: string[];
  /** The training run's configuration when the file carries it (data flags default to it). */
  runConfig?: Record<string, unknown>;
  /** The exported package (gallery, vocabulary) for exported model directories. */
  pkg?: ModelPackage;
}

/** Reads the files of an exported model directory through the file system. */
export function readModelDir(dir: string): Promise<ModelPackage> {
  const read = (name: string) => {
    const p = join(dir, name);
    if (!existsSync(p)) throw new FormatError(p, "missing file of the exported model");
    return new Uint8Array(readFileSync(p));
  };
  return decodeModelPackage(read(MODEL_JSON), read, dir);
}

export async function loadModel(path: string): Promise<LoadedModel> {
  if (!existsSync(path)) throw new FormatError(path, "no such file or directory");
  if (statSync(path).isDirectory()) {
    const pkg = await readModelDir(path);
    return { kind: "export", source: path, config: pkg.config, nets: pkg.nets, names: pkg.netNames, runConfig: pkg.runConfig, pkg };
  }
  const bytes = new Uint8Array(readFileSync(path));
  const { tensors, metadata } = readSafetensors(bytes, path);
  if (metadata.format === CHECKPOINT_FORMAT) {
    const { state, arrays } = readCheckpointFile(path);
    const nets = ["A", "B"].map((k) => ParamStore.fromArrays(state.model, arrays, path, `model_${k}.`));
    return { kind: "checkpoint", source: path, config: state.model, nets, names: ["A", "B"], runConfig: state.config };
  }
  return loadOfficial(tensors, path);
}

function loadOfficial(tensors: Map<string, NdArray>, path: string): LoadedModel {
  const shapes = new Map([...tensors].map(([k, v]) => [k, v.shape] as const));
  const prefixed = [...tensors.keys()].some((k) => k.startsWith("model_A.")) && [...tensors.keys()].some((k) => k.startsWith("model_B."));
  const prefixes = prefixed ? ["model_A.", "model_B."] : [""];
  const config = inferConfig(shapes, path, prefixes[0]);
  if (prefixed) {
    const other = inferConfig(shapes, path, prefixes[1]);
    const diff = (Object.keys(config) as (keyof SgrafConfig)[]).filter((k) => config[k] !== other[k]);
    if (diff.length) throw new FormatError(path, `model_A and model_B differ in ${diff.join(", ")}`);
  }
  const nets = prefixes.map((p) => ParamStore.fromArrays(config, tensors, path, p));
  return { kind: "official", source: path, config, nets, names: prefixed ? ["A", "B"] : ["net"] };
}
