import { afterEach, describe, expect, spyOn, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { main } from "../../trainer/cli/train";
import { CliError, FLAGS, type FlagName, SYNTHETIC_PRESET, type TrainConfig, parseTrainArgs, trainHelp } from "../../trainer/config";
import { REFERENCE_DIR } from "../support";

/**
 * The defaults of the official run.py, copied by hand from its argparse calls (not from FLAGS, so
 * that a changed default in the table is caught). Dashes of the distributed flags become underscores.
 */
const OFFICIAL_DEFAULTS: Record<string, string | number | boolean | null> = {
  data_path: "data/",
  data_name: "f30k_precomp",
  tokenizer: "bpe",
  vocab_path: "data/vocab",
  batch_size: 128,
  num_epochs: 50,
  lr_update: 30,
  learning_rate: 0.0002,
  workers: 0,
  log_step: 100,
  grad_clip: 2.0,
  margin: 0.2,
  lambda_en: 1,
  proj_dim: 128,
  img_dim: 2048,
  word_dim: 300,
  embed_size: 1024,
  sim_dim: 256,
  num_layers: 1,
  bi_gru: true,
  no_imgnorm: false,
  no_txtnorm: false,
  module_name: "SGR",
  sgr_step: 3,
  noise_file: "",
  noise_ratio: 0.2,
  no_co_training: false,
  warmup_type: "warmup",
  warmup_epoch: 1,
  warmup_epoch_2: 25,
  model_path: "",
  po_dir: "",
  resume: false,
  p_threshold: 0.5,
  soft_margin: "exponential",
  gpu: null,
  seed: 0,
  world_size: -1,
  rank: -1,
  dist_url: "tcp://127.0.0.1:10001",
  dist_backend: "nccl",
  multiprocessing_distributed: false,
};

/** The README's training command lines, exactly as printed (the NoW, Flickr30K and MS-COCO examples). */
const README_COMMANDS = {
  now: "python ./pc2/run.py --world-size 1 --rank 0 --gpu 0 --workers 8 --lr_update 30 --warmup_epoch 10 --warmup_epoch_2 25 --data_name h5100k_precomp --tokenizer bert --data_path ./data --vocab_path ./data/vocab --output_dir ./output --proj_dim 128 --lambda_en 10 --img_dim 768",
  f30k: "python ./pc2/run.py --world-size 1 --rank 0 --gpu 0 --workers 8 --warmup_epoch 5 --warmup_epoch_2 25 --data_name f30k_precomp --data_path ./data --vocab_path ./data/vocab --output_dir ./output --proj_dim 128 --lambda_en 10 --noise_ratio 0.4 --noise_file noise_index/f30k_precomp_0.4",
  coco: "python ./pc2/run.py --world-size 1 --rank 0 --gpu 0 --workers 8 --warmup_epoch 5 --warmup_epoch_2 25 --data_name coco_precomp --data_path ./data --vocab_path ./data/vocab --output_dir ./output --proj_dim 128 --lambda_en 10 --noise_ratio 0.4 --noise_file noise_index/coco_precomp_0.4",
};

/** argv after the program (`run.py` or `bun run train`). */
function argvOf(command: string, program: RegExp): string[] {
  const m = program.exec(command);
  if (!m) throw new Error(`no program in ${command}`);
  return command.slice(m.index + m[0].length).trim().split(/\s+/);
}

/** The defaults with the given overrides: what a command line must resolve to. */
function expected(overrides: Record<string, unknown>): Record<string, unknown> {
  return { ...OFFICIAL_DEFAULTS, synthetic: false, ...overrides };
}

function pick(c: TrainConfig, keys: string[]): Record<string, unknown> {
  const r = c as unknown as Record<string, unknown>;
  return Object.fromEntries(keys.map((k) => [k, r[k]]));
}

function parseError(argv: string[]): CliError {
  try {
    parseTrainArgs(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    return e as CliError;
  }
  throw new Error(`parseTrainArgs(${JSON.stringify(argv)}) did not throw`);
}

const ALL_KEYS = [...Object.keys(OFFICIAL_DEFAULTS), "output_dir", "backend", "synthetic"];

describe("parseTrainArgs: the official command lines", () => {
  test("the flag table holds exactly run.py's flags, plus --backend, --eval_workers, --parallel and the group beyond the official code", () => {
    const names = Object.keys(FLAGS).map((n) => n.replace(/-/g, "_"));
    const beyond = Object.entries(FLAGS).filter(([, f]) => f.group === "beyond").map(([n]) => n);
    expect(beyond.sort()).toEqual(["po_bank_index", "recovery", "select", "stage1_images", "tokenizer_json"]);
    expect(names.sort()).toEqual([...Object.keys(OFFICIAL_DEFAULTS), "output_dir", "backend", "eval_workers", "parallel", ...beyond].sort());
  });

  test("any data flag alone: every other flag takes run.py's default", () => {
    const c = parseTrainArgs(["--data_path", "data/"], new Date(2024, 0, 2, 3, 4, 5));
    expect(pick(c, ALL_KEYS)).toEqual(expected({ output_dir: "output/2024_01_02_03_04_05", backend: "auto" }));
  });

  test("README, NoW", () => {
    const c = parseTrainArgs(argvOf(README_COMMANDS.now, /run\.py/));
    expect(pick(c, ALL_KEYS)).toEqual(
      expected({
        world_size: 1,
        rank: 0,
        gpu: 0,
        workers: 8,
        lr_update: 30,
        warmup_epoch: 10,
        warmup_epoch_2: 25,
        data_name: "h5100k_precomp",
        tokenizer: "bert",
        data_path: "./data",
        vocab_path: "./data/vocab",
        output_dir: "./output",
        proj_dim: 128,
        lambda_en: 10,
        img_dim: 768,
        backend: "auto",
      }),
    );
  });

  for (const [name, dataName] of [
    ["f30k", "f30k_precomp"],
    ["coco", "coco_precomp"],
  ] as const) {
    test(`README, ${name === "f30k" ? "Flickr30K" : "MS-COCO"}`, () => {
      const c = parseTrainArgs(argvOf(README_COMMANDS[name], /run\.py/));
      expect(pick(c, ALL_KEYS)).toEqual(
        expected({
          world_size: 1,
          rank: 0,
          gpu: 0,
          workers: 8,
          warmup_epoch: 5,
          warmup_epoch_2: 25,
          data_name: dataName,
          data_path: "./data",
          vocab_path: "./data/vocab",
          output_dir: "./output",
          proj_dim: 128,
          lambda_en: 10,
          noise_ratio: 0.4,
          noise_file: `noise_index/${dataName}_0.4`,
          backend: "auto",
        }),
      );
    });
  }

  test("README, the generic single-GPU and DistributedDataParallel lines", () => {
    const single = parseTrainArgs(["--world-size", "1", "--rank", "0", "--gpu", "1", "--data_path", "./data"]);
    expect(pick(single, ["world_size", "rank", "gpu", "multiprocessing_distributed"])).toEqual({ world_size: 1, rank: 0, gpu: 1, multiprocessing_distributed: false });
    const ddp = parseTrainArgs(["--world-size", "1", "--rank", "0", "--multiprocessing-distributed", "--data_path", "./data"]);
    expect(pick(ddp, ["world_size", "rank", "gpu", "multiprocessing_distributed"])).toEqual({ world_size: 1, rank: 0, gpu: null, multiprocessing_distributed: true });
    const urls = parseTrainArgs(["--dist-url", "env://", "--dist-backend", "gloo", "--data_path", "x"]);
    expect(pick(urls, ["dist_url", "dist_backend"])).toEqual({ dist_url: "env://", dist_backend: "gloo" });
  });

  test("the e2e reference command", () => {
    const summary = JSON.parse(readFileSync(resolve(REFERENCE_DIR, "e2e/official_summary.json"), "utf8")) as { command: string };
    const c = parseTrainArgs(argvOf(summary.command, /^bun run train/));
    expect(pick(c, ALL_KEYS)).toEqual(
      expected({
        world_size: 1,
        rank: 0,
        data_name: "f30k_precomp",
        data_path: "../shared/reference/e2e",
        vocab_path: "../shared/reference/e2e/vocab",
        noise_ratio: 0.4,
        noise_file: "../shared/reference/e2e/noise_0.4.npy",
        img_dim: 48,
        embed_size: 64,
        word_dim: 32,
        sim_dim: 32,
        proj_dim: 16,
        batch_size: 32,
        learning_rate: 0.001,
        lr_update: 4,
        num_epochs: 6,
        warmup_epoch: 4,
        warmup_epoch_2: 4,
        lambda_en: 10,
        log_step: 50,
        seed: 0,
        output_dir: "OUT",
        backend: "auto",
      }),
    );
  });

  test("store_false / store_true flags: --bi_gru turns the bidirectional GRU off", () => {
    expect(parseTrainArgs(["--data_path", "d"]).bi_gru).toBe(true);
    expect(parseTrainArgs(["--data_path", "d", "--bi_gru"]).bi_gru).toBe(false);
    const c = parseTrainArgs(["--data_path", "d", "--no_imgnorm", "--no_txtnorm", "--resume", "--model_path", "m.safetensors", "--no_co_training"]);
    expect(pick(c, ["no_imgnorm", "no_txtnorm", "resume", "model_path", "no_co_training"])).toEqual({ no_imgnorm: true, no_txtnorm: true, resume: true, model_path: "m.safetensors", no_co_training: true });
  });

  test("negative numbers are values, as argparse reads them (`--world-size -1 --rank -1` are run.py's defaults)", () => {
    const c = parseTrainArgs(["--data_path", "d", "--world-size", "-1", "--rank", "-1", "--gpu", "-1"]);
    expect(pick(c, ["world_size", "rank", "gpu"])).toEqual({ world_size: -1, rank: -1, gpu: -1 });
  });

  test("--flag=value is accepted as argparse accepts it; lambda_en default 1, README 10", () => {
    const c = parseTrainArgs(["--data_path=d", "--batch_size=64", "--learning_rate=2e-4", "--module_name=SAF"]);
    expect(pick(c, ["data_path", "batch_size", "learning_rate", "module_name", "lambda_en"])).toEqual({ data_path: "d", batch_size: 64, learning_rate: 0.0002, module_name: "SAF", lambda_en: 1 });
    expect(parseTrainArgs(["--data_path", "d", "--lambda_en", "10"]).lambda_en).toBe(10);
  });
});

describe("parseTrainArgs: no data flags", () => {
  test("gives the synthetic preset, and every other flag its official default", () => {
    const c = parseTrainArgs([]);
    expect(c.synthetic).toBe(true);
    const r = c as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(SYNTHETIC_PRESET)) expect([k, r[k]]).toEqual([k, v]);
    for (const [k, v] of Object.entries(OFFICIAL_DEFAULTS)) if (!(k in SYNTHETIC_PRESET)) expect([k, r[k]]).toEqual([k, v]);
    // The preset is small: it must run on a CPU in minutes.
    expect(c.embed_size).toBeLessThanOrEqual(128);
    expect(c.img_dim).toBeLessThanOrEqual(64);
    expect(c.noise_ratio).toBeGreaterThan(0);
  });

  test("an explicit flag wins over the preset; a data flag turns the preset off", () => {
    const c = parseTrainArgs(["--batch_size", "7", "--lambda_en", "3"]);
    expect(pick(c, ["synthetic", "batch_size", "lambda_en", "embed_size"])).toEqual({ synthetic: true, batch_size: 7, lambda_en: 3, embed_size: SYNTHETIC_PRESET.embed_size });
    for (const flag of ["--data_path", "--data_name", "--vocab_path"]) {
      const d = parseTrainArgs([flag, flag === "--data_name" ? "coco_precomp" : "x"]);
      expect([flag, d.synthetic, d.embed_size, d.batch_size]).toEqual([flag, false, 1024, 128]);
    }
  });
});

describe("parseTrainArgs: mistakes", () => {
  test("an unknown flag names the closest flag and lists the valid ones", () => {
    const e = parseError(["--data_path", "d", "--batchsize", "3"]);
    expect(e.message).toContain("--batchsize");
    expect(e.message).toMatch(/did you mean --batch_size\?/);
    for (const n of Object.keys(FLAGS)) expect(e.message).toContain(`--${n}`);
    expect(parseError(["--lamda_en", "10"]).message).toMatch(/did you mean --lambda_en\?/);
    expect(parseError(["--world_size", "1"]).message).toMatch(/did you mean --world-size\?/);
    // Nothing close: no suggestion, still the list.
    const far = parseError(["--zzzzzzzzzzzz"]);
    expect(far.message).not.toContain("did you mean");
    expect(far.message).toContain("--batch_size");
  });

  const cases: Array<[string, string[], RegExp[]]> = [
    ["int 'x'", ["--batch_size", "x"], [/--batch_size/, /'x'/, /int/]],
    ["int '1.5'", ["--num_epochs", "1.5"], [/--num_epochs/, /'1\.5'/]],
    ["float 'nan'", ["--learning_rate", "nan"], [/--learning_rate/, /'nan'/, /float/]],
    ["float 'inf'", ["--margin", "inf"], [/--margin/, /'inf'/]],
    ["float ''", ["--margin", ""], [/--margin/]],
    ["module outside the set", ["--module_name", "SGRAF"], [/--module_name/, /'SGRAF'/, /SGR, SAF/]],
    ["soft_margin outside the set", ["--soft_margin", "cosine"], [/--soft_margin/, /linear, exponential, sin/]],
    ["data_name outside the set", ["--data_name", "cub_precomp"], [/--data_name/, /f30k_precomp/, /coco_precomp/, /cc152k_precomp/, /now100k_precomp/]],
    ["tokenizer outside the set", ["--data_path", "d", "--tokenizer", "spm"], [/--tokenizer/, /bpe, bert, jieba/]],
    ["warmup_type outside the set", ["--data_path", "d", "--warmup_type", "none"], [/--warmup_type/, /warmup, warmup_sele/]],
    ["backend outside the set", ["--data_path", "d", "--backend", "webgl"], [/--backend/, /auto, webgpu, tensorflow, wasm, cpu/]],
    ["noise_ratio 1.0", ["--data_path", "d", "--noise_ratio", "1.0"], [/--noise_ratio/, /\[0, 1\)/, /got 1\b/]],
    ["noise_ratio -0.1", ["--data_path", "d", "--noise_ratio", "-0.1"], [/--noise_ratio/, /\[0, 1\)/]],
    ["p_threshold 1.5", ["--data_path", "d", "--p_threshold", "1.5"], [/--p_threshold/, /\[0, 1\]/]],
    ["batch_size 0", ["--data_path", "d", "--batch_size", "0"], [/--batch_size/, /positive/]],
    ["resume without model_path", ["--data_path", "d", "--resume"], [/--resume/, /--model_path/]],
    ["tokenizer_json for jieba captions", ["--data_name", "now100k_precomp", "--tokenizer", "jieba", "--tokenizer_json", "t.json"], [/--tokenizer_json/, /NoW's bpe or bert captions only/, /NoW --tokenizer jieba/]],
    ["tokenizer_json outside NoW", ["--data_path", "d", "--tokenizer_json", "t.json"], [/--tokenizer_json/, /here: f30k_precomp/]],
    ["a value missing at the end", ["--data_path", "d", "--batch_size"], [/--batch_size/, /value/]],
    ["a positional argument", ["--data_path", "d", "extra"], [/extra/]],
  ];
  for (const [what, argv, patterns] of cases) {
    test(`${what}: a CliError naming the flag and what is allowed`, () => {
      const e = parseError(argv);
      for (const p of patterns) expect(e.message).toMatch(p);
    });
  }
});

describe("--help", () => {
  const help = trainHelp();

  test("lists every flag with its default", () => {
    const lines = help.split("\n");
    for (const name of Object.keys(FLAGS) as FlagName[]) {
      const i = lines.findIndex((l) => l.trim() === `--${name}` || l.trim().startsWith(`--${name} `));
      expect([name, i >= 0]).toEqual([name, true]);
      const key = name.replace(/-/g, "_");
      const def = key in OFFICIAL_DEFAULTS ? OFFICIAL_DEFAULTS[key] : FLAGS[name].default;
      const shown = def === null ? "none" : FLAGS[name].type === "store_false" ? "on" : FLAGS[name].type === "store_true" ? "off" : typeof def === "string" ? JSON.stringify(def) : String(def);
      expect([name, lines[i + 1]]).toEqual([name, expect.stringContaining(`(default: ${shown}`)]);
    }
    // The preset values are shown beside the defaults they replace.
    expect(help).toMatch(new RegExp(`--embed_size <int>\\n.*\\(default: 1024, synthetic ${SYNTHETIC_PRESET.embed_size}\\)`));
  });

  test("the choices of a flag with a fixed set are shown", () => {
    expect(help).toContain("--module_name <SGR|SAF>");
    expect(help).toContain("--soft_margin <linear|exponential|sin>");
  });

  describe("through main()", () => {
    const restore: Array<() => void> = [];
    afterEach(() => {
      for (const r of restore.splice(0)) r();
    });
    function capture() {
      const out: string[] = [];
      const err: string[] = [];
      const log = spyOn(console, "log").mockImplementation((...a: unknown[]) => void out.push(a.join(" ")));
      const error = spyOn(console, "error").mockImplementation((...a: unknown[]) => void err.push(a.join(" ")));
      restore.push(() => log.mockRestore(), () => error.mockRestore());
      return { out, err };
    }

    test("--help prints the help and exits 0", async () => {
      const { out } = capture();
      expect(await main(["--help"])).toBe(0);
      expect(out.join("\n")).toBe(help);
      expect(await main(["-h"])).toBe(0);
    });

    test("a command-line mistake exits 2 with the error and a pointer to --help, before any training", async () => {
      const { out, err } = capture();
      expect(await main(["--batch_size", "x"])).toBe(2);
      expect(err.join("\n")).toMatch(/--batch_size: invalid int value 'x'/);
      expect(err.join("\n")).toContain("--help");
      expect(await main(["--bogus"])).toBe(2);
      expect(err.join("\n")).toContain("unknown flag --bogus");
      expect(out).toEqual([]);
    });

    test("--tokenizer_json that cannot be read or is no tokenizer.json exits 1 naming the file, before any training", async () => {
      const { out, err } = capture();
      const dir = mkdtempSync(join(tmpdir(), "pc2-config-"));
      try {
        const now = ["--data_name", "now100k_precomp", "--data_path", dir, "--vocab_path", dir, "--tokenizer", "bpe", "--output_dir", join(dir, "run"), "--backend", "wasm"];
        const missing = join(dir, "missing.json");
        expect(await main([...now, "--tokenizer_json", missing])).toBe(1);
        expect(err.at(-1)).toMatch(new RegExp(`^error: ${missing}: --tokenizer_json: cannot read`));
        const notJson = join(dir, "not.json");
        writeFileSync(notJson, "{ model:");
        expect(await main([...now, "--tokenizer_json", notJson])).toBe(1);
        expect(err.at(-1)).toContain(`${notJson}: --tokenizer_json: not valid JSON`);
        const notTokenizer = join(dir, "other.json");
        writeFileSync(notTokenizer, JSON.stringify({ model: { type: "Unigram" } }));
        expect(await main([...now, "--tokenizer_json", notTokenizer])).toBe(1);
        expect(err.at(-1)).toContain(`${notTokenizer}: --tokenizer_json:`);
        expect(out).toEqual([]);
        expect(existsSync(join(dir, "run"))).toBe(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
