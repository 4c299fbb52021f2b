/**
 * The parameter registry of one SGRAF network: one flat map keyed by the official PyTorch
 * state_dict names (`img_enc.fc.weight`, `txt_enc.cap_rnn.weight_ih_l0_reverse`, …), so that an
 * official checkpoint converted to safetensors loads as it is.
 */
import * as tf from "./tf";
import { FormatError, type NdArray, numel } from "../formats/ndarray";
import type { Random } from "../random";
import { PROJ_HIDDEN, REGIONS, type SgrafConfig } from "./config";
import { freezeWeight, releaseWeight } from "./ops";
import { type Int8Matrix, isInt8 } from "./quantized";

/** A weight as the model reads it: a tensor, or a matrix held as int8 for serving (quantized.ts). */
export type Weight = tf.Tensor | Int8Matrix;

type Init =
  | { kind: "xavier"; fanIn: number; fanOut: number } // the official init_weights: U(±sqrt(6/(in+out)))
  | { kind: "uniform"; bound: number } // PyTorch defaults (Linear, GRU) and the embedding's U(±0.1)
  | { kind: "const"; value: number };

export interface ParamSpec {
  name: string;
  shape: number[];
  init: Init;
  /** Batch-norm running statistics and counters: state, not trained. */
  buffer: boolean;
}

const zeros: Init = { kind: "const", value: 0 };
const ones: Init = { kind: "const", value: 1 };

function linear(prefix: string, inF: number, outF: number, xavier: boolean): ParamSpec[] {
  const bound = 1 / Math.sqrt(inF);
  return [
    { name: `${prefix}.weight`, shape: [outF, inF], init: xavier ? { kind: "xavier", fanIn: inF, fanOut: outF } : { kind: "uniform", bound }, buffer: false },
    { name: `${prefix}.bias`, shape: [outF], init: xavier ? zeros : { kind: "uniform", bound }, buffer: false },
  ];
}

function batchNorm(prefix: string, c: number): ParamSpec[] {
  return [
    { name: `${prefix}.weight`, shape: [c], init: ones, buffer: false },
    { name: `${prefix}.bias`, shape: [c], init: zeros, buffer: false },
    { name: `${prefix}.running_mean`, shape: [c], init: zeros, buffer: true },
    { name: `${prefix}.running_var`, shape: [c], init: ones, buffer: true },
    { name: `${prefix}.num_batches_tracked`, shape: [1], init: zeros, buffer: true },
  ];
}

/** GRU parameter names per layer and direction, in PyTorch's order. */
export function gruNames(layer: number, reverse: boolean) {
  const s = `_l${layer}${reverse ? "_reverse" : ""}`;
  return {
    wIh: `txt_enc.cap_rnn.weight_ih${s}`,
    wHh: `txt_enc.cap_rnn.weight_hh${s}`,
    bIh: `txt_enc.cap_rnn.bias_ih${s}`,
    bHh: `txt_enc.cap_rnn.bias_hh${s}`,
  };
}

