/**
 * `bun run eval --model_path X [--data_path --data_name --vocab_path --tokenizer --split test|testall
 * --fold5 --json --backend --batch_size]`: the official evalrank. Two nets are ensembled
 * (similarities averaged) when the model holds both. Data flags default to the ones the model was
 * trained with when it records them (as the official evaluation.py), else to run.py's defaults.
 * `--quick`: the CI recall check (see trainer/quick-eval.ts).
 */
import { BackendUnavailableError, type BackendChoice, BACKENDS, describeBackend, initBackend } from "../backend";
import { FormatError } from "../../shared/formats/ndarray";
import { FLAGS } from "../config";
import { parseCli } from "./args";
import { canonicalDataName, loadSplit, loadVocabulary, testSplitFor, type Split } from "../data/datasets";
import { evaluateSplit, formatMetricLines } from "../evaluate";
import { loadModel } from "../models";
import { runQuickEval } from "../quick-eval";

export const EVAL_HELP = `Usage: bun run eval --model_path <checkpoint | model dir | official .safetensors> [flags]

  --model_path <path>   our checkpoint, an exported model directory, or a safetensors file with the
                        official PyTorch names (one net, or both prefixed model_A./model_B.)
  --data_path <dir>     default: the model's training run, else ${FLAGS.data_path.default}
  --data_name <name>    default: the model's training run, else ${FLAGS.data_name.default}
  --vocab_path <dir>    default: the model's training run, else ${FLAGS.vocab_path.default}
  --tokenizer <name>    NoW token-id files: bpe|bert|jieba (default: the run's, else bpe)
  --split <name>        test | testall | dev (default: test; testall for coco_precomp)
  --fold5               MS-COCO: mean over five 1K-image folds of testall
  --batch_size <n>      encoding batch (default 128)
  --backend <name>      ${BACKENDS.join(" | ")} (default auto)
  --json                print {"i2t": {...}, "t2i": {...}, "rsum": n} instead of the metric lines
  --quick               the CI quick eval: export a small model, evaluate it through the edge's path
                        on the embedded dataset's test split, fail below the rsum floor`;

export async function main(argv: string[]): Promise<number> {
  const values = parseCli(
    argv,
    {
      model_path: { type: "string" },
      data_path: { type: "string" },
      data_name: { type: "string" },
      vocab_path: { type: "string" },
      tokenizer: { type: "string" },
      split: { type: "string" },
      fold5: { type: "boolean" },
      json: { type: "boolean" },
      quick: { type: "boolean" },
      batch_size: { type: "string", default: "128" },
      gpu: { type: "string" },
    },
    EVAL_HELP,
  );
  if (typeof values === "number") return values;
  const backendName = String(values.backend);
  if (values.quick) return runQuickEval({ json: Boolean(values.json) });
  if (!values.model_path) {
    console.error(`error: --model_path is required\n\n${EVAL_HELP}`);
    return 2;
  }
  const batchSize = Number(values.batch_size);
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    console.error(`error: --batch_size: invalid positive int '${values.batch_size}'`);
    return 2;
  }
  try {
    const backend = await initBackend(backendName as BackendChoice);
    if (!values.json) console.log(describeBackend(backend));
    const model = await loadModel(String(values.model_path));
    const run = model.runConfig ?? {};
    const pick = (k: "data_path" | "data_name" | "vocab_path" | "tokenizer") => String(values[k] ?? run[k] ?? FLAGS[k].default);
    const dataName = canonicalDataName(pick("data_name"));
    const split = (values.split ?? testSplitFor(dataName)) as Split;
    if (!["test", "testall", "dev"].includes(split)) {
      console.error(`error: --split: invalid choice '${split}' (choose from test, testall, dev)`);
      return 2;
    }
    if (model.config.vocab_size === undefined) throw new Error("model lacks vocab_size");
    const { vocab, vocabSize } = loadVocabulary({ vocabPath: pick("vocab_path"), dataName: pick("data_name"), tokenizer: pick("tokenizer") });
    if (vocabSize !== model.config.vocab_size) {
      throw new FormatError(String(values.model_path), `the model's vocabulary has ${model.config.vocab_size} words, ${pick("vocab_path")} has ${vocabSize}`);
    }
    const data = loadSplit({ dataPath: pick("data_path"), dataName: pick("data_name"), split, vocab, vocabSize, tokenizer: pick("tokenizer"), imgDim: model.config.img_dim });
    if (!values.json) console.log(`${model.kind} ${model.source}: nets ${model.names.join("+")}; ${data.dataName} ${split}: ${Math.floor(data.length / data.imDiv)} images, ${data.length} captions`);
    const r = evaluateSplit(model.nets, data, { batchSize, fold5: Boolean(values.fold5) });
    if (values.json) console.log(JSON.stringify({ i2t: r.i2t, t2i: r.t2i, rsum: r.rsum }));
    else {
      if (r.folds) r.folds.forEach((f, i) => console.log(`fold ${i}: rsum ${f.rsum.toFixed(1)}`));
      for (const line of formatMetricLines(r)) console.log(line);
    }
    return 0;
  } catch (e) {
    if (e instanceof FormatError || e instanceof BackendUnavailableError) {
      console.error(`error: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
