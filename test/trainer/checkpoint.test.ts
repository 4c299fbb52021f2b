import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FormatError } from "../../shared/formats/ndarray";
import { writeSafetensors } from "../../shared/formats/safetensors";
import { type SgrafConfig, sgrafConfig } from "../../shared/model/config";
import { Adam } from "../../shared/model/optim";
import { ParamStore } from "../../shared/model/params";
import * as tf from "../../shared/model/tf";
import { Random } from "../../shared/random";
import { initBackend } from "../../trainer/backend";
import { type Checkpoint, emptyBank, encodeCheckpoint, readCheckpointFile, restoreCheckpoint, saveCheckpoint } from "../../trainer/checkpoint";
import { loadVocabulary } from "../../trainer/data/datasets";
import type { SyntheticDataset } from "../../trainer/data/synthetic";
import { OUTPUT_FILES, TrainingFault, train } from "../../trainer/train";
import { leftoverTemporaries, recordingHooks, tempDir, tinyConfig, tinyDataset } from "./train-fixtures";

setDefaultTimeout(60_000);

const tmp = tempDir("pc2-checkpoint-");
let ds: SyntheticDataset;
let model: SgrafConfig;

beforeAll(async () => {
  await initBackend("cpu");
  ds = tinyDataset(join(tmp.dir, "data"));
  const { vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
  model = sgrafConfig({ img_dim: ds.imgDim, embed_size: 16, word_dim: 12, sim_dim: 8, proj_dim: 5, vocab_size: vocabSize });
});
afterAll(tmp.cleanup);

/** A checkpoint of fresh nets with banks and optimizer moments that are not all zero. */
function makeCheckpoint(m: SgrafConfig, captions = 50, seed = 1): Checkpoint {
  const rng = new Random(seed);
  const nets = {
    A: { params: ParamStore.init(m, rng), optimizer: new Adam({ lr: 0.001 }) },
    B: { params: ParamStore.init(m, rng), optimizer: new Adam({ lr: 0.0001 }) },
  };
  const banks = { A: emptyBank(captions, m.proj_dim), B: emptyBank(captions, m.proj_dim) };
  for (let i = 0; i < banks.A.probs.length; i++) banks.A.probs[i] = rng.nextFloat();
  for (let i = 0; i < captions; i += 3) banks.A.has[i] = 1;
  const state = {
    cursor: { stage: "cotrain" as const, epoch: 1, part: 2, step: 3, dataRng: new Random(7).state() },
    modelRng: new Random(8).state(),
    bestRsum: 123.4,
    bestEpoch: 0,
    bestTest: null,
    config: { data_name: "f30k_precomp", embed_size: m.embed_size },
    model: m,
    lrScale: { A: 1, B: 0.1 },
    restorePoint: "/somewhere/checkpoint_latest_validation.safetensors",
    reference: { A: { std: 0.03, rsum: 300 }, B: { std: 0.02, rsum: 250 } },
  };
  // The split of the epoch in progress: probabilities and labels per caption, per net.
  const netSplit = () => ({
    prob: Float32Array.from({ length: captions }, () => rng.nextFloat()),
    clean: Uint8Array.from({ length: captions }, (_, i) => i % 2),
    probCtt: Float32Array.from({ length: captions }, () => rng.nextFloat()),
    cleanCtt: Uint8Array.from({ length: captions }, (_, i) => (i % 3 === 0 ? 1 : 0)),
  });
  return { state, nets, banks, split: { A: netSplit(), B: netSplit() } };
}

function dispose(c: { nets: { A: { params: ParamStore }; B: { params: ParamStore } } }) {
  c.nets.A.params.dispose();
  c.nets.B.params.dispose();
}

/** Offset of the first byte of the tensor data in a safetensors file. */
function dataStart(bytes: Uint8Array): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 8);
  return 8 + dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
}

function refusal(f: () => unknown): FormatError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    return e as FormatError;
  }
  throw new Error("not refused");
}

