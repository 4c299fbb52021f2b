import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, spyOn, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NdArray } from "../../shared/formats/ndarray";
import { writeSafetensors } from "../../shared/formats/safetensors";
import { ParamStore } from "../../shared/model/params";
import { initBackend } from "../../trainer/backend";
import { readCheckpointFile } from "../../trainer/checkpoint";
import { main as evalMain } from "../../trainer/cli/eval";
import { main as exportMain } from "../../trainer/cli/export";
import { loadSplit, loadVocabulary } from "../../trainer/data/datasets";
import type { SyntheticDataset } from "../../trainer/data/synthetic";
import { encodeSplit, ensembleSims, evaluateSplit } from "../../trainer/evaluate";
import { OUTPUT_FILES, train } from "../../trainer/train";
import { recordingHooks, tempDir, tinyConfig, tinyDataset } from "./train-fixtures";

setDefaultTimeout(120_000);

const tmp = tempDir("pc2-cli-");
let ds: SyntheticDataset;
let out: string;
let checkpoint: string;

beforeAll(async () => {
  await initBackend("wasm");
  ds = tinyDataset(join(tmp.dir, "data"));
  out = join(tmp.dir, "run");
  await train(tinyConfig(ds, out, { num_epochs: "1" }), recordingHooks());
  checkpoint = join(out, OUTPUT_FILES.latest);
});
afterAll(tmp.cleanup);

interface Metrics {
  r1: number;
  r5: number;
  r10: number;
  medr: number;
  meanr: number;
}

interface Recall {
  i2t: Metrics;
  t2i: Metrics;
  rsum: number;
}

const restore: Array<() => void> = [];
afterEach(() => {
  for (const r of restore.splice(0)) r();
});

