import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import { readSafetensors } from "../shared/formats/safetensors";
import { ParamStore } from "../shared/model/params";
import { sgrafConfig } from "../shared/model/config";
import { forwardEmb, headTextInput } from "../shared/model/steps";
import { EVAL, captionSide, imageSide, projectionHead, similarity } from "../shared/model/sgraf";
import { contrastiveLoss } from "../shared/model/losses";
import { registerMissingKernels } from "../shared/model/kernels";

await tf.setBackend(process.env.BK ?? "cpu"); await tf.ready(); registerMissingKernels();
const root = "/work/shared/reference/sgraf-small/";
for (const c of ["forward_eval_sgr", "forward_eval_saf", "forward_eval_sgr_long", "forward_eval_saf_long"]) {
  const cas = JSON.parse(await Bun.file(root + c + "/case.json").text());
  const w = readSafetensors(new Uint8Array(await Bun.file(root + c + "/weights.safetensors").arrayBuffer()), c);
  const t = readSafetensors(new Uint8Array(await Bun.file(root + c + "/tensors.safetensors").arrayBuffer()), c).tensors;
  const cfg = sgrafConfig(cas.config);
  const p = ParamStore.fromArrays(cfg, w.tensors, c);
  const lengths = Int32Array.from(t.get("input.lengths")!.data as BigInt64Array, Number);
  const batch = { images: t.get("input.images")!.data as Float32Array, captions: Int32Array.from(t.get("input.captions")!.data as BigInt64Array, Number), lengths };
  const res = tf.tidy(() => {
    const { img, cap } = forwardEmb(p, batch, EVAL);
    const sims = similarity(p, imageSide(p, img, EVAL), captionSide(p, cap, lengths, EVAL), EVAL);
    const il = projectionHead(p, img); const tl = projectionHead(p, headTextInput(cap));
    const loss = contrastiveLoss(sims, { margin: 0.2, mode: "eval_loss" });
    return { img_emb: img.dataSync(), cap_emb: cap.dataSync(), sims: sims.dataSync(), img_logits: il.dataSync(), txt_logits: tl.dataSync(), eval_loss: loss.dataSync() };
  });
  for (const [k, v] of Object.entries(res)) {
    const e = t.get("expect." + k)!.data as Float32Array;
    let maxAbs = 0, maxRef = 0;
    for (let i = 0; i < e.length; i++) { maxAbs = Math.max(maxAbs, Math.abs(e[i] - v[i])); maxRef = Math.max(maxRef, Math.abs(e[i])); }
    console.log(c, k, e.length === v.length ? "" : `LEN ${e.length} vs ${v.length}`, "maxAbs", maxAbs.toExponential(2), "rel", (maxAbs / maxRef).toExponential(2));
  }
}