describe("checkpoint files", () => {
  let path: string;
  let bytes: Uint8Array;

  beforeAll(async () => {
    path = join(tmp.dir, "good.safetensors");
    const c = makeCheckpoint(model);
    await saveCheckpoint(path, c);
    dispose(c);
    bytes = new Uint8Array(readFileSync(path));
  });

  test("round trip: nets, banks, learning rates and state come back exactly; no tensor leaks", async () => {
    const before = tf.memory().numTensors;
    const c = makeCheckpoint(model);
    const r = restoreCheckpoint(path, model, { optimizers: true, learningRate: 0.5 });
    for (const k of ["A", "B"] as const) {
      const want = await c.nets[k].params.toArrays();
      const got = await r.nets[k].params.toArrays();
      expect([...got.keys()]).toEqual([...want.keys()]);
      for (const [name, a] of want) expect([name, Array.from(got.get(name)!.data as Float32Array)]).toEqual([name, Array.from(a.data as Float32Array)]);
      expect(Array.from(r.banks[k].probs)).toEqual(Array.from(c.banks[k].probs));
      expect(Array.from(r.banks[k].has)).toEqual(Array.from(c.banks[k].has));
      expect(r.banks[k].classes).toBe(model.proj_dim);
    }
    expect(r.state.lr).toEqual({ A: 0.001, B: 0.0001 });
    expect(r.state.cursor).toEqual(c.state.cursor);
    expect([r.state.lrScale, r.state.restorePoint]).toEqual([c.state.lrScale, c.state.restorePoint]);
    expect(r.state.modelRng).toEqual(c.state.modelRng);
    for (const k of ["A", "B"] as const) {
      for (const f of ["prob", "clean", "probCtt", "cleanCtt"] as const) expect([k, f, Array.from(r.split![k][f])]).toEqual([k, f, Array.from(c.split![k][f])]);
    }
    expect(r.state.bestRsum).toBe(123.4);
    expect(r.state.model).toEqual(model);
    dispose(c);
    dispose(r);
    expect(tf.memory().numTensors).toBe(before);
  });

  test("encoding is deterministic: the same checkpoint gives the same bytes", async () => {
    const c = makeCheckpoint(model);
    const again = await encodeCheckpoint(c);
    dispose(c);
    expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
  });

  test("a flipped byte anywhere in the tensor data is refused: checksum mismatch", () => {
    const start = dataStart(bytes);
    for (const at of [start, start + Math.floor((bytes.length - start) / 2), bytes.length - 1]) {
      const bad = Uint8Array.from(bytes);
      bad[at] ^= 0x01;
      const p = join(tmp.dir, `flipped-${at}.safetensors`);
      writeFileSync(p, bad);
      const e = refusal(() => readCheckpointFile(p));
      expect(e.message).toContain(p);
      expect(e.message).toMatch(/checksum mismatch/);
      expect(refusal(() => restoreCheckpoint(p, model, { optimizers: true, learningRate: 1 })).message).toMatch(/checksum mismatch/);
    }
  });

  test("a changed byte anywhere in the header (names, dtypes, shapes, offsets, state) is refused", () => {
    const start = dataStart(bytes);
    const header = new TextDecoder().decode(bytes.subarray(8, start));
    // The probe that found the gap renamed a tensor (`optimizer_A.….step` to `.stdp`, dropping that
    // Adam state in silence); here a bank tensor's name, and 400 positions over the whole header.
    const name = header.indexOf("bank_A.has");
    expect(name).toBeGreaterThan(0);
    const positions = [8 + name + 8];
    for (let i = 0; i < 400; i++) positions.push(8 + Math.floor(((start - 8) * i) / 400));
    for (const at of positions) {
      const bad = Uint8Array.from(bytes);
      bad[at] = bad[at] === 0x65 ? 0x64 : bad[at] ^ 0x01; // 'e' -> 'd', else a flipped low bit
      const p = join(tmp.dir, "header-flipped.safetensors");
      writeFileSync(p, bad);
      let message = "accepted";
      try {
        restoreCheckpoint(p, model, { optimizers: true, learningRate: 1 }).nets.A.params.dispose();
      } catch (e) {
        message = (e as Error).message;
      }
      expect([at, message]).toEqual([at, expect.stringContaining(p)]);
    }
  });

  test("a truncated file is refused, naming the truncation", () => {
    const start = dataStart(bytes);
    for (const [what, length] of [
      ["in the data", bytes.length - 7],
      ["in the header", Math.floor(start / 2)],
      ["before the header length", 5],
      ["empty", 0],
    ] as const) {
      const p = join(tmp.dir, `truncated-${length}.safetensors`);
      writeFileSync(p, bytes.subarray(0, length));
      const e = refusal(() => readCheckpointFile(p));
      expect([what, e.message]).toEqual([what, expect.stringMatching(/truncated|shorter than/)]);
      expect(e.message).toContain(p);
    }
  });

  test("a checkpoint of another architecture is refused, naming the differing field and both values", () => {
    const other = { ...model, embed_size: 32 };
    const e = refusal(() => restoreCheckpoint(path, other, { optimizers: false, learningRate: 1 }));
    expect(e.message).toContain(path);
    expect(e.message).toMatch(/embed_size 16 in the checkpoint vs 32/);
    const saf = refusal(() => restoreCheckpoint(path, { ...model, module_name: "SAF" }, { optimizers: false, learningRate: 1 }));
    expect(saf.message).toMatch(/module_name "SGR" in the checkpoint vs "SAF"/);
  });

  test("a safetensors file that is not a checkpoint (official names) is refused with the reason", async () => {
    const c = makeCheckpoint(model);
    const arrays = await c.nets.A.params.toArrays();
    dispose(c);
    const p = join(tmp.dir, "official.safetensors");
    writeFileSync(p, writeSafetensors(arrays));
    expect(refusal(() => readCheckpointFile(p)).message).toMatch(/not a pc2-tfjs-checkpoint file/);
  });
});