/** Every parameter and buffer of the official `SGRAF` class, in state_dict order per module. */
export function paramSpecs(cfg: SgrafConfig): ParamSpec[] {
  const E = cfg.embed_size;
  const S = cfg.sim_dim;
  const specs: ParamSpec[] = [];
  specs.push(...linear("img_enc.fc", cfg.img_dim, E, true));

  specs.push({ name: "txt_enc.embed.weight", shape: [cfg.vocab_size, cfg.word_dim], init: { kind: "uniform", bound: 0.1 }, buffer: false });
  const dirs = cfg.bi_gru ? [false, true] : [false];
  const gruBound = 1 / Math.sqrt(E);
  for (let l = 0; l < cfg.num_layers; l++) {
    const inF = l === 0 ? cfg.word_dim : E * dirs.length;
    for (const rev of dirs) {
      const n = gruNames(l, rev);
      const u: Init = { kind: "uniform", bound: gruBound };
      specs.push({ name: n.wIh, shape: [3 * E, inF], init: u, buffer: false });
      specs.push({ name: n.wHh, shape: [3 * E, E], init: u, buffer: false });
      specs.push({ name: n.bIh, shape: [3 * E], init: u, buffer: false });
      specs.push({ name: n.bHh, shape: [3 * E], init: u, buffer: false });
    }
  }

  specs.push(...linear("sim_enc.v_global_w.embedding_local.0", E, E, true));
  specs.push(...batchNorm("sim_enc.v_global_w.embedding_local.1", REGIONS));
  specs.push(...linear("sim_enc.v_global_w.embedding_global.0", E, E, true));
  specs.push(...batchNorm("sim_enc.v_global_w.embedding_global.1", E));
  specs.push(...linear("sim_enc.v_global_w.embedding_common.0", E, 1, true));
  specs.push(...linear("sim_enc.t_global_w.embedding_local.0", E, E, true));
  specs.push(...linear("sim_enc.t_global_w.embedding_global.0", E, E, true));
  specs.push(...linear("sim_enc.t_global_w.embedding_common.0", E, 1, true));
  specs.push(...linear("sim_enc.sim_tranloc_w", E, S, true));
  specs.push(...linear("sim_enc.sim_tranglo_w", E, S, true));
  specs.push(...linear("sim_enc.sim_eval_w", S, 1, true));
  if (cfg.module_name === "SGR") {
    for (let k = 0; k < cfg.sgr_step; k++) {
      specs.push(...linear(`sim_enc.SGR_module.${k}.graph_query_w`, S, S, true));
      specs.push(...linear(`sim_enc.SGR_module.${k}.graph_key_w`, S, S, true));
      specs.push(...linear(`sim_enc.SGR_module.${k}.sim_graph_w`, S, S, true));
    }
  } else {
    specs.push(...linear("sim_enc.SAF_module.attn_sim_w", S, 1, true));
    specs.push(...batchNorm("sim_enc.SAF_module.bn", 1));
  }

  // The official code builds the head for 36 x 1024 inputs whatever embed_size is (a listed defect).
  specs.push(...linear("img_pro_head.first_hidden_layer.fc", REGIONS * E, PROJ_HIDDEN, false));
  specs.push(...linear("img_pro_head.output_layer", PROJ_HIDDEN, cfg.proj_dim, false));
  return specs;
}

/**
 * Parameters only training uses: PC2's pseudo-classification head (img_pro_head). Retrieval never
 * reads it; at the paper's size it is 37.7 MB of a net's 110 MB float32.
 */
export function trainingOnly(name: string): boolean {
  return name.startsWith("img_pro_head.");
}

/** The parameters retrieval reads (an inference model's): every one but the training-only. */
export function inferenceSpecs(cfg: SgrafConfig): ParamSpec[] {
  return paramSpecs(cfg).filter((s) => !trainingOnly(s.name));
}

/**
 * Matrices a served net may hold as int8 (DecodeOptions.weights): the encoders' (image, text and
 * the two self-attention poolings), each read once per query item. Not the similarity's: a
 * re-ranking multiplies by them for every shortlisted pair, where tfjs's float32 products are the
 * faster, and they are small (a paper-size net's 1.3 MB of 18 M values).
 */
export function heldAsInt8(spec: ParamSpec): boolean {
  return spec.shape.length === 2 && !spec.buffer && /^(img_enc|txt_enc|sim_enc\.v_global_w|sim_enc\.t_global_w)\./.test(spec.name);
}

/** 2-D weights that inference reads as they are: the word embeddings (gathered) and tranglo's weight (stage-one.ts). */
const READ_UNTRANSPOSED = new Set(["txt_enc.embed.weight", "sim_enc.sim_tranglo_w.weight"]);

function initValues(spec: ParamSpec, rng: Random): Float32Array {
  const n = numel(spec.shape);
  const init = spec.init;
  if (init.kind === "const") return new Float32Array(n).fill(init.value);
  const bound = init.kind === "xavier" ? Math.sqrt(6) / Math.sqrt(init.fanIn + init.fanOut) : init.bound;
  return rng.uniformArray(n, -bound, bound);
}

let instanceCounter = 0;

/**
 * Trainable parameters (tf.Variables, so gradients can be taken by name) and buffers of one network.
 * Variable names carry a unique prefix because tfjs variable names are global.
 */
export class ParamStore {
  readonly specs: ParamSpec[];
  readonly vars = new Map<string, tf.Variable>();
  readonly buffers = new Map<string, tf.Tensor>();
  /** Matrices held as int8 (a package decoded with weights "int8"): no tensor, no gradient. */
  readonly int8 = new Map<string, Int8Matrix>();
  private readonly prefix = `sgraf${instanceCounter++}/`;

