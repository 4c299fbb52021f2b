/**
 * The command line of `bun run train`: the official `run.py` flags, declared once with their
 * types, defaults and help (so `--help` is generated from the same table), plus `--backend`.
 */
import { CliError } from "../shared/cli";
import { parseArgs } from "node:util";
import { MODULE_NAMES } from "../shared/model/config";
import { SOFT_MARGINS } from "../shared/model/losses";
import { WARMUP_TYPES } from "../shared/model/steps";
import { BACKENDS } from "./backend";
import { DATA_NAMES, NOW_FOLDER_ALIAS, NOW_TOKENIZERS } from "./data/datasets";
import { tokenizerJsonMismatch } from "./text";

/** `--recovery`, `--select`, `--po_bank_index`: see their help. */
export const RECOVERIES = ["restore", "off"] as const;
export const SELECTIONS = ["official", "all"] as const;
export const PARALLEL_MODES = ["off", "on"] as const;
export const PO_BANK_INDEXES = ["dataset", "subset"] as const;

type FlagType = "string" | "int" | "float" | "store_true" | "store_false";

interface Flag {
  type: FlagType;
  default: string | number | boolean | null;
  help: string;
  choices?: readonly string[];
  group: "data" | "training" | "model" | "noise" | "pc2" | "beyond" | "run" | "distributed";
}