describe("train() with --model_path refuses a bad checkpoint before training", () => {
  async function refusedRun(checkpoint: string, out: string, extra: Record<string, string | true> = {}): Promise<Error> {
    const hooks = recordingHooks();
    let error: Error | null = null;
    try {
      await train(tinyConfig(ds, out, { model_path: checkpoint, resume: true, ...extra }), hooks);
    } catch (e) {
      error = e as Error;
    }
    expect(error).not.toBeNull();
    expect(hooks.steps).toBe(0);
    // Nothing written that a later --resume could pick up.
    for (const f of [OUTPUT_FILES.latest, OUTPUT_FILES.best, OUTPUT_FILES.interrupted, OUTPUT_FILES.warmup(0)]) expect([f, existsSync(join(out, f))]).toEqual([f, false]);
    return error!;
  }

  let good: string;
  beforeAll(async () => {
    good = join(tmp.dir, "run-good.safetensors");
    const c = makeCheckpoint(model, 50);
    await saveCheckpoint(good, c);
    dispose(c);
  });

  test("corrupted data", async () => {
    const bad = Uint8Array.from(readFileSync(good));
    bad[bad.length - 100] ^= 0x80;
    const p = join(tmp.dir, "run-corrupt.safetensors");
    writeFileSync(p, bad);
    const e = await refusedRun(p, join(tmp.dir, "out-corrupt"));
    expect(e).toBeInstanceOf(FormatError);
    expect(e.message).toMatch(/checksum mismatch/);
  });

  test("truncated", async () => {
    const p = join(tmp.dir, "run-truncated.safetensors");
    writeFileSync(p, readFileSync(good).subarray(0, 1000));
    const e = await refusedRun(p, join(tmp.dir, "out-truncated"));
    expect(e).toBeInstanceOf(FormatError);
    expect(e.message).toMatch(/truncated/);
  });

  test("different embed_size (also without --resume, as a warmup checkpoint)", async () => {
    for (const resume of [true, false]) {
      const out = join(tmp.dir, `out-mismatch-${resume}`);
      const hooks = recordingHooks();
      let error: Error | null = null;
      try {
        await train(tinyConfig(ds, out, resume ? { model_path: good, resume: true, embed_size: "24" } : { model_path: good, embed_size: "24" }), hooks);
      } catch (e) {
        error = e as Error;
      }
      expect(error).toBeInstanceOf(FormatError);
      expect(error!.message).toMatch(/embed_size 16 in the checkpoint vs 24/);
      expect(hooks.steps).toBe(0);
      expect(leftoverTemporaries(out)).toEqual([]);
    }
  });

  test("a PO bank of another training split", async () => {
    const p = join(tmp.dir, "run-other-split.safetensors");
    const c = makeCheckpoint(model, 51);
    await saveCheckpoint(p, c);
    dispose(c);
    const e = await refusedRun(p, join(tmp.dir, "out-other-split"));
    expect(e).toBeInstanceOf(TrainingFault);
    expect(e.message).toMatch(/PO bank A holds 51 captions, the training split has 50/);
  });

  test("a missing file", async () => {
    const e = await refusedRun(join(tmp.dir, "nope.safetensors"), join(tmp.dir, "out-missing"));
    expect(e).toBeInstanceOf(TrainingFault);
    expect(e.message).toContain("nope.safetensors");
  });
});