  constructor(
    readonly config: SgrafConfig,
    values: (spec: ParamSpec) => Float32Array | Int8Matrix,
    /** An inference model: without the training-only parameters (inferenceSpecs). */
    readonly inference = false,
  ) {
    this.specs = inference ? inferenceSpecs(config) : paramSpecs(config);
    for (const s of this.specs) {
      const value = values(s);
      if (isInt8(value)) {
        if (s.buffer || s.shape.length !== 2 || value.shape.join() !== s.shape.join()) throw new Error(`${s.name} cannot be held as int8 (shape [${s.shape}])`);
        this.int8.set(s.name, value);
        continue;
      }
      const t = tf.tensor(value, s.shape, "float32");
      if (s.buffer) this.buffers.set(s.name, t);
      else {
        this.vars.set(s.name, tf.variable(t, true, this.prefix + s.name));
        t.dispose();
      }
    }
  }

  /** Fresh parameters initialised as the official code does. */
  static init(config: SgrafConfig, rng: Random): ParamStore {
    return new ParamStore(config, (s) => initValues(s, rng));
  }

  /**
   * Parameters from named arrays (a safetensors file): every expected name must be present with its
   * shape; `num_batches_tracked` may be a scalar or `[1]`; extra names are an error. An inference
   * store (`inference`) expects no training-only parameter and ignores those present.
   */
  static fromArrays(
    config: SgrafConfig,
    arrays: Map<string, NdArray>,
    source: string,
    prefix = "",
    inference = false,
    /** The int8 matrix to hold for a parameter instead of its float32 values, if any. */
    int8?: (spec: ParamSpec, array: NdArray) => Int8Matrix | undefined,
  ): ParamStore {
    const specs = inference ? inferenceSpecs(config) : paramSpecs(config);
    const expected = new Set(specs.map((s) => prefix + s.name));
    // num_batches_tracked only counts steps (momentum is fixed at 0.1): absent, it starts at 0.
    const optional = (s: ParamSpec) => s.name.endsWith("num_batches_tracked");
    const missing = specs.filter((s) => !arrays.has(prefix + s.name) && !optional(s)).map((s) => prefix + s.name);
    if (missing.length) throw new FormatError(source, `missing parameters: ${missing.slice(0, 8).join(", ")}${missing.length > 8 ? ` and ${missing.length - 8} more` : ""}`);
    const extra = [...arrays.keys()].filter((k) => k.startsWith(prefix) && !expected.has(k) && !(inference && trainingOnly(k.slice(prefix.length))));
    if (extra.length) throw new FormatError(source, `unexpected parameters for this configuration: ${extra.slice(0, 8).join(", ")}`);
    for (const s of specs) {
      const a = arrays.get(prefix + s.name);
      if (!a) continue;
      const okShape = s.name.endsWith("num_batches_tracked") ? numel(a.shape) === 1 : a.shape.length === s.shape.length && a.shape.every((d, i) => d === s.shape[i]);
      if (!okShape) throw new FormatError(source, `parameter ${prefix + s.name} has shape [${a.shape}], expected [${s.shape}]`);
    }
    return new ParamStore(
      config,
      (s) => {
        const a = arrays.get(prefix + s.name);
        if (!a) return new Float32Array(1);
        const held = int8?.(s, a);
        if (held) return held;
        const data = a.data; // read once: a package's arrays decode on each read
        return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>, Number);
      },
      inference,
    );
  }

  /** A parameter or buffer tensor by official name. */
  get(name: string): tf.Tensor {
    const t = this.vars.get(name) ?? this.buffers.get(name);
    if (!t) {
      if (this.int8.has(name)) throw new Error(`${name} is held as int8 for serving and has no tensor (read it through weight())`);
      throw new Error(`no parameter named ${name}`);
    }
    return t;
  }

  /** A weight as products read it: its tensor, or its int8 matrix (ops.ts linear takes both). */
  weight(name: string): Weight {
    return this.int8.get(name) ?? this.get(name);
  }

  /** Trainable variables in the official optimizer order (txt_enc, img_enc, sim_enc, img_pro_head). */
  trainable(): tf.Variable[] {
    const order = ["txt_enc.", "img_enc.", "sim_enc.", "img_pro_head."];
    return order.flatMap((p) => [...this.vars.entries()].filter(([k]) => k.startsWith(p)).map(([, v]) => v));
  }

  /** Official name of a variable of this store. */
  nameOf(v: tf.Variable): string {
    return v.name.slice(this.prefix.length);
  }

  /** Replaces a buffer (disposing the old tensor). */
  setBuffer(name: string, value: tf.Tensor): void {
    const old = this.buffers.get(name);
    if (!old) throw new Error(`no buffer named ${name}`);
    this.buffers.set(name, tf.keep(value));
    old.dispose();
  }

  /** All values as plain arrays in state_dict order, for safetensors. */
  async toArrays(): Promise<Map<string, { dtype: "float32" | "int64"; shape: number[]; data: Float32Array | BigInt64Array }>> {
    const out = new Map<string, { dtype: "float32" | "int64"; shape: number[]; data: Float32Array | BigInt64Array }>();
    for (const s of this.specs) {
      const data = (await this.get(s.name).data()) as Float32Array;
      if (s.name.endsWith("num_batches_tracked")) out.set(s.name, { dtype: "int64", shape: s.shape, data: BigInt64Array.from([BigInt(Math.round(data[0]))]) });
      else out.set(s.name, { dtype: "float32", shape: s.shape, data: Float32Array.from(data) });
    }
    return out;
  }

  /** Copies every value from another store of the same configuration. */
  assign(other: ParamStore): void {
    for (const [k, v] of this.vars) v.assign(other.get(k));
    for (const k of [...this.buffers.keys()]) this.setBuffer(k, other.get(k).clone());
  }

  /**
   * Marks these parameters as an inference model's, never to change again: the products that use a
   * weight transposed keep its transpose (ops.ts transposeOf). Nothing may assign to them after.
   * "replace" also releases each such weight's own values once its transpose is made (inference
   * reads every 2-D weight transposed but the two in READ_UNTRANSPOSED), for half the memory of
   * "keep" at its speed; the weights can then no longer be read back (no export from them).
   */
  freeze(mode: "keep" | "replace" = "keep"): this {
    for (const [name, v] of this.vars) if (v.rank === 2) freezeWeight(v, mode === "replace" && !READ_UNTRANSPOSED.has(name));
    return this;
  }

  dispose(): void {
    for (const v of this.vars.values()) releaseWeight(v);
    for (const v of this.vars.values()) v.dispose();
    for (const b of this.buffers.values()) b.dispose();
    this.vars.clear();
    this.buffers.clear();
    this.int8.clear();
  }
}

