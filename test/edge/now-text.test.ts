/**
 * NoW end to end: a tiny NoW-layout dataset with Chinese captions and Jieba ids
 * (trainer/data/now-synthetic.ts), a few training steps, `bun run export`, and the edge queried in
 * Chinese. The ids the edge makes of a caption must be the ids of that caption's line in
 * `test_caps_jieba.txt`. The same nets exported for NoW's bpe captions take ids only, or text
 * through a user's tokenizer.json.
 */
import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Hono } from "hono";
import { createApp } from "../../edge/app.ts";
import { WORKER_WITHOUT_JIEBA } from "../../edge/worker-text.ts";
import { Vocabulary } from "../../shared/formats/vocab";
import { Pc2Engine } from "../../shared/retrieval/pc2-engine";
import { main as exportMain } from "../../trainer/cli/export";
import { main as trainMain } from "../../trainer/cli/train";
import { OUTPUT_FILES } from "../../trainer/train";
import type { NowSyntheticDataset } from "../../trainer/data/now-synthetic";
import { readModelDir } from "../../trainer/models";
import { tempDir, TINY_FLAGS } from "../trainer/train-fixtures";
import { exportQuietly, trainNowJieba } from "./now-model.ts";

const tmp = tempDir("pc2-now-text-");
let ds: NowSyntheticDataset;
let checkpoint = "";

async function exported(name: string, extra: string[] = []): Promise<{ engine: Pc2Engine; app: Hono; out: string }> {
  const out = join(tmp.dir, name);
  expect(await exportQuietly(checkpoint, out, extra)).toBe(0);
  const engine = new Pc2Engine(await readModelDir(out));
  return { engine, app: createApp({ engine }), out };
}