/** Runs a CLI main() with console.log/console.error captured. */
async function run(main: (argv: string[]) => Promise<number>, argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = spyOn(console, "log").mockImplementation((...a: unknown[]) => void out.push(a.join(" ")));
  const error = spyOn(console, "error").mockImplementation((...a: unknown[]) => void err.push(a.join(" ")));
  try {
    const code = await main(argv);
    return { code, out, err };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

async function evalJson(modelPath: string, extra: string[] = []): Promise<Recall> {
  const r = await run(evalMain, ["--model_path", modelPath, "--backend", "wasm", "--json", ...extra]);
  expect([r.code, r.err]).toEqual([0, []]);
  expect(r.out.length).toBe(1);
  return JSON.parse(r.out[0]);
}

const DATA_FLAGS = () => ["--data_path", ds.dataPath, "--data_name", ds.dataName, "--vocab_path", ds.vocabPath];

/** The tensors of the checkpoint under the official names, with or without the model_A./model_B. prefix. */
function officialTensors(prefixes: string[], strip: boolean): Map<string, NdArray> {
  const { arrays } = readCheckpointFile(checkpoint);
  const keep = new Map<string, NdArray>();
  for (const [name, a] of arrays) {
    const p = prefixes.find((x) => name.startsWith(x));
    if (p) keep.set(strip ? name.slice(p.length) : name, a);
  }
  return keep;
}

describe("bun run eval on a checkpoint of a tiny run", () => {
  let lines: string[];
  let json: Recall;

  beforeAll(async () => {
    const r = await run(evalMain, ["--model_path", checkpoint, "--backend", "wasm"]);
    expect([r.code, r.err]).toEqual([0, []]);
    lines = r.out;
    json = await evalJson(checkpoint);
  });

  test("prints the official evalrank lines, data flags taken from the checkpoint's run", () => {
    expect(lines).toContainEqual(expect.stringMatching(/^checkpoint .*: nets A\+B; f30k_precomp test: 5 images, 25 captions$/));
    const tail = lines.slice(-5);
    expect(tail[0]).toMatch(/^rsum: \d+\.\d$/);
    expect(tail[1]).toMatch(/^Average i2t Recall: \d+\.\d$/);
    expect(tail[2]).toMatch(/^Image to text: \d+\.\d \d+\.\d \d+\.\d \d+\.\d \d+\.\d$/);
    expect(tail[3]).toMatch(/^Average t2i Recall: \d+\.\d$/);
    expect(tail[4]).toMatch(/^Text to image: \d+\.\d \d+\.\d \d+\.\d \d+\.\d \d+\.\d$/);
  });

  test("--json prints {i2t, t2i, rsum}, the same numbers as the lines", () => {
    expect(Object.keys(json).sort()).toEqual(["i2t", "rsum", "t2i"]);
    for (const d of ["i2t", "t2i"] as const) expect(Object.keys(json[d]).sort()).toEqual(["meanr", "medr", "r1", "r10", "r5"]);
    const f = (m: Metrics) => [m.r1, m.r5, m.r10, m.medr, m.meanr].map((x) => x.toFixed(1)).join(" ");
    const tail = lines.slice(-5);
    expect(tail[0]).toBe(`rsum: ${json.rsum.toFixed(1)}`);
    expect(tail[2]).toBe(`Image to text: ${f(json.i2t)}`);
    expect(tail[4]).toBe(`Text to image: ${f(json.t2i)}`);
    expect(json.rsum).toBeCloseTo(json.i2t.r1 + json.i2t.r5 + json.i2t.r10 + json.t2i.r1 + json.t2i.r5 + json.t2i.r10, 6);
  });

  test("agrees with the trainer's own test at the best validation (results.json) for the best checkpoint", async () => {
    const results = JSON.parse(readFileSync(join(out, OUTPUT_FILES.results), "utf8"));
    expect(results.best_validation_epoch).toBe(0);
    const best = await evalJson(join(out, OUTPUT_FILES.best));
    expect(best).toEqual({ i2t: results.i2t, t2i: results.t2i, rsum: results.rsum });
  });

  test("the same numbers from an exported float32 model directory", async () => {
    const dir = join(tmp.dir, "export-f32");
    const r = await run(exportMain, ["--model_path", checkpoint, "--out", dir, "--dtype", "float32", "--backend", "wasm"]);
    expect([r.code, r.err]).toEqual([0, []]);
    expect(await evalJson(dir)).toEqual(json);
  });

  test("export with a gallery fits the distilled first stage on the run's training images; --stage1_images 0 fits none, a negative one exits 2", async () => {
    const dir = join(tmp.dir, "export-head");
    const r = await run(exportMain, ["--model_path", checkpoint, "--out", dir, "--gallery", "test", "--stage1_images", "40", "--backend", "wasm"]);
    expect([r.code, r.err]).toEqual([0, []]);
    expect(r.out).toContainEqual(expect.stringMatching(/^first stage: head fitted to the nets' scores over 10 train images and 50 captions in /)); // all the tiny set's 10
    expect(JSON.parse(readFileSync(join(dir, "model.json"), "utf8")).stageOneHead.stage).toBe("distilled");
    const none = await run(exportMain, ["--model_path", checkpoint, "--out", join(tmp.dir, "export-nohead"), "--gallery", "test", "--stage1_images", "0", "--backend", "wasm"]);
    expect(none.code).toBe(0);
    expect(JSON.parse(readFileSync(join(tmp.dir, "export-nohead", "model.json"), "utf8")).stageOneHead).toBeUndefined();
    const bad = await run(exportMain, ["--model_path", checkpoint, "--out", join(tmp.dir, "x"), "--stage1_images=-1"]);
    expect(bad.code).toBe(2);
    expect(bad.err.join("\n")).toContain("--stage1_images must be a whole number >= 0, got -1");
  });

  test("the same numbers from an official-names safetensors file holding model_A. and model_B.", async () => {
    const p = join(tmp.dir, "official-AB.safetensors");
    const tensors = officialTensors(["model_A.", "model_B."], false);
    expect([...tensors.keys()].some((k) => k.startsWith("optimizer_") || k.startsWith("bank_"))).toBe(false);
    writeFileSync(p, writeSafetensors(tensors));
    const text = await run(evalMain, ["--model_path", p, "--backend", "wasm", ...DATA_FLAGS()]);
    expect(text.code).toBe(0);
    expect(text.out).toContainEqual(expect.stringMatching(/^official .*: nets A\+B;/));
    expect(await evalJson(p, DATA_FLAGS())).toEqual(json);
  });

  test("a single-net official file evaluates that net alone", async () => {
    for (const k of ["A", "B"] as const) {
      const p = join(tmp.dir, `official-${k}.safetensors`);
      const tensors = officialTensors([`model_${k}.`], true);
      writeFileSync(p, writeSafetensors(tensors));
      const text = await run(evalMain, ["--model_path", p, "--backend", "wasm", ...DATA_FLAGS()]);
      expect(text.code).toBe(0);
      expect(text.out).toContainEqual(expect.stringMatching(/^official .*: nets net;/));

      // The reference: that net's own similarities, straight from evaluate.ts.
      const { state } = readCheckpointFile(checkpoint);
      const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
      const split = loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split: "test", vocab, vocabSize, imgDim: ds.imgDim });
      const net = ParamStore.fromArrays(state.model, tensors, p);
      const want = await evaluateSplit([net], split, { batchSize: 128 });
      expect(await evalJson(p, DATA_FLAGS())).toEqual({ i2t: want.i2t, t2i: want.t2i, rsum: want.rsum });

      // …which is not the ensemble: its similarity matrix differs from the two nets' average.
      const other = ParamStore.fromArrays(state.model, officialTensors([`model_${k === "A" ? "B" : "A"}.`], true), p);
      const enc = [await encodeSplit(net, split, { batchSize: 128 }), await encodeSplit(other, split, { batchSize: 128 })];
      const single = await ensembleSims([enc[0]], [net]);
      const both = await ensembleSims(enc, [net, other]);
      let d = 0;
      for (let i = 0; i < single.length; i++) d = Math.max(d, Math.abs(single[i] - both[i]));
      expect(d).toBeGreaterThan(1e-4);
      net.dispose();
      other.dispose();
    }
  });

  test("mistakes: no --model_path exits 2; a missing file exits 1 naming it", async () => {
    const none = await run(evalMain, ["--backend", "wasm"]);
    expect(none.code).toBe(2);
    expect(none.err.join("\n")).toContain("--model_path is required");
    const missing = await run(evalMain, ["--model_path", join(tmp.dir, "nope.safetensors"), "--backend", "wasm"]);
    expect(missing.code).toBe(1);
    expect(missing.err.join("\n")).toContain("nope.safetensors");
    const bad = await run(evalMain, ["--model_path", checkpoint, "--backend", "wasm", "--split", "val"]);
    expect(bad.code).toBe(2);
    expect(bad.err.join("\n")).toMatch(/--split: invalid choice 'val' \(choose from test, testall, dev\)/);
  });
});