/**
 * Reads the architecture from official parameter names and shapes (an official checkpoint
 * converted to safetensors). `no_imgnorm`/`no_txtnorm` leave no trace in the weights: defaults.
 */
export function inferConfig(shapes: Map<string, readonly number[]>, source: string, prefix = ""): SgrafConfig {
  const shape = (n: string) => {
    const s = shapes.get(prefix + n);
    if (!s) throw new FormatError(source, `cannot infer the architecture: no tensor ${prefix + n}`);
    return s;
  };
  const fc = shape("img_enc.fc.weight");
  const emb = shape("txt_enc.embed.weight");
  const names = [...shapes.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  const sgrSteps = new Set(names.filter((n) => n.startsWith("sim_enc.SGR_module.")).map((n) => n.split(".")[2])).size;
  const hasSaf = names.some((n) => n.startsWith("sim_enc.SAF_module."));
  if (!sgrSteps && !hasSaf) throw new FormatError(source, "cannot infer the architecture: neither SGR_module nor SAF_module parameters");
  const layers = new Set(names.filter((n) => /^txt_enc\.cap_rnn\.weight_ih_l\d+$/.test(n))).size;
  return {
    img_dim: fc[1],
    embed_size: fc[0],
    word_dim: emb[1],
    vocab_size: emb[0],
    sim_dim: shape("sim_enc.sim_tranloc_w.weight")[0],
    proj_dim: shape("img_pro_head.output_layer.weight")[0],
    num_layers: layers,
    bi_gru: names.includes("txt_enc.cap_rnn.weight_ih_l0_reverse"),
    no_imgnorm: false,
    no_txtnorm: false,
    module_name: hasSaf ? "SAF" : "SGR",
    sgr_step: sgrSteps || 3,
  };
}
