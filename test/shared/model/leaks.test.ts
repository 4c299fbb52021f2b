/**
 * No public tensor function of the model leaks tensors: tf.memory().numTensors is the same
 * before and after each call (on the wasm backend, with the kernels the trainer registers).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import * as tf from "../../../shared/model/tf";
import { initBackend } from "../../../trainer/backend";
import { sgrafConfig } from "../../../shared/model/config";
import { ParamStore } from "../../../shared/model/params";
import { Adam } from "../../../shared/model/optim";
import { type ModelBatch, evalLoss, trainStep, unlabeledStep } from "../../../shared/model/steps";
import { encodeCaptions, encodeImages, similarityMatrix } from "../../../shared/model/inference";
import { decodeModelPackage, encodeModelPackage, MODEL_JSON } from "../../../shared/model/package";
import { Random } from "../../../shared/random";

function batch(rng: Random, B: number, imgDim: number, vocab: number): ModelBatch {
  const lengths = Int32Array.from({ length: B }, (_, i) => 3 + (i % 4));
  const T = Math.max(...lengths);
  const captions = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < lengths[b]; t++) captions[b * T + t] = 1 + rng.nextInt(vocab - 1);
  return { images: rng.uniformArray(B * 36 * imgDim, 0, 1), captions, lengths };
}

for (const module_name of ["SGR", "SAF"] as const) {
  describe(`no tensor leaks (${module_name})`, () => {
    const cfg = sgrafConfig({ img_dim: 10, embed_size: 8, word_dim: 6, sim_dim: 4, proj_dim: 3, vocab_size: 20, module_name });
    const rng = new Random(1);
    let net: { params: ParamStore; optimizer: Adam };
    const o = { margin: 0.2, lambdaEn: 10, gradClip: 2, softMargin: "exponential" as const, hardNegative: true, rng };
    beforeAll(async () => {
      await initBackend("wasm");
      net = { params: ParamStore.init(cfg, rng), optimizer: new Adam() };
      // The optimizer's state is created on the first step: take one before counting.
      trainStep(net, batch(rng, 5, 10, 20), "warmup", o);
    });

    const cases: Array<[string, () => unknown]> = [
      ["trainStep warmup", () => trainStep(net, batch(rng, 5, 10, 20), "warmup", o)],
      ["trainStep warmup_sele", () => trainStep(net, batch(rng, 6, 10, 20), "warmup_sele", o)],
      ["trainStep lb_train", () => trainStep(net, batch(rng, 5, 10, 20), "lb_train", o, { values: Float32Array.of(1, 0.5, 0.2, 0.9, 0), axis: "row" }, true)],
      ["unlabeledStep", () => unlabeledStep(net, batch(rng, 4, 10, 20), batch(rng, 5, 10, 20), o, true)],
      ["evalLoss", () => evalLoss(net.params, batch(rng, 5, 10, 20), 0.2)],
      [
        "encode + similarityMatrix",
        () => {
          const b = batch(rng, 3, 10, 20);
          return similarityMatrix(net.params, encodeImages(net.params, b.images, 3), encodeCaptions(net.params, b.captions, b.lengths), { budgetBytes: 4096 });
        },
      ],
      [
        "init + dispose",
        () => {
          const p = ParamStore.init(cfg, rng);
          p.dispose();
        },
      ],
    ];
    for (const [name, run] of cases) {
      test(name, () => {
        run(); // warm: lazily created constants
        const before = tf.memory().numTensors;
        for (let i = 0; i < 3; i++) run();
        expect(tf.memory().numTensors).toBe(before);
      });
    }

    test("package encode/decode", async () => {
      const files = await encodeModelPackage({ config: cfg, netNames: ["A"], nets: [net.params], dtype: "uint8", vocab: null });
      const before = tf.memory().numTensors;
      const pkg = await decodeModelPackage(files.get(MODEL_JSON)!, (n) => files.get(n)!, "mem");
      // The decoded nets own exactly their parameters and buffers; nothing else stays alive.
      expect(tf.memory().numTensors - before).toBe(pkg.nets.reduce((s, p) => s + p.vars.size + p.buffers.size, 0));
      for (const p of pkg.nets) p.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}