/** Every flag, in the order and with the defaults of the official run.py. */
export const FLAGS = {
  data_path: { type: "string", default: "data/", help: "Path to datasets.", group: "data" },
  data_name: { type: "string", default: "f30k_precomp", help: "{coco,f30k,cc152k,now100k}_precomp (the NoW folder h5100k_precomp is accepted).", choices: [...DATA_NAMES, NOW_FOLDER_ALIAS], group: "data" },
  tokenizer: { type: "string", default: "bpe", help: "Token-id files of NoW: {bpe,bert,jieba}.", choices: NOW_TOKENIZERS, group: "data" },
  vocab_path: { type: "string", default: "data/vocab", help: "Path to saved vocabulary json files.", group: "data" },
  batch_size: { type: "int", default: 128, help: "Size of a training mini-batch.", group: "training" },
  num_epochs: { type: "int", default: 50, help: "Number of co-training epochs (after warmup); 0 trains warmup only and tests that model (plain SGRAF on the noisy pairs, the paper's baseline).", group: "training" },
  lr_update: { type: "int", default: 30, help: "Number of epochs to update the learning rate (x0.1).", group: "training" },
  learning_rate: { type: "float", default: 0.0002, help: "Initial learning rate.", group: "training" },
  workers: { type: "int", default: 0, help: "Number of data loader workers (accepted; batches are read in-process, see README).", group: "training" },
  log_step: { type: "int", default: 100, help: "Number of steps to print and record the log.", group: "training" },
  grad_clip: { type: "float", default: 2.0, help: "Gradient clipping threshold (0 disables).", group: "training" },
  margin: { type: "float", default: 0.2, help: "Rank loss margin.", group: "training" },
  lambda_en: { type: "int", default: 1, help: "Entropy loss weight (the README examples pass 10).", group: "model" },
  proj_dim: { type: "int", default: 128, help: "Dimensionality of the projection head.", group: "model" },
  img_dim: { type: "int", default: 2048, help: "Dimensionality of the image embedding (768 for now100k).", group: "model" },
  word_dim: { type: "int", default: 300, help: "Dimensionality of the word embedding.", group: "model" },
  embed_size: { type: "int", default: 1024, help: "Dimensionality of the joint embedding.", group: "model" },
  sim_dim: { type: "int", default: 256, help: "Dimensionality of the sim embedding.", group: "model" },
  num_layers: { type: "int", default: 1, help: "Number of GRU layers.", group: "model" },
  bi_gru: { type: "store_false", default: true, help: "Passing it turns the bidirectional GRU OFF (argparse store_false, as in run.py).", group: "model" },
  no_imgnorm: { type: "store_true", default: false, help: "Do not normalize the image embeddings.", group: "model" },
  no_txtnorm: { type: "store_true", default: false, help: "Do not normalize the text embeddings.", group: "model" },
  module_name: { type: "string", default: "SGR", help: "SGR, SAF", choices: MODULE_NAMES, group: "model" },
  sgr_step: { type: "int", default: 3, help: "Step of the SGR.", group: "model" },
  noise_file: { type: "string", default: "", help: "Noise index (.npy); drawn and saved there when absent. Default <output_dir>/<data_name>_<noise_ratio>.npy.", group: "noise" },
  noise_ratio: { type: "float", default: 0.2, help: "Noisy ratio (forced to 0 for cc152k/now100k, whose noise is natural).", group: "noise" },
  no_co_training: { type: "store_true", default: false, help: "Accepted for compatibility; unused by the official code.", group: "pc2" },
  warmup_type: { type: "string", default: "warmup", help: "{warmup,warmup_sele}", choices: WARMUP_TYPES, group: "pc2" },
  warmup_epoch: { type: "int", default: 1, help: "Epochs of warm up stage.", group: "pc2" },
  warmup_epoch_2: { type: "int", default: 25, help: "Co-training epochs on clean data only, before pseudo-captioning starts.", group: "pc2" },
  model_path: { type: "string", default: "", help: "Checkpoint to load: with --resume continue from it, without it a warmup checkpoint (warmup is skipped).", group: "pc2" },
  po_dir: { type: "string", default: "", help: "Directory of the PO banks to resume (default: the checkpoint's own).", group: "pc2" },
  resume: { type: "store_true", default: false, help: "Resume training from --model_path.", group: "pc2" },
  p_threshold: { type: "float", default: 0.5, help: "Clean probability threshold.", group: "pc2" },
  soft_margin: { type: "string", default: "exponential", help: "linear|exponential|sin", choices: SOFT_MARGINS, group: "pc2" },
  recovery: { type: "string", default: "restore", help: "When a net collapses (its validation similarities nearly constant): restore it from the last checkpoint and divide its learning rate by 10 (restore), or carry on as the official code does (off). Collapses and degenerate splits are reported either way.", choices: RECOVERIES, group: "beyond" },
  select: { type: "string", default: "official", help: "Model selection: official (best validation among co-training epochs, reset when pseudo-captioning starts) or all (best over the post-warmup model and every epoch).", choices: SELECTIONS, group: "beyond" },
  po_bank_index: { type: "string", default: "dataset", help: "Where the unlabeled step stores PO outputs: under the captions' dataset ids (dataset) or, as the official code, at their positions inside the labeled/unlabeled subsets (subset).", choices: PO_BANK_INDEXES, group: "beyond" },
  tokenizer_json: { type: "string", default: "", help: "NoW bpe or bert: the Hugging Face tokenizer.json that made the captions' ids, checked at start and packaged by the export at the end so that the model takes text (bpe without it: token ids only; bert without it: WordPiece over the NoW vocabulary).", group: "beyond" },
  stage1_images: { type: "int", default: 256, help: "The export's first stage for two-stage search: fit a head to the trained nets' own scores over this many training images and their captions (distillation, shared/model/stage-one.ts); 0: none (the first stage is then tranglo, SGRAF's pooled vectors, which keep far less of the full model's ranking).", group: "beyond" },
  gpu: { type: "int", default: null, help: "GPU id (with tfjs-node-gpu, TensorFlow uses the GPUs CUDA_VISIBLE_DEVICES exposes; set that instead).", group: "run" },
  seed: { type: "int", default: 0, help: "Random seed.", group: "run" },
  output_dir: { type: "string", default: "output/<time>", help: "Output dir (default output/<YYYY_MM_DD_HH_MM_SS>).", group: "run" },
  parallel: { type: "string", default: "off", help: "on: warmup and co-training run both nets at once, each on a worker of the pool (when --eval_workers gives 2 or more on wasm or cpu), with its own data order and dropout stream drawn from the run's; off: one net after the other in the main thread, with one data-order stream as the official code (use it for parity runs).", choices: PARALLEL_MODES, group: "run" },
  eval_workers: { type: "int", default: 0, help: "Worker threads for validation, test and the split pass, each with its own wasm or cpu backend: 0 = one per core, 1 = none (all in the main thread). The numbers are the same either way.", group: "run" },
  backend: { type: "string", default: "auto", help: "TensorFlow.js backend: auto (a hardware WebGPU adapter, then tensorflow, then wasm, then cpu; never SwiftShader) | webgpu (a GPU, or SwiftShader without one) | tensorflow | wasm | cpu.", choices: BACKENDS, group: "run" },
  "world-size": { type: "int", default: -1, help: "Accepted; training runs in one process (single-GPU training, as the official results).", group: "distributed" },
  rank: { type: "int", default: -1, help: "Accepted; single process.", group: "distributed" },
  "dist-url": { type: "string", default: "tcp://127.0.0.1:10001", help: "Accepted; unused.", group: "distributed" },
  "dist-backend": { type: "string", default: "nccl", help: "Accepted; unused.", group: "distributed" },
  "multiprocessing-distributed": { type: "store_true", default: false, help: "Accepted; ignored with a warning (no multi-process training).", group: "distributed" },
} as const satisfies Record<string, Flag>;

