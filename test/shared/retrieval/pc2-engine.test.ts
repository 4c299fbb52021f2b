/**
 * Pc2Engine's text side on the committed quick model: text becomes `<start>` words `<end>` through
 * the model's vocabulary, and text that names nothing the model knows is the caller's mistake.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import type { ModelPackage } from "../../../shared/model/package";
import { EngineInputError } from "../../../shared/retrieval/engine";
import { Pc2Engine } from "../../../shared/retrieval/pc2-engine";
import { initBackend } from "../../../trainer/backend";
import { readModelDir } from "../../../trainer/models";
import { QUICK_MODEL_DIR } from "../../../trainer/quick-eval";

let pkg: ModelPackage;
let engine: Pc2Engine;

beforeAll(async () => {
  await initBackend("cpu");
  pkg = await readModelDir(QUICK_MODEL_DIR);
  engine = new Pc2Engine(pkg);
});

async function refusal(text: string): Promise<string> {
  try {
    await engine.tokens({ text });
  } catch (e) {
    expect(e).toBeInstanceOf(EngineInputError);
    return (e as Error).message;
  }
  return "accepted";
}

describe("Pc2Engine.tokens", () => {
  test("known words map through the vocabulary between <start> and <end>", async () => {
    const v = pkg.vocab!;
    const [w1, w2] = [v.idx2word["4"], v.idx2word["5"]];
    const ids = Array.from(await engine.tokens({ text: `${w1} ${w2} zzqqxx` }));
    expect(ids).toEqual([v.word2idx["<start>"], 4, 5, v.word2idx["<unk>"], v.word2idx["<end>"]]);
  });

  test("text of unknown words only is a 400-class error naming the cause", async () => {
    for (const text of ["\u200b", "-", "\u0000", "\u0301", "zzqqxx qqzzyy"]) {
      expect([text, await refusal(text)]).toEqual([text, expect.stringMatching(/^text: (no word of the query is in the model's vocabulary|tokenizes to no words)/)]);
    }
  });

  test("ids sent as tokens pass as they are (the app checks them against vocabSize and maxTokens)", async () => {
    expect(Array.from(await engine.tokens({ tokens: [1, 3, 2] }))).toEqual([1, 3, 2]);
  });
});
