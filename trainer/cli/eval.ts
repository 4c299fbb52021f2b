/**
 * `bun run eval --model_path X [--data_path --data_name --vocab_path --tokenizer --split test|testall
 * --fold5 --json --backend --batch_size]`: the official evalrank. Two nets are ensembled
 * (similarities averaged) when the model holds both. Data flags default to the ones the model was
 * trained with when it records them (as the official evaluation.py), else to run.py's defaults.
 * `--quick`: the CI recall check (see trainer/quick-eval.ts).
 */
import { CliError, choiceFlag, intFlag, parseFlags, runCli } from "../../shared/cli";
import { EvalPool, poolSize } from "../eval-pool";
import { BACKENDS, BackendUnavailableError, describeBackend, initBackend } from "../backend";
import { FormatError } from "../../shared/formats/ndarray";
import { FLAGS } from "../config";
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
  --eval_workers <n>    worker threads (0 = one per core, 1 = none; default 0)
  --backend <name>      ${BACKENDS.join(" | ")} (default auto)
  --json                print {"i2t": {...}, "t2i": {...}, "rsum": n} instead of the metric lines
  --quick               the CI quick eval: the committed model (assets/quick-model) scored through the
                        retrieval engine's evaluation path on the embedded dataset's test split;
                        exit 1 below the rsum floor`;

export function main(argv: string[]): Promise<number> {
  return runCli("eval", EVAL_HELP, () => evaluate(argv));
}

async function evaluate(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
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
    eval_workers: { type: "string", default: "0" },
    backend: { type: "string", default: "auto" },
    gpu: { type: "string" },
  });
  if (values === null) {
    console.log(EVAL_HELP);
    return 0;
  }
  const backendChoice = choiceFlag("backend", values.backend, BACKENDS);
  if (values.quick) return runQuickEval({ json: Boolean(values.json) });
  if (!values.model_path) throw new CliError("--model_path is required");
  const batchSize = intFlag("batch_size", values.batch_size, 1);
  const workers = poolSize(intFlag("eval_workers", values.eval_workers, 0));
  try {
    const backend = await initBackend(backendChoice);
    if (!values.json) console.log(describeBackend(backend));
    const model = await loadModel(String(values.model_path));
    const run = model.runConfig ?? {};
    const pick = (k: "data_path" | "data_name" | "vocab_path" | "tokenizer") => String(values[k] ?? run[k] ?? FLAGS[k].default);
    const dataName = canonicalDataName(pick("data_name"));
    const split = choiceFlag("split", values.split ?? testSplitFor(dataName), ["test", "testall", "dev"] as const satisfies readonly Split[]);
    if (model.config.vocab_size === undefined) throw new Error("model lacks vocab_size");
    const { vocab, vocabSize } = loadVocabulary({ vocabPath: pick("vocab_path"), dataName: pick("data_name"), tokenizer: pick("tokenizer") });
    if (vocabSize !== model.config.vocab_size) {
      throw new FormatError(String(values.model_path), `the model's vocabulary has ${model.config.vocab_size} words, ${pick("vocab_path")} has ${vocabSize}`);
    }
    const data = loadSplit({ dataPath: pick("data_path"), dataName: pick("data_name"), split, vocab, vocabSize, tokenizer: pick("tokenizer"), imgDim: model.config.img_dim });
    if (!values.json) console.log(`${model.kind} ${model.source}: nets ${model.names.join("+")}; ${data.dataName} ${split}: ${Math.floor(data.length / data.imDiv)} images, ${data.length} captions`);
    const pool = workers > 1 && (backend.name === "wasm" || backend.name === "cpu") ? await EvalPool.start(workers, backend.name) : null;
    let r;
    try {
      r = await evaluateSplit(model.nets, data, { batchSize, fold5: Boolean(values.fold5), pool });
    } finally {
      pool?.terminate();
    }
    if (values.json) console.log(JSON.stringify({ i2t: r.i2t, t2i: r.t2i, rsum: r.rsum }));
    else {
      if (r.folds) r.folds.forEach((f, i) => console.log(`fold ${i}: rsum ${f.rsum.toFixed(1)}`));
      for (const line of formatMetricLines(r)) console.log(line);
    }
    return 0;
  } catch (e) {
    if (e instanceof FormatError || e instanceof BackendUnavailableError) throw new CliError(e.message, false);
    throw e;
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
