/**
 * Export of trained nets as the edge's model directory (shared/model/package.ts), optionally with
 * a gallery: the image-side and caption-side encodings of a dataset split, so that the edge never
 * needs the dataset loader.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { VocabFile } from "../shared/formats/vocab";
import type { SgrafConfig } from "../shared/model/config";
import { type ExportDtype, type Gallery, MODEL_JSON, type PackagedTokenizer, encodeModelPackage } from "../shared/model/package";
import { ParamStore } from "../shared/model/params";
import { readCheckpointFile } from "./checkpoint";
import { outputError, temporaryName } from "./files";
import { type CaptionSplit, loadVocabulary } from "./data/datasets";
import { type EncodedSplit, encodeSplit } from "./evaluate";
import type { StageOneHead } from "../shared/model/stage-one";
import { fitStageOneHead, HEAD_FIT_DEFAULTS, type HeadFit } from "./stage-one-head";
import { type PackagedText, packagedText, packagedTextTokenizer } from "./text";
import { type Data, OUTPUT_FILES, type Run } from "./train";

export interface ExportInput {
  config: SgrafConfig;
  nets: ParamStore[];
  names: string[];
  dtype: ExportDtype;
  vocab: VocabFile | null;
  /** The tokenizer packaged with the vocabulary (NLTK when absent). */
  textTokenizer?: PackagedTokenizer;
  /** NoW's `--tokenizer`. */
  tokenizer?: string;
  /** Why a model without a vocabulary takes token ids only. */
  idsNote?: string;
  /** A caption's text from its words (default: joined by spaces, as NLTK's words are). */
  detokenize?: (words: string[]) => string;
  gallery?: CaptionSplit | null;
  /**
   * The training split on whose first-stage sample (`headImages` images, default 256; 0: none) the
   * distilled first stage's head is fitted (trainer/stage-one-head.ts); without it the package's
   * first stage is tranglo.
   */
  headFrom?: CaptionSplit | null;
  headImages?: number;
  /** Seed of the head's sample and initialisation. */
  seed?: number;
  /** Told what the export does that takes a while (the head's fit). */
  log?: (line: string) => void;
  runConfig?: Record<string, unknown>;
  batchSize?: number;
  /** Awaited after every encoded batch of the gallery (see EvalOptions.pause). */
  pause?: () => Promise<void>;
}

/** Encodes a split with every net, with the caption texts (detokenized) and token ids. */
export async function buildGallery(
  nets: ParamStore[],
  split: CaptionSplit,
  vocab: VocabFile | null,
  options: { batchSize?: number; pause?: () => Promise<void>; detokenize?: (words: string[]) => string } = {},
): Promise<Gallery> {
  const detokenize = options.detokenize ?? ((words: string[]) => words.join(" "));
  const enc: EncodedSplit[] = [];
  for (const p of nets) enc.push(await encodeSplit(p, split, { batchSize: options.batchSize ?? 128, pause: options.pause }));
  const tokens = split.captions.slice(0, split.length).map((c) => Array.from(c));
  const texts = tokens.map((t) => (vocab ? detokenize(t.slice(1, -1).map((id) => vocab.idx2word[String(id)] ?? "<unk>")) : null));
  return { split: split.split, perCaptions: split.perCaptions, images: enc.map((e) => e.images), captions: enc.map((e) => e.captions), texts, tokens };
}

