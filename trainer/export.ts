/**
 * Export of trained nets as the edge's model directory (shared/model/package.ts), optionally with
 * a gallery: the image-side and caption-side encodings of a dataset split, so that the edge never
 * needs the dataset loader.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { VocabFile } from "../shared/formats/vocab";
import type { SgrafConfig } from "../shared/model/config";
import { type ExportDtype, type Gallery, encodeModelPackage } from "../shared/model/package";
import type { ParamStore } from "../shared/model/params";
import type { CaptionSplit } from "./data/datasets";
import { encodeSplit } from "./evaluate";
import type { Data, Run } from "./train";

export interface ExportInput {
  config: SgrafConfig;
  nets: ParamStore[];
  names: string[];
  dtype: ExportDtype;
  vocab: VocabFile | null;
  tokenizer?: string;
  gallery?: CaptionSplit | null;
  runConfig?: Record<string, unknown>;
  batchSize?: number;
}

/** Encodes a split with every net, with the caption texts (detokenized) and token ids. */
export function buildGallery(nets: ParamStore[], split: CaptionSplit, vocab: VocabFile | null, batchSize = 128): Gallery {
  const enc = nets.map((p) => encodeSplit(p, split, { batchSize }));
  const tokens = split.captions.slice(0, split.length).map((c) => Array.from(c));
  const texts = tokens.map((t) => (vocab ? t.slice(1, -1).map((id) => vocab.idx2word[String(id)] ?? "<unk>").join(" ") : null));
  return { split: split.split, perCaptions: split.perCaptions, images: enc.map((e) => e.images), captions: enc.map((e) => e.captions), texts, tokens };
}

/** Writes the model directory `out` (atomically: a temporary directory renamed into place). */
export async function exportModel(out: string, input: ExportInput): Promise<{ dir: string; files: number; bytes: number }> {
  const gallery = input.gallery ? buildGallery(input.nets, input.gallery, input.vocab, input.batchSize) : null;
  const files = await encodeModelPackage({
    config: input.config,
    netNames: input.names,
    nets: input.nets,
    dtype: input.dtype,
    vocab: input.vocab,
    tokenizer: input.tokenizer,
    gallery,
    runConfig: input.runConfig,
  });
  const dir = resolve(out);
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  let bytes = 0;
  for (const [name, data] of files) {
    writeFileSync(join(tmp, name), data);
    bytes += data.length;
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return { dir, files: files.size, bytes };
}

/** The export at the end of training: best-validation nets, uint8, the test split as gallery. */
export async function exportRun(run: Run, data: Data, outputDir: string): Promise<string | null> {
  const { readCheckpointFile } = await import("./checkpoint");
  const { ParamStore } = await import("../shared/model/params");
  const best = join(outputDir, "checkpoint_best_validation.safetensors");
  let nets = [run.nets.A.params, run.nets.B.params];
  let owned = false;
  try {
    const { state, arrays } = readCheckpointFile(best);
    nets = ["A", "B"].map((k) => ParamStore.fromArrays(state.model, arrays, best, `model_${k}.`));
    owned = true;
  } catch {
    // No best checkpoint (no co-training epoch improved): export the final nets.
  }
  const { vocab } = await import("./data/datasets").then((m) => m.loadVocabulary({ vocabPath: run.config.vocab_path, dataName: run.config.data_name, tokenizer: run.config.tokenizer }));
  const isNow = data.dataName === "now100k_precomp";
  const r = await exportModel(join(outputDir, "model"), {
    config: run.model,
    nets,
    names: ["A", "B"],
    dtype: "uint8",
    vocab: isNow ? null : vocab.toJSON(),
    tokenizer: run.config.tokenizer,
    gallery: data.test,
    runConfig: run.config as unknown as Record<string, unknown>,
    batchSize: run.config.batch_size,
  });
  if (owned) for (const p of nets) p.dispose();
  return r.dir;
}