async function post(app: Hono, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const r = await app.request(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

beforeAll(async () => {
  ({ ds, checkpoint } = await trainNowJieba(tmp.dir));
}, 300_000);

afterAll(() => tmp.cleanup());

describe("a NoW model trained on Jieba ids answers Chinese text", () => {
  let engine: Pc2Engine;
  let app: Hono;
  let out = "";

  beforeAll(async () => {
    ({ engine, app, out } = await exported("model-jieba"));
  }, 120_000);

  test("the package names Jieba and its vocabulary, with their SHA-256", () => {
    const json = engine.pkg.json;
    expect(json.text).toMatchObject({ kind: "words", vocab: "vocab.json", dataset: "jieba", tokenizer: { kind: "jieba", files: [] } });
    expect(json.files["vocab.json"].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(engine.pkg.vocab!.idx).toBe(ds.vocab.idx);
  });

  test("the edge's ids of every test caption are its line in test_caps_jieba.txt", async () => {
    const lines = readFileSync(join(ds.dataPath, "now100k_precomp/test_caps_jieba.txt"), "utf8").trimEnd().split("\n");
    expect(lines.length).toBe(ds.captions.test.length);
    for (const [i, caption] of ds.captions.test.entries()) {
      const ids = Array.from(await engine.tokens({ text: caption }));
      expect([caption, ids.slice(1, -1).join(",")]).toEqual([caption, lines[i]]);
      expect([ids[0], ids.at(-1)]).toEqual([ds.vocab.start, ds.vocab.end]);
    }
  });

  test("the gallery's caption texts are the Chinese captions", () => {
    expect(engine.pkg.gallery!.texts).toEqual(ds.captions.test);
  });

  test("/v1/model reports the tokenizer", async () => {
    const r = await app.request("/v1/model");
    const body = (await r.json()) as any;
    expect(body.text).toMatchObject({ accepts: "text", dataset: "jieba", note: null, tokenizer: { kind: "jieba", files: [], sha256: {} } });
  });

  test("a Chinese text search ranks as the same caption sent as ids", async () => {
    const caption = ds.captions.test[2];
    const ids = Array.from(await engine.tokens({ text: caption }));
    const byText = await post(app, "/v1/search/images", { text: caption, k: 6 });
    const byIds = await post(app, "/v1/search/images", { tokens: ids, k: 6 });
    expect(byText.status).toBe(200);
    expect(byText.body.results.length).toBe(6);
    expect(byText.body).toEqual(byIds.body);
  });

  test("/openapi.json describes text by tokenizer", async () => {
    const doc = (await (await app.request("/openapi.json")).json()) as any;
    const schema = doc.paths["/v1/search/images"].post.requestBody.content["application/json"].schema;
    expect(JSON.stringify(schema)).toContain("jieba.lcut (--tokenizer jieba)");
  });

  test("served by edge/worker.ts (no Jieba): text is a 501 naming edge/worker-jieba.ts, token ids still rank", async () => {
    const worker = createApp({ engine: new Pc2Engine(await readModelDir(out), { jieba: WORKER_WITHOUT_JIEBA }) });
    const caption = ds.captions.test[2];
    const byText = await post(worker, "/v1/search/images", { text: caption, k: 6 });
    expect(byText.status).toBe(501);
    expect(byText.body.error.message).toBe(`text: Jieba is not available: ${WORKER_WITHOUT_JIEBA.unavailable}; token ids (\`tokens\`) still work here`);
    expect(byText.body.error.message).toContain("edge/worker-jieba.ts");
    const tokens = Array.from(await engine.tokens({ text: caption }));
    const byIds = await post(worker, "/v1/search/images", { tokens, k: 6 });
    expect(byIds).toEqual(await post(app, "/v1/search/images", { text: caption, k: 6 }));
  });

  test("text of words the vocabulary lacks is a 400 naming the tokenizer", async () => {
    const r = await post(app, "/v1/search/images", { text: "量子纠缠" });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/^text: no word of the query is in the model's vocabulary \(2 words from the model's jieba tokenizer \(NoW --tokenizer jieba\), all unknown\)$/);
  });
});

describe("the same nets exported for NoW's bpe captions", () => {
  let bpeVocab: Vocabulary;
  let vocabDir = "";

  beforeAll(() => {
    // A BPE vocabulary of the model's size: the pieces a tiny BPE makes of two captions' words.
    bpeVocab = Vocabulary.fromWords(["支", "付", "宝", "支付", "支付宝", "扫", "码", "扫码"]);
    vocabDir = join(tmp.dir, "bpe-vocab");
    const padded = { ...bpeVocab.toJSON(), idx: ds.vocab.idx };
    mkdirSync(vocabDir, { recursive: true });
    writeFileSync(join(vocabDir, "now100k_precomp_vocab_bpe.json"), JSON.stringify(padded));
  });

  const flags = () => ["--data_path", ds.dataPath, "--data_name", ds.dataName, "--vocab_path", vocabDir, "--tokenizer", "bpe"];

  test("without a tokenizer.json: token ids only, and /v1/model and the 400 say why", async () => {
    // The gallery's ids are Jieba's here; only the text side matters.
    writeFileSync(join(ds.dataPath, "now100k_precomp/test_caps_bpe.txt"), readFileSync(join(ds.dataPath, "now100k_precomp/test_caps_jieba.txt")));
    const { engine, app } = await exported("model-bpe", flags());
    expect(engine.pkg.json.text).toMatchObject({ kind: "ids", tokenizer: "bpe" });
    const info = (await (await app.request("/v1/model")).json()) as any;
    expect(info.text).toMatchObject({ accepts: "tokens", tokenizer: null, dataset: "bpe", note: expect.stringContaining("--tokenizer_json") });
    const r = await post(app, "/v1/search/images", { text: "支付宝扫码" });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain("merges");
  });

  test("with a user's tokenizer.json: packaged with its SHA-256, text through BPE", async () => {
    const file = join(tmp.dir, "bpe-tokenizer.json");
    writeFileSync(file, readFileSync(join(import.meta.dir, "fixtures/bpe-tokenizer.json")));
    const { engine, app } = await exported("model-bpe-json", [...flags(), "--tokenizer_json", file]);
    expect(engine.pkg.json.text).toMatchObject({ kind: "words", dataset: "bpe", tokenizer: { kind: "tokenizer.json", files: ["tokenizer.json"] } });
    const sha = new Bun.CryptoHasher("sha256").update(readFileSync(file)).digest("hex");
    const info = (await (await app.request("/v1/model")).json()) as any;
    expect(info.text.tokenizer.sha256).toEqual({ "tokenizer.json": sha });
    const v = bpeVocab;
    expect(Array.from(await engine.tokens({ text: "支付宝扫码付款" }))).toEqual([v.start, v.id("支付宝"), v.id("扫码"), v.id("付"), v.unk, v.end]);
    expect((await post(app, "/v1/search/images", { text: "支付宝扫码" })).status).toBe(200);
  });

  test("a tokenizer.json is refused for Jieba captions", async () => {
    const log = console.error;
    console.error = () => {};
    try {
      const code = await exportMain(["--model_path", checkpoint, "--out", join(tmp.dir, "x"), "--tokenizer_json", join(import.meta.dir, "fixtures/bpe-tokenizer.json"), "--backend", "wasm"]);
      expect(code).toBe(1);
    } finally {
      console.error = log;
    }
  });
});

describe("bun run train --tokenizer bpe --tokenizer_json", () => {
  test("the model the run exports takes text through the tokenizer.json; a later export of its checkpoint too", async () => {
    // NoW's bpe layout over the Jieba ids: the run only needs files under the bpe names.
    const data = join(tmp.dir, "bpe-data");
    mkdirSync(join(data, "now100k_precomp"), { recursive: true });
    mkdirSync(join(data, "vocab"), { recursive: true });
    for (const split of ["train", "dev", "test"]) {
      for (const f of [`${split}_ims.npy`, `${split}_caps_jieba.txt`]) copyFileSync(join(ds.dataPath, "now100k_precomp", f), join(data, "now100k_precomp", f.replace("jieba", "bpe")));
    }
    // The Jieba vocabulary with two of the fixture BPE's pieces appended (ids of the captions unchanged).
    const vocab = structuredClone(ds.vocab.toJSON());
    for (const piece of ["支付宝", "扫码"]) {
      vocab.word2idx[piece] = vocab.idx;
      vocab.idx2word[String(vocab.idx++)] = piece;
    }
    writeFileSync(join(data, "vocab/now100k_precomp_vocab_bpe.json"), JSON.stringify(vocab));
    const file = join(import.meta.dir, "fixtures/bpe-tokenizer.json");
    const sha = new Bun.CryptoHasher("sha256").update(readFileSync(file)).digest("hex");
    const run = join(tmp.dir, "bpe-run");
    const flags = { ...TINY_FLAGS, data_path: data, data_name: ds.dataName, vocab_path: join(data, "vocab"), tokenizer: "bpe", img_dim: String(ds.imgDim), noise_ratio: "0", output_dir: run, backend: "wasm", eval_workers: "1", tokenizer_json: file };
    const log = spyOn(console, "log").mockImplementation(() => {});
    try {
      expect(await trainMain(Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v]))).toBe(0);
    } finally {
      log.mockRestore();
    }
    const expectBpeText = async (dir: string) => {
      const engine = new Pc2Engine(await readModelDir(dir));
      expect(engine.pkg.json.text).toMatchObject({ kind: "words", dataset: "bpe", tokenizer: { kind: "tokenizer.json", files: ["tokenizer.json"] } });
      expect(engine.pkg.json.files["tokenizer.json"].sha256).toBe(sha);
      const v = new Vocabulary(vocab, "vocab");
      // BPE: 支付宝 扫码 付 款; the last two are not in the vocabulary.
      expect(Array.from(await engine.tokens({ text: "支付宝扫码付款" }))).toEqual([v.start, v.id("支付宝"), v.id("扫码"), v.unk, v.unk, v.end]);
      expect(v.id("扫码")).toBe(ds.vocab.idx + 1);
    };
    await expectBpeText(join(run, OUTPUT_FILES.model));
    const again = join(tmp.dir, "bpe-reexport");
    expect(await exportQuietly(join(run, OUTPUT_FILES.latest), again)).toBe(0);
    await expectBpeText(again);
  }, 300_000);
});