/** Writes the model directory `out` (atomically: a temporary directory renamed into place). */
export async function exportModel(out: string, input: ExportInput): Promise<{ dir: string; files: number; bytes: number; digest: string }> {
  const gallery = input.gallery ? await buildGallery(input.nets, input.gallery, input.vocab, input) : null;
  const headImages = input.headImages ?? HEAD_FIT_DEFAULTS.images;
  let stageOneHead: { head: StageOneHead; fit: HeadFit } | null = null;
  if (gallery && input.headFrom && headImages > 0) {
    const t0 = performance.now();
    const { head, fit: f } = await fitStageOneHead(input.nets, input.headFrom, { images: headImages, seed: input.seed ?? 0, batchSize: input.batchSize ?? HEAD_FIT_DEFAULTS.batchSize, pause: input.pause });
    const losses = f.nets.map((r, n) => `${input.names[n]} ${r.initialHeldOutLoss.toFixed(2)} → ${r.heldOutLoss.toFixed(2)}${r.learned ? "" : " not learned: left out"}`).join(", ");
    const where = `${f.images} ${input.headFrom.split} images and ${f.captions} captions in ${((performance.now() - t0) / 1000).toFixed(1)} s (held-out loss ${losses})`;
    if (head) {
      stageOneHead = { head, fit: f };
      input.log?.(`first stage: head fitted to the nets' scores over ${where}`);
    } else {
      input.log?.(`first stage: no net's scores could be distilled over ${where}; two-stage search falls back to tranglo, which keeps far less of the full ranking`);
    }
  }
  const files = await encodeModelPackage({
    config: input.config,
    netNames: input.names,
    nets: input.nets,
    dtype: input.dtype,
    vocab: input.vocab,
    textTokenizer: input.textTokenizer,
    tokenizer: input.tokenizer,
    idsNote: input.idsNote,
    gallery,
    runConfig: input.runConfig,
    stageOneHead,
  });
  const dir = resolve(out);
  const tmp = temporaryName(dir);
  let bytes = 0;
  try {
    mkdirSync(dirname(dir), { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    for (const [name, data] of files) {
      writeFileSync(join(tmp, name), data);
      bytes += data.length;
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw outputError(dir, e);
  }
  const { digest } = JSON.parse(new TextDecoder().decode(files.get(MODEL_JSON)!)) as { digest: string };
  return { dir, files: files.size, bytes, digest };
}

/**
 * The export at the end of training: the best-validation nets (the final ones when no co-training
 * epoch was ever best, which `log` says), uint8, the test split as gallery. A best checkpoint that
 * exists but cannot be read is an error: exporting other nets in its place would hand the user a
 * model they did not select.
 */
export async function exportRun(run: Run, data: Data, outputDir: string, log: (line: string) => void, pause?: () => Promise<void>): Promise<string> {
  const best = join(outputDir, OUTPUT_FILES.best);
  let nets = [run.nets.A.params, run.nets.B.params];
  let owned = false;
  if (existsSync(best)) {
    const { state, arrays } = readCheckpointFile(best);
    nets = ["A", "B"].map((k) => ParamStore.fromArrays(state.model, arrays, best, `model_${k}.`));
    owned = true;
  } else {
    log(`no ${OUTPUT_FILES.best} (no co-training epoch was a best validation): exporting the final nets`);
  }
  try {
    const { vocab } = loadVocabulary({ vocabPath: run.config.vocab_path, dataName: run.config.data_name, tokenizer: run.config.tokenizer });
    // A run from a checkpoint written before --tokenizer_json existed has no such key.
    const text = packagedText({ dataName: data.dataName, tokenizer: run.config.tokenizer, vocab, tokenizerJson: run.config.tokenizer_json || undefined });
    const r = await exportModel(join(outputDir, OUTPUT_FILES.model), {
      config: run.model,
      nets,
      names: ["A", "B"],
      dtype: "uint8",
      ...(await textExportInput(text)),
      gallery: data.test,
      headFrom: data.train,
      // A run checkpointed before --stage1_images existed has no such key.
      headImages: run.config.stage1_images ?? HEAD_FIT_DEFAULTS.images,
      seed: run.config.seed,
      log,
      runConfig: run.config as unknown as Record<string, unknown>,
      batchSize: run.config.batch_size,
      pause,
    });
    return r.dir;
  } finally {
    if (owned) for (const p of nets) p.dispose();
  }
}

/** The ExportInput fields of a packaged text side. */
export async function textExportInput(text: PackagedText): Promise<Pick<ExportInput, "vocab" | "textTokenizer" | "tokenizer" | "idsNote" | "detokenize">> {
  const tokenizer = await packagedTextTokenizer(text);
  return {
    vocab: text.vocab ? text.vocab.toJSON() : null,
    textTokenizer: text.textTokenizer,
    tokenizer: text.tokenizer,
    idsNote: text.idsNote,
    detokenize: tokenizer ? (words) => tokenizer.detokenize(words) : undefined,
  };
}
