/**
 * Pairs per second of the evaluation similarity (image side once per image, caption side once per
 * caption, captions × images by shards) on one backend, at the reference fixture size and at
 * embed 1024 / sim 256 (random weights).   bun benchmarks/similarity.ts [--backend wasm] [--reps 3]
 */
import { parseArgs } from "node:util";
import { type BackendChoice, initBackend } from "../trainer/backend";
import { sgrafConfig } from "../shared/model/config";
import { ParamStore } from "../shared/model/params";
import { encodeCaptions, encodeImages, similarityMatrix } from "../shared/model/inference";
import { Random } from "../shared/random";

const { values } = parseArgs({ options: { backend: { type: "string", default: "wasm" }, reps: { type: "string", default: "3" } } });
const info = await initBackend(values.backend as BackendChoice);
console.log(`backend ${info.name}; caption length 12 words on average`);

const setups = [
  { name: "fixture size (img 20, embed 16, sim 8)", cfg: { img_dim: 20, embed_size: 16, word_dim: 12, sim_dim: 8, proj_dim: 5, vocab_size: 40 }, images: 100, captions: 500 },
  { name: "e2e size (img 48, embed 64, sim 32)", cfg: { img_dim: 48, embed_size: 64, word_dim: 32, sim_dim: 32, proj_dim: 16, vocab_size: 70 }, images: 100, captions: 500 },
  { name: "official size (img 2048, embed 1024, sim 256)", cfg: { img_dim: 2048, embed_size: 1024, word_dim: 300, sim_dim: 256, proj_dim: 128, vocab_size: 1000 }, images: 20, captions: 100 },
];
for (const s of setups) {
  for (const module_name of ["SGR", "SAF"] as const) {
    const cfg = sgrafConfig({ ...s.cfg, module_name });
    const rng = new Random(0);
    const p = ParamStore.init(cfg, rng);
    const imgs = encodeImages(p, rng.uniformArray(s.images * 36 * cfg.img_dim, 0, 1), s.images);
    const lengths = Int32Array.from({ length: s.captions }, () => 8 + rng.nextInt(9));
    const T = Math.max(...lengths);
    const tokens = new Int32Array(s.captions * T);
    for (let c = 0; c < s.captions; c++) for (let t = 0; t < lengths[c]; t++) tokens[c * T + t] = 1 + rng.nextInt(cfg.vocab_size - 1);
    const caps = encodeCaptions(p, tokens, lengths);
    const times: number[] = [];
    for (let r = 0; r < Number(values.reps); r++) {
      const t0 = performance.now();
      similarityMatrix(p, imgs, caps);
      times.push((performance.now() - t0) / 1000);
    }
    times.sort((a, b) => a - b);
    const med = times[Math.floor(times.length / 2)];
    console.log(`${s.name} ${module_name}: ${s.images} x ${s.captions} pairs in ${med.toFixed(2)} s (median of ${times.length}): ${Math.round((s.images * s.captions) / med)} pairs/s`);
    p.dispose();
  }
}