export type FlagName = keyof typeof FLAGS;

type ValueOf<F extends Flag> = F["type"] extends "int" | "float"
  ? F["default"] extends null
    ? number | null
    : number
  : F["type"] extends "store_true" | "store_false"
    ? boolean
    : F extends { choices: readonly (infer C)[] }
      ? C
      : string;

/** The resolved configuration: every flag under its official name (dashes become underscores). */
export type TrainConfig = { [K in FlagName as K extends `${infer A}-${infer B}` ? `${A}_${Replace<B>}` : K]: ValueOf<(typeof FLAGS)[K]> } & {
  /** True when no data flag was given and the embedded synthetic dataset is used. */
  synthetic: boolean;
};
type Replace<S extends string> = S extends `${infer A}-${infer B}` ? `${A}_${Replace<B>}` : S;

/** A mistake on the command line: printed with a pointer to --help, exit code 2. */
export { CliError } from "../shared/cli";

const DATA_FLAGS = ["data_path", "data_name", "vocab_path"] as const;

/**
 * The small configuration of the embedded synthetic dataset: what `bun run train` with no data
 * flags uses (any flag given explicitly still wins).
 */
export const SYNTHETIC_PRESET: Partial<Record<FlagName, number | string>> = {
  img_dim: 32,
  embed_size: 32,
  word_dim: 32,
  sim_dim: 16,
  proj_dim: 16,
  batch_size: 16,
  num_epochs: 2,
  warmup_epoch: 6,
  warmup_epoch_2: 1,
  lr_update: 2,
  learning_rate: 0.002,
  lambda_en: 10,
  noise_ratio: 0.4,
  log_step: 25,
};

function closest(name: string, names: string[]): string | undefined {
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    return d[a.length][b.length];
  };
  let best: string | undefined;
  let bestD = 4;
  for (const n of names) {
    const dd = dist(name, n);
    if (dd < bestD) {
      bestD = dd;
      best = n;
    }
  }
  return best;
}

function timestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}_${p(d.getMonth() + 1)}_${p(d.getDate())}_${p(d.getHours())}_${p(d.getMinutes())}_${p(d.getSeconds())}`;
}

/** Parses argv (without the program name) into a resolved configuration. */
export function parseTrainArgs(argv: string[], now = new Date()): TrainConfig {
  const names = Object.keys(FLAGS) as FlagName[];
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const n of names) options[n] = { type: FLAGS[n].type === "store_true" || FLAGS[n].type === "store_false" ? "boolean" : "string" };
  // argparse reads `--rank -1` as a value; node's parseArgs wants `--rank=-1` for a leading dash.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith("--") ? argv[i].slice(2) : "";
    const next = argv[i + 1];
    if (options[name]?.type === "string" && next !== undefined && /^-(\d|\.\d|inf|nan)/i.test(next)) {
      args.push(`--${name}=${next}`);
      i++;
    } else args.push(argv[i]);
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (e) {
    const msg = (e as Error).message;
    const m = /Unknown option '(--?[^']+)'/.exec(msg);
    if (m) {
      const guess = closest(m[1].replace(/^-+/, ""), names);
      throw new CliError(`unknown flag ${m[1]}${guess ? ` (did you mean --${guess}?)` : ""}; valid flags: ${names.map((n) => `--${n}`).join(" ")}`);
    }
    const noValue = /Option '(--[^ ']+)[^']*' argument missing/.exec(msg);
    if (noValue) throw new CliError(`flag ${noValue[1]} needs a value`);
    throw new CliError(msg.split("\n")[0]);
  }
  const given = parsed.values as Record<string, string | boolean | undefined>;
  const noDataFlags = DATA_FLAGS.every((f) => given[f] === undefined);
  const out: Record<string, unknown> = { synthetic: noDataFlags };
  for (const n of names) {
    const f: Flag = FLAGS[n];
    const key = n.replace(/-/g, "_");
    const raw = given[n];
    let value: unknown = f.default;
    if (noDataFlags && raw === undefined && SYNTHETIC_PRESET[n] !== undefined) value = SYNTHETIC_PRESET[n];
    if (raw !== undefined) {
      if (f.type === "store_true") value = true;
      else if (f.type === "store_false") value = false;
      else value = convert(n, f, raw as string);
    }
    if (n === "output_dir" && raw === undefined) value = `output/${timestamp(now)}`;
    out[key] = value;
  }
  validate(out);
  return out as TrainConfig;
}

function convert(name: string, f: Flag, raw: string): string | number {
  if (f.type === "int") {
    if (!/^[-+]?\d+$/.test(raw.trim())) throw new CliError(`--${name}: invalid int value '${raw}'`);
    return Number.parseInt(raw, 10);
  }
  if (f.type === "float") {
    const v = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(v)) throw new CliError(`--${name}: invalid float value '${raw}'`);
    return v;
  }
  if (f.choices && !f.choices.includes(raw)) throw new CliError(`--${name}: invalid choice '${raw}' (choose from ${f.choices.join(", ")})`);
  return raw;
}

function validate(c: Record<string, unknown>) {
  const positive = ["batch_size", "proj_dim", "img_dim", "word_dim", "embed_size", "sim_dim", "num_layers", "sgr_step", "lr_update", "log_step"];
  for (const k of positive) if (!((c[k] as number) > 0)) throw new CliError(`--${k} must be a positive integer, got ${c[k]}`);
  for (const k of ["num_epochs", "warmup_epoch", "warmup_epoch_2", "seed", "workers", "eval_workers"]) if ((c[k] as number) < 0) throw new CliError(`--${k} must be >= 0, got ${c[k]}`);
  if (!((c.learning_rate as number) > 0)) throw new CliError(`--learning_rate must be > 0, got ${c.learning_rate}`);
  if (!((c.noise_ratio as number) >= 0 && (c.noise_ratio as number) < 1)) throw new CliError(`--noise_ratio must be in [0, 1), got ${c.noise_ratio}`);
  if (!((c.p_threshold as number) >= 0 && (c.p_threshold as number) <= 1)) throw new CliError(`--p_threshold must be in [0, 1], got ${c.p_threshold}`);
  if ((c.grad_clip as number) < 0) throw new CliError(`--grad_clip must be >= 0, got ${c.grad_clip}`);
  if (c.resume && !c.model_path) throw new CliError("--resume needs --model_path <checkpoint>");
  const mismatch = c.tokenizer_json ? tokenizerJsonMismatch(c.data_name as string, c.tokenizer as string) : null;
  if (mismatch) throw new CliError(`--tokenizer_json: ${mismatch}`);
}

/** `--help`: every flag with its default, grouped. */
export function trainHelp(): string {
  const titles: Record<Flag["group"], string> = {
    data: "Data",
    training: "Training",
    model: "Model",
    noise: "Noise",
    pc2: "PC2 (warmup, split, co-training)",
    beyond: "Beyond the official code (--recovery off --select official --po_bank_index subset is the official behaviour)",
    run: "Running",
    distributed: "Distributed (accepted for compatibility with run.py command lines)",
  };
  const lines = [
    "Usage: bun run train [flags]",
    "",
    "PC2 co-training of two SGRAF networks (the official run.py flags). With no --data_path, --data_name",
    "or --vocab_path it trains on the embedded synthetic dataset with a small configuration (shown below",
    "as 'synthetic'), which takes a few minutes on 2 CPU cores.",
  ];
  for (const g of Object.keys(titles) as Flag["group"][]) {
    lines.push("", `${titles[g]}:`);
    for (const [n, f] of Object.entries(FLAGS) as [FlagName, Flag][]) {
      if (f.group !== g) continue;
      const arg = f.type === "store_true" || f.type === "store_false" ? "" : ` <${f.type === "string" ? (f.choices ? f.choices.join("|") : "value") : f.type}>`;
      const def = f.type === "store_false" ? "on" : f.type === "store_true" ? "off" : f.default === null ? "none" : JSON.stringify(f.default);
      const syn = SYNTHETIC_PRESET[n] !== undefined ? `, synthetic ${SYNTHETIC_PRESET[n]}` : "";
      lines.push(`  --${n}${arg}`, `      ${f.help} (default: ${def}${syn})`);
    }
  }
  return lines.join("\n");
}
