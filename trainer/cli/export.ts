/**
 * `bun run export --model_path <checkpoint | official .safetensors | model dir> --out <dir>
 *  [--dtype uint8|uint16|float16|float32] [--gallery <split> --data_path --data_name --vocab_path --tokenizer]
 *  [--tokenizer_json <file>]`
 * writes the edge's model directory. Without data flags the vocabulary (and a gallery split) come
 * from the model's training run when it records one, else from the embedded synthetic dataset.
 */
import { resolve } from "node:path";
import { FormatError } from "../../shared/formats/ndarray";
import { CliError, choiceFlag, parseFlags, runCli } from "../../shared/cli";
import { EXPORT_DTYPES } from "../../shared/model/package";
import { BACKENDS, BackendUnavailableError, initBackend } from "../backend";
import { DatasetError, loadSplit, loadVocabulary, type Split } from "../data/datasets";
import { ensureSynthetic } from "../data/synthetic";
import { exportModel, textExportInput } from "../export";
import { packagedText } from "../text";
import { OutputWriteError } from "../files";
import { loadModel } from "../models";

export const EXPORT_HELP = `Usage: bun run export --model_path <path> --out <dir> [flags]

  --model_path <path>   our checkpoint, an exported model directory, or a safetensors file with the
                        official PyTorch names (one net, or both prefixed model_A./model_B.)
  --out <dir>           the model directory to write (replaced atomically)
  --dtype <type>        ${EXPORT_DTYPES.join(" | ")} (default uint8; tensors under 4096 values stay float32)
  --gallery <split>     also pack the encodings of this split (test, testall, dev, train) for the edge
  --data_path, --data_name, --vocab_path, --tokenizer
                        the dataset of the vocabulary and the gallery (default: the model's training
                        run, else the embedded synthetic dataset)
  --stage1_images <n>   fit the distilled first stage of two-stage search to the nets' own scores
                        over n training images of the data (default 256; 0: none, the first stage
                        is then SGRAF's pooled vectors, which keep far less of the full ranking)
  --tokenizer_json <f>  NoW bpe or bert: the Hugging Face tokenizer.json that made the captions'
                        ids, packaged so that the model takes text (bpe without it: token ids only;
                        bert without it: WordPiece over the NoW vocabulary; jieba needs none);
                        default: the training run's, when the data come from the run
  --backend <name>      ${BACKENDS.join(" | ")} (default auto)`;

export function main(argv: string[]): Promise<number> {
  return runCli("export", EXPORT_HELP, () => exportCommand(argv));
}

async function exportCommand(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    model_path: { type: "string" },
    out: { type: "string" },
    dtype: { type: "string", default: "uint8" },
    gallery: { type: "string" },
    data_path: { type: "string" },
    data_name: { type: "string" },
    vocab_path: { type: "string" },
    tokenizer: { type: "string" },
    tokenizer_json: { type: "string" },
    stage1_images: { type: "string", default: "256" },
    backend: { type: "string", default: "auto" },
  });
  if (values === null) {
    console.log(EXPORT_HELP);
    return 0;
  }
  if (!values.model_path || !values.out) throw new CliError("--model_path and --out are required");
  const dtype = choiceFlag("dtype", values.dtype, EXPORT_DTYPES);
  const backend = choiceFlag("backend", values.backend, BACKENDS);
  const headImages = Number(values.stage1_images);
  if (!Number.isInteger(headImages) || headImages < 0) throw new CliError(`--stage1_images must be a whole number >= 0, got ${values.stage1_images}`);
  try {
    await initBackend(backend);
    const model = await loadModel(String(values.model_path));
    const run = model.runConfig ?? {};
    const explicit = values.data_path ?? values.data_name ?? values.vocab_path;
    let data = {
      data_path: String(values.data_path ?? run.data_path ?? ""),
      data_name: String(values.data_name ?? run.data_name ?? "f30k_precomp"),
      vocab_path: String(values.vocab_path ?? run.vocab_path ?? ""),
      tokenizer: String(values.tokenizer ?? run.tokenizer ?? "bpe"),
    };
    if (!explicit && !run.data_path) {
      const ds = ensureSynthetic(resolve(".cache"), { imgDim: model.config.img_dim });
      data = { data_path: ds.dataPath, data_name: ds.dataName, vocab_path: ds.vocabPath, tokenizer: "bpe" };
      console.log(`no data flags: vocabulary${values.gallery ? " and gallery" : ""} from the embedded synthetic dataset`);
    }
    const { vocab, vocabSize } = loadVocabulary({ vocabPath: data.vocab_path, dataName: data.data_name, tokenizer: data.tokenizer });
    if (vocabSize !== model.config.vocab_size) throw new FormatError(String(values.model_path), `the model's vocabulary has ${model.config.vocab_size} words, ${data.vocab_path} has ${vocabSize}`);
    // The run's --tokenizer_json goes with the run's data, as the other data flags do.
    const tokenizerJson = values.tokenizer_json ?? (explicit ? undefined : run.tokenizer_json);
    const text = packagedText({ dataName: data.data_name, tokenizer: data.tokenizer, vocab, tokenizerJson: tokenizerJson ? String(tokenizerJson) : undefined });
    const load = (split: Split) => loadSplit({ dataPath: data.data_path, dataName: data.data_name, split, vocab, vocabSize, tokenizer: data.tokenizer, imgDim: model.config.img_dim });
    const gallery = values.gallery ? load(values.gallery as Split) : null;
    let headFrom = null;
    if (headImages > 0) {
      try {
        headFrom = load("train");
      } catch (e) {
        if (!(e instanceof DatasetError)) throw e;
        console.log(`no training split to fit the first stage's head on (${e.message}): the first stage is tranglo`);
      }
    }
    const r = await exportModel(String(values.out), {
      config: model.config,
      nets: model.nets,
      names: model.names,
      dtype,
      ...(await textExportInput(text)),
      gallery,
      headFrom,
      headImages,
      log: (line) => console.log(line),
      runConfig: { ...run, ...data },
    });
    console.log(`exported ${model.kind} ${model.source} (nets ${model.names.join("+")}) as ${values.dtype} to ${r.dir}: ${r.files} files, ${(r.bytes / 1e6).toFixed(2)} MB${gallery ? `, gallery ${gallery.split} (${gallery.length} captions)` : ""}; manifest digest ${r.digest}`);
    console.log(text.vocab ? `text: ${text.textTokenizer!.spec.kind} tokenizer (${text.textTokenizer!.spec.version})` : `text: token ids only (${text.idsNote})`);
    return 0;
  } catch (e) {
    if (e instanceof FormatError || e instanceof BackendUnavailableError || e instanceof OutputWriteError) throw new CliError(e.message, false);
    throw e;
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
