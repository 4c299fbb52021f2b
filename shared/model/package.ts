/**
 * The exported model: a directory the edge app serves from, written by `bun run export` and at the
 * end of training.
 *
 *   model.json        configuration, nets, dtype, a TensorFlow.js weightsManifest (official
 *                     PyTorch names prefixed `A.`/`B.`; per-weight quantization {dtype, min, scale}
 *                     or float16, so tf.io.decodeWeights decodes it), the SHA-256 of every file,
 *                     the text side (vocabulary or token ids) and the gallery's manifest
 *   weights-NN.bin    weight shards, at most 4 MB each
 *   regions-<net>-<side>-NNNN.bin
 *                     the gallery's image-side and caption-side encodings per net, in shards of a
 *                     fixed number of images, read on demand (region-shards.ts; float16 unless the
 *                     dtype is float32: see galleryDtype)
 *   gallery-NN.bin    a package written before the region store: every encoding of the gallery,
 *                     decoded at load (still read)
 *   head-NN.bin       the distilled first stage's head (stage-one.ts; trainer/stage-one-head.ts):
 *                     per net, the image-side and caption-side projections; absent when the
 *                     export fitted none (the first stage is then tranglo)
 *   stage1-NN.bin     the gallery's first-stage vectors per net (stage-one.ts), of the head when
 *                     there is one: int8, stored as tfjs uint8 quantization with min -128 and scale 1
 *                     so that decodeWeights reads them exactly, and a float32 scale per vector;
 *                     absent in older exports
 *   vocab.json        the official vocabulary (captions of f30k/coco/cc152k are tokenized with it;
 *                     NoW's now100k_precomp_vocab_<tokenizer>.json when text can be tokenized)
 *   tokenizer.json    NoW bert/bpe: the Hugging Face tokenizer (shared/text/text-tokenizer.ts)
 *   gallery.json      the gallery's caption texts and token ids
 *
 * Runtime-free: files come in through `read(name)`; hashing uses Web Crypto.
 */
import * as v from "valibot";
import { FormatError, floatToHalf as toHalf, halfToFloat, type NdArray } from "../formats/ndarray";
import { type VocabFile, VocabFileSchema } from "../formats/vocab";
import { NLTK_SPEC, type TextSpec, TextSpecSchema, type TokenizerSpec } from "../text/text-tokenizer";
import { REGIONS, type SgrafConfig, SgrafConfigSchema } from "./config";
import { type EncodedCaptions, type EncodedImages, wordOffsets } from "./inference";
import { checkRegionLayout, REGION_SHARD_ITEMS, type RegionLayout, RegionLayoutSchema, type StoredRegions, writeRegionShards } from "./region-shards";
import { heldAsInt8, type ParamSpec, ParamStore, trainingOnly } from "./params";
import { Int8Weights } from "./quantized";
import { type FirstStage, type StageOneHead, type StageOneVectors, distilledStage, netTrangloScales, quantizeVectors, trangloStage } from "./stage-one";

export const MODEL_JSON = "model.json";
export const PACKAGE_FORMAT = "pc2-tfjs-model";
/** 2: the manifest carries its own digest. */
export const PACKAGE_VERSION = 2;
export const SHARD_BYTES = 4 * 1024 * 1024;

/** Storage types of exported tensors (transformers.js-style: a small enum, defaults per runtime). */
export const EXPORT_DTYPES = ["float32", "float16", "uint16", "uint8"] as const;
export type ExportDtype = (typeof EXPORT_DTYPES)[number];

/**
 * The gallery's storage for a model dtype. The gallery holds activations (l2-normalised word and
 * region embeddings), not weights: with one uint8 scale per tensor the top-1 of the rankings
 * changed for 1.5% of the queries on the embedded test split (test/edge/fidelity.test.ts), with
 * float16 for none; uint8 weights alone changed none.
 */
export function galleryDtype(dtype: ExportDtype): ExportDtype {
  return dtype === "float32" ? "float32" : "float16";
}

/**
 * Tensors with fewer elements than this stay float32 whatever the dtype: biases, batch-norm
 * parameters and statistics (~1% of the bytes; quantizing them bought nothing measurable and
 * batch-norm statistics are the most sensitive values of the model).
 */
export const KEEP_FLOAT32_BELOW = 4096;

const QuantizationSchema = v.object({
  dtype: v.picklist(["uint8", "uint16", "float16"]),
  min: v.optional(v.number()),
  scale: v.optional(v.number()),
});
const EntrySchema = v.object({
  name: v.string(),
  shape: v.array(v.pipe(v.number(), v.integer(), v.minValue(0))),
  dtype: v.picklist(["float32", "int32"]),
  quantization: v.optional(QuantizationSchema),
});
const GroupSchema = v.object({ paths: v.array(v.string()), weights: v.array(EntrySchema) });
const FileInfoSchema = v.object({ bytes: v.pipe(v.number(), v.integer(), v.minValue(0)), sha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)) });

export const ModelJsonSchema = v.object({
  format: v.literal(PACKAGE_FORMAT),
  version: v.literal(PACKAGE_VERSION),
  /** SHA-256 of the canonical manifest without this field (manifestDigest): an edited count or name is refused. */
  digest: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  config: SgrafConfigSchema,
  nets: v.pipe(v.array(v.picklist(["A", "B", "net"])), v.minLength(1)),
  dtype: v.picklist(EXPORT_DTYPES),
  text: TextSpecSchema,
  weightsManifest: v.array(GroupSchema),
  files: v.record(v.string(), FileInfoSchema),
  gallery: v.nullable(
    v.pipe(
      v.object({
        split: v.string(),
        images: v.pipe(v.number(), v.integer(), v.minValue(1)),
        captions: v.pipe(v.number(), v.integer(), v.minValue(1)),
        perCaptions: v.pipe(v.number(), v.integer(), v.minValue(1)),
        manifest: v.array(GroupSchema),
        texts: v.string(),
        /** The region store (region-shards.ts); absent in a package written before it. */
        regions: v.optional(RegionLayoutSchema),
      }),
      v.check((g) => g.captions === g.images * g.perCaptions, "captions must be images × perCaptions"),
    ),
  ),
  runConfig: v.optional(v.record(v.string(), v.unknown())),
  /** The distilled first stage's head, when the export fitted one. */
  stageOneHead: v.optional(
    v.object({
      stage: v.literal("distilled"),
      dim: v.pipe(v.number(), v.integer(), v.minValue(1)),
      manifest: v.array(GroupSchema),
      /** How it was fitted (trainer/stage-one-head.ts): sample, steps, held-out loss. */
      fit: v.optional(v.record(v.string(), v.unknown())),
    }),
  ),
});
export type ModelJson = v.InferOutput<typeof ModelJsonSchema>;

export const GalleryTextsSchema = v.object({
  captions: v.array(v.nullable(v.string())),
  tokens: v.array(v.array(v.pipe(v.number(), v.integer(), v.minValue(0)))),
});

export interface Gallery {
  split: string;
  perCaptions: number;
  /** Per net, in `netNames` order. */
  images: EncodedImages[];
  captions: EncodedCaptions[];
  texts: (string | null)[];
  tokens: number[][];
  /**
   * Per net, the first stage's vectors of images and captions (stage-one.ts): written by
   * encodeModelPackage (computed from the pooled vectors when absent here) and read back. Absent
   * in a gallery exported before them or built in memory; the engine then computes them from the
   * decoded pooled vectors on its first two-stage call.
   */
  stageOne?: GalleryStageOne;
  /**
   * A gallery read from a package with a region store: the encodings stay in their shards, read
   * on demand (shared/retrieval/region-store.ts), and `images[k].emb`/`.glo` and
   * `captions[k].emb`/`.glo` are empty.
   */
  regions?: StoredRegions;
}

export interface GalleryStageOne {
  images: StageOneVectors[];
  captions: StageOneVectors[];
}

/** A gallery's first-stage vectors, computed from its encodings by a first stage. */
export function galleryStageOne(g: Pick<Gallery, "images" | "captions">, stage: FirstStage): GalleryStageOne {
  return {
    images: g.images.map((im, n) => quantizeVectors(stage.vectors(n, "images", im), im.count, stage.dim)),
    captions: g.captions.map((c, n) => quantizeVectors(stage.vectors(n, "captions", c), c.count, stage.dim)),
  };
}

/** A package's first stage: its distilled head, else tranglo from the nets' sim_tranglo_w. */
export async function packageFirstStage(head: StageOneHead | null | undefined, nets: ParamStore[]): Promise<FirstStage> {
  if (head) return distilledStage(head);
  const scales: Float32Array[] = [];
  for (const p of nets) scales.push(await netTrangloScales(p));
  return trangloStage(scales);
}

export interface ModelPackage {
  json: ModelJson;
  config: SgrafConfig;
  netNames: string[];
  nets: ParamStore[];
  dtype: ExportDtype;
  /** SHA-256 of model.json: identifies the whole package (it lists every file's hash). */
  sha256: string;
  vocab: VocabFile | null;
  /** The files the text tokenizer reads (text.tokenizer.files), verified. */
  textFiles: Map<string, Uint8Array>;
  gallery: Gallery | null;
  runConfig?: Record<string, unknown>;
  /** The distilled first stage's head, or null (the first stage is then tranglo). */
  stageOneHead: StageOneHead | null;
}

// ---------------------------------------------------------------------------------------------
// Encoding

interface NamedArray {
  name: string;
  shape: number[];
  data: Float32Array;
}

function quantize(a: NamedArray, dtype: ExportDtype): { spec: v.InferOutput<typeof EntrySchema>; bytes: Uint8Array } {
  const keep = dtype === "float32" || a.data.length < KEEP_FLOAT32_BELOW;
  if (keep) return { spec: { name: a.name, shape: a.shape, dtype: "float32" }, bytes: new Uint8Array(a.data.buffer.slice(a.data.byteOffset, a.data.byteOffset + a.data.byteLength)) };
  if (dtype === "float16") {
    const h = new Uint16Array(a.data.length);
    for (let i = 0; i < h.length; i++) h[i] = toHalf(a.data[i]);
    return { spec: { name: a.name, shape: a.shape, dtype: "float32", quantization: { dtype: "float16" } }, bytes: new Uint8Array(h.buffer) };
  }
  let min = Infinity;
  let max = -Infinity;
  for (const x of a.data) {
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const levels = dtype === "uint8" ? 255 : 65535;
  const scale = max > min ? (max - min) / levels : 1;
  const q = dtype === "uint8" ? new Uint8Array(a.data.length) : new Uint16Array(a.data.length);
  for (let i = 0; i < q.length; i++) q[i] = Math.round((a.data[i] - min) / scale);
  return { spec: { name: a.name, shape: a.shape, dtype: "float32", quantization: { dtype, min, scale } }, bytes: new Uint8Array(q.buffer) };
}


/** Packs named arrays into ≤ 4 MB shards named `<prefix>-NN.bin`. */
function shard(arrays: NamedArray[], dtype: ExportDtype, prefix: string, files: Map<string, Uint8Array>): v.InferOutput<typeof GroupSchema> {
  return packShards(arrays.map((a) => quantize(a, dtype)), prefix, files);
}

/** An array already in its stored form. */
interface StoredArray {
  spec: v.InferOutput<typeof EntrySchema>;
  bytes: Uint8Array;
}

function packShards(encoded: StoredArray[], prefix: string, files: Map<string, Uint8Array>): v.InferOutput<typeof GroupSchema> {
  const total = encoded.reduce((s, e) => s + e.bytes.length, 0);
  const all = new Uint8Array(total);
  let o = 0;
  for (const e of encoded) {
    all.set(e.bytes, o);
    o += e.bytes.length;
  }
  const paths: string[] = [];
  for (let s = 0, k = 0; s < Math.max(total, 1); s += SHARD_BYTES, k++) {
    const name = `${prefix}-${String(k).padStart(2, "0")}.bin`;
    files.set(name, all.slice(s, Math.min(total, s + SHARD_BYTES)));
    paths.push(name);
  }
  return { paths, weights: encoded.map((e) => e.spec) };
}

export interface PackageInput {
  config: SgrafConfig;
  netNames: string[];
  nets: ParamStore[];
  dtype: ExportDtype;
  vocab: VocabFile | null;
  /** The tokenizer that turns text into the vocabulary's words (NLTK when absent), and its files. */
  textTokenizer?: PackagedTokenizer;
  /** NoW's `--tokenizer` (bpe, bert, jieba). */
  tokenizer?: string;
  /** Why a model without a vocabulary takes token ids only. */
  idsNote?: string;
  gallery?: Gallery | null;
  /** Images per region shard (REGION_SHARD_ITEMS when absent); 0 writes the layout from before the region store (every encoding in gallery-NN.bin). */
  regionShardItems?: number;
  /**
   * Region shards the caller wrote itself (a gallery larger than memory, written shard by shard:
   * benchmarks/gallery_scale.ts): their layout and file entries. The gallery's encodings are then
   * not read (its `stageOne` must be given).
   */
  writtenRegions?: { layout: RegionLayout; files: Record<string, { bytes: number; sha256: string }> };
  runConfig?: Record<string, unknown>;
  /** A distilled first stage's head (trainer/stage-one-head.ts) and how it was fitted. */
  stageOneHead?: { head: StageOneHead; fit?: Record<string, unknown> } | null;
}

export interface PackagedTokenizer {
  spec: TokenizerSpec;
  files: Record<string, Uint8Array>;
}

/** The manifest's text side for a package input. */
function textSpec(input: PackageInput): TextSpec {
  if (!input.vocab) return { kind: "ids", tokenizer: input.tokenizer, note: input.idsNote };
  const spec = input.textTokenizer?.spec ?? NLTK_SPEC;
  return { kind: "words", vocab: "vocab.json", tokenizer: spec, dataset: spec.kind === "nltk" ? undefined : input.tokenizer };
}

/** Builds every file of an exported model directory. */
export async function encodeModelPackage(input: PackageInput): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  const weights: NamedArray[] = [];
  // An inference model: the training-only parameters (PC2's pseudo-classification head) stay out.
  input.nets.forEach((net, i) => {
    for (const spec of net.specs.filter((s) => !trainingOnly(s.name))) {
      weights.push({ name: `${input.netNames[i]}.${spec.name}`, shape: spec.shape, data: Float32Array.from(net.get(spec.name).dataSync()) });
    }
  });
  const weightsManifest = [shard(weights, input.dtype, "weights", files)];
  const enc = new TextEncoder();
  if (input.vocab) files.set("vocab.json", enc.encode(JSON.stringify(input.vocab)));
  const text = textSpec(input);
  for (const name of typeof text.tokenizer === "object" ? text.tokenizer.files : []) {
    const bytes = input.textTokenizer?.files[name];
    if (!bytes || files.has(name) || name === MODEL_JSON) throw new Error(`encodeModelPackage: tokenizer file ${name} is missing or clashes with another file`);
    files.set(name, bytes);
  }
  let stageOneHead: ModelJson["stageOneHead"];
  const head = input.stageOneHead?.head ?? null;
  if (head) {
    const F = 2 * input.config.embed_size;
    const arrays: NamedArray[] = head.nets.flatMap((h, i) =>
      (["images", "captions"] as const).map((side) => {
        if (h[side].length !== F * head.dim) throw new RangeError(`encodeModelPackage: head ${side} of net ${input.netNames[i]} holds ${h[side].length} values, not ${F} × ${head.dim}`);
        return { name: `${input.netNames[i]}.stage1_head.${side}`, shape: [F, head.dim], data: h[side] };
      }),
    );
    if (head.nets.length !== input.nets.length) throw new RangeError(`encodeModelPackage: a head of ${head.nets.length} nets for ${input.nets.length}`);
    stageOneHead = { stage: "distilled", dim: head.dim, manifest: [shard(arrays, input.dtype, "head", files)], fit: input.stageOneHead?.fit };
  }
  let gallery: ModelJson["gallery"] = null;
  const g = input.gallery;
  if (g) {
    if (g.regions && !input.writtenRegions) throw new Error("encodeModelPackage: this gallery's encodings are in a package's region shards; export from the encodings");
    const shardItems = input.regionShardItems ?? REGION_SHARD_ITEMS;
    const regions = input.writtenRegions?.layout ?? (shardItems > 0 ? writeRegionShards(g, input.netNames, shardItems, galleryDtype(input.dtype) as "float32" | "float16", files) : undefined);
    const arrays: NamedArray[] = [];
    if (!regions) {
      g.images.forEach((im, i) => {
        const n = input.netNames[i];
        arrays.push({ name: `${n}.images.emb`, shape: [im.count, REGIONS, im.embed], data: im.emb });
        arrays.push({ name: `${n}.images.glo`, shape: [im.count, im.embed], data: im.glo });
      });
      g.captions.forEach((c, i) => {
        const n = input.netNames[i];
        arrays.push({ name: `${n}.captions.emb`, shape: [c.emb.length / c.embed, c.embed], data: c.emb });
        arrays.push({ name: `${n}.captions.glo`, shape: [c.count, c.embed], data: c.glo });
      });
    }
    const stageOne = g.stageOne ?? galleryStageOne(g, await packageFirstStage(head, input.nets));
    const stageArrays: StoredArray[] = [];
    for (const [side, vectors] of [["images", stageOne.images], ["captions", stageOne.captions]] as const) {
      vectors.forEach((sv, i) => {
        const n = input.netNames[i];
        const bytes = new Uint8Array(sv.values.length);
        for (let j = 0; j < bytes.length; j++) bytes[j] = sv.values[j] + 128;
        stageArrays.push({ spec: { name: `${n}.${side}.stage1`, shape: [sv.count, sv.dim], dtype: "float32", quantization: { dtype: "uint8", min: -128, scale: 1 } }, bytes });
        stageArrays.push({ spec: { name: `${n}.${side}.stage1_scale`, shape: [sv.count], dtype: "float32" }, bytes: new Uint8Array(sv.scales.slice().buffer) });
      });
    }
    // With a region store, the gallery's group is empty and left out: the manifest holds the first stage's only.
    const manifest = [...(arrays.length ? [shard(arrays, galleryDtype(input.dtype), "gallery", files)] : []), packShards(stageArrays, "stage1", files)];
    files.set("gallery.json", enc.encode(JSON.stringify({ captions: g.texts, tokens: g.tokens })));
    gallery = { split: g.split, images: g.images[0].count, captions: g.captions[0].count, perCaptions: g.perCaptions, manifest, texts: "gallery.json", regions };
  }
  const fileInfo: Record<string, { bytes: number; sha256: string }> = { ...input.writtenRegions?.files };
  for (const [name, bytes] of files) fileInfo[name] = { bytes: bytes.length, sha256: await sha256Hex(bytes) };
  const unsigned: Omit<ModelJson, "digest"> = {
    format: PACKAGE_FORMAT,
    version: PACKAGE_VERSION,
    config: input.config,
    nets: input.netNames as ModelJson["nets"],
    dtype: input.dtype,
    text,
    weightsManifest,
    files: fileInfo,
    gallery,
    runConfig: input.runConfig,
    stageOneHead,
  };
  const json: ModelJson = { ...unsigned, digest: await manifestDigest(unsigned) };
  files.set(MODEL_JSON, enc.encode(`${JSON.stringify(json, null, 1)}\n`));
  return files;
}

/** JSON with object keys sorted at every level: the same manifest always gives the same text. */
function canonicalJson(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canonicalJson).join(",")}]`;
  if (x !== null && typeof x === "object") {
    const entries = Object.entries(x as Record<string, unknown>).filter(([, value]) => value !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, value]) => `${JSON.stringify(k)}:${canonicalJson(value)}`).join(",")}}`;
  }
  return JSON.stringify(x);
}

/** The manifest's digest: SHA-256 of its canonical JSON without the `digest` field. */
export async function manifestDigest(manifest: Record<string, unknown>): Promise<string> {
  const { digest: _, ...rest } = manifest;
  return sha256Hex(new TextEncoder().encode(canonicalJson(rest)));
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------------------------
// Decoding

export interface DecodeOptions {
  /**
   * The nets to decode (default: all): a server may serve net A alone, for half the memory and
   * half the work of the ensemble. The package's other nets are neither read into tensors nor kept.
   */
  nets?: readonly string[];
  /**
   * What becomes of a weight's transpose once made (ParamStore.freeze): "keep" (the default) keeps
   * it beside the weight, so that a paper-size query encodes 1.5× faster, but each such weight is
   * held twice; "replace" keeps the transpose in the weight's place (the same speed, one copy; the
   * nets can then not be exported again); "per-call" makes it anew each time (one copy, slower,
   * and each call allocates a transpose).
   */
  transposes?: "keep" | "replace" | "per-call";
  /**
   * How the nets' encoder matrices are held: "float32" (the default) as tfjs tensors; "int8" at
   * one byte per value, multiplied by native/bmm.c's int8 product (quantized.ts). Those of the
   * encoders qualify (params.ts heldAsInt8: image and text encoders, the self-attention poolings)
   * when the package stores them as uint8 (an export with --dtype uint8, the default). The
   * similarity's weights stay float32 (a re-ranking runs them over every shortlisted pair, on
   * tfjs's faster float32 products), and so does every vector. A paper-size net A then holds
   * 16.2 MB of int8 and 4 MB of float32 instead of 69 MB, and tfjs makes no packed copies of them.
   */
  weights?: WeightHolding;
}

/** How a decoded net holds its encoder matrices (DecodeOptions.weights). */
export const WEIGHT_HOLDINGS = ["float32", "int8"] as const;
export type WeightHolding = (typeof WEIGHT_HOLDINGS)[number];

/**
 * Parses and verifies model.json and the files it lists; builds the nets asked for (inference
 * models: no training-only parameter is decoded) and the gallery.
 */
export async function decodeModelPackage(modelJson: Uint8Array, read: (name: string) => Uint8Array | Promise<Uint8Array>, source: string, options: DecodeOptions = {}): Promise<ModelPackage> {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(modelJson));
  } catch (e) {
    throw new FormatError(`${source}/${MODEL_JSON}`, `not valid JSON (${(e as Error).message})`);
  }
  const where = `${source}/${MODEL_JSON}`;
  const version = (raw as { version?: unknown } | null)?.version;
  if (typeof version === "number" && version !== PACKAGE_VERSION) {
    throw new FormatError(where, `package version ${version}; this code reads version ${PACKAGE_VERSION} (re-export the model with bun run export)`);
  }
  const r = v.safeParse(ModelJsonSchema, raw);
  if (!r.success) throw new FormatError(where, `${v.getDotPath(r.issues[0]) ?? "(root)"}: ${r.issues[0].message}`);
  const json = r.output;
  if ((await manifestDigest(raw as Record<string, unknown>)) !== json.digest) {
    throw new FormatError(where, "manifest digest mismatch: model.json was changed after export (a count, a name or the file list); re-export the model");
  }
  const cache = new Map<string, Uint8Array>();
  /** A file of the package, read and checked against model.json's entry (not cached). */
  const verified = async (name: string) => {
    const info = json.files[name];
    if (!info) throw new FormatError(`${source}/${MODEL_JSON}`, `refers to ${name}, which its file list lacks`);
    const bytes = await read(name);
    if (bytes.length !== info.bytes) throw new FormatError(`${source}/${name}`, `${bytes.length} bytes, model.json says ${info.bytes}`);
    if ((await sha256Hex(bytes)) !== info.sha256) throw new FormatError(`${source}/${name}`, "SHA-256 mismatch: the file is corrupted or from another export");
    return bytes;
  };
  const file = async (name: string) => {
    const hit = cache.get(name);
    if (hit) return hit;
    const bytes = await verified(name);
    cache.set(name, bytes);
    return bytes;
  };
  const asked = options.nets ? [...options.nets] : json.nets;
  const unknown = asked.filter((n) => !(json.nets as string[]).includes(n));
  if (unknown.length || asked.length === 0) throw new Error(`${where}: the model's nets are ${json.nets.join(", ")}; asked for ${asked.join(", ") || "none"}`);
  const ofAsked = (name: string) => asked.find((n) => name.startsWith(`${n}.`));
  /**
   * The entries of `groups` that `want` names, each decoded when its `data` is read (every read
   * decodes anew): a net's weights are built one tensor at a time, so that the float32 copies of
   * all of them never exist at once beside the tensors (a paper-size net's are 72 MB). The others
   * are skipped, never decoded, and a file that holds none of the wanted entries is not read: a
   * Worker serving net A of an A+B package reads A's 18 MB, not 36. Files are placed by the sizes
   * model.json declares, each checked (length, SHA-256) when read; an entry within one file is a
   * view of it, one across two files a copy.
   */
  const decodeGroups = async (groups: ModelJson["weightsManifest"], want: (name: string) => boolean = () => true) => {
    const out = new Map<string, { dtype: "float32"; shape: number[]; readonly data: Float32Array; readonly uint8?: { q: Uint8Array; scale: number; min: number } }>();
    for (const g of groups) {
      const sizes = g.paths.map((name) => {
        const info = json.files[name];
        if (!info) throw new FormatError(`${source}/${MODEL_JSON}`, `refers to ${name}, which its file list lacks`);
        return info.bytes;
      });
      const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
      const total = sizes.reduce((a, b) => a + b, 0);
      const expected = g.weights.reduce((s, w) => s + w.shape.reduce((a, d) => a * d, 1) * bytesPer(w), 0);
      if (expected !== total) throw new FormatError(source, `weight group ${g.paths.join(",")} holds ${total} bytes, its manifest describes ${expected}`);
      const wanted: Array<{ w: (typeof g.weights)[number]; at: number; size: number }> = [];
      let offset = 0;
      for (const w of g.weights) {
        const size = w.shape.reduce((a, d) => a * d, 1) * bytesPer(w);
        if (want(w.name)) wanted.push({ w, at: offset, size });
        offset += size;
      }
      const overlapping = (at: number, size: number) => sizes.map((_, i) => i).filter((i) => starts[i] < at + size && starts[i] + sizes[i] > at);
      const needed = [...new Set(wanted.flatMap((e) => overlapping(e.at, Math.max(e.size, 1))))];
      const parts = new Map<number, Uint8Array>();
      await Promise.all(needed.map(async (i) => parts.set(i, await verified(g.paths[i]))));
      const bytesOf = (at: number, size: number): Uint8Array => {
        const files = overlapping(at, Math.max(size, 1));
        if (files.length === 1) return parts.get(files[0])!.subarray(at - starts[files[0]], at - starts[files[0]] + size);
        const out = new Uint8Array(size);
        for (const i of files) {
          const from = Math.max(at, starts[i]);
          const to = Math.min(at + size, starts[i] + sizes[i]);
          out.set(parts.get(i)!.subarray(from - starts[i], to - starts[i]), from - at);
        }
        return out;
      };
      for (const { w, at, size } of wanted) {
        const bytes = bytesOf(at, size);
        const q = w.quantization;
        out.set(w.name, {
          dtype: "float32",
          shape: w.shape,
          get data() {
            return decodeEntry(bytes, w);
          },
          uint8: q?.dtype === "uint8" ? { q: bytes, scale: q.scale ?? 1, min: q.min ?? 0 } : undefined,
        });
      }
    }
    return out;
  };
  const weights = await decodeGroups(json.weightsManifest, (name) => {
    const n = ofAsked(name);
    return n !== undefined && !trainingOnly(name.slice(n.length + 1));
  });
  // A package is an inference model: its weights never change, so their transposes may be kept.
  const nets = asked.map((n) => {
    // The net's own native instance, made at its first int8 matrix (none for a package without uint8 ones).
    let held: Int8Weights | null = null;
    const int8 =
      options.weights === "int8"
        ? (spec: ParamSpec, a: NdArray) => {
            const u = (a as { uint8?: { q: Uint8Array; scale: number; min: number } }).uint8;
            if (!u || !heldAsInt8(spec)) return undefined;
            held ??= new Int8Weights();
            return held.add(u.q, spec.shape as [number, number], u.scale, u.min);
          }
        : undefined;
    const p = ParamStore.fromArrays(json.config, weights, `${source}/${MODEL_JSON}`, `${n}.`, true, int8);
    const mode = options.transposes ?? "keep";
    return mode === "per-call" ? p : p.freeze(mode);
  });
  weights.clear();
  let vocab: VocabFile | null = null;
  if (json.text.kind === "words") {
    const vr = v.safeParse(VocabFileSchema, JSON.parse(new TextDecoder().decode(await file(json.text.vocab ?? "vocab.json"))));
    if (!vr.success) throw new FormatError(`${source}/vocab.json`, vr.issues[0].message);
    vocab = vr.output;
  }
  const textFiles = new Map<string, Uint8Array>();
  for (const name of typeof json.text.tokenizer === "object" ? json.text.tokenizer.files : []) textFiles.set(name, await file(name));
  let stageOneHead: StageOneHead | null = null;
  if (json.stageOneHead) {
    const h = json.stageOneHead;
    const ha = await decodeGroups(h.manifest, (name) => ofAsked(name) !== undefined);
    const F = 2 * json.config.embed_size;
    const part = (name: string) => {
      const a = ha.get(name);
      if (!a) throw new FormatError(where, `the first stage's head lacks ${name}`);
      if (a.shape.join() !== [F, h.dim].join()) throw new FormatError(where, `head tensor ${name} has shape [${a.shape}], not [${F},${h.dim}]`);
      return a.data;
    };
    stageOneHead = { dim: h.dim, nets: asked.map((n) => ({ images: part(`${n}.stage1_head.images`), captions: part(`${n}.stage1_head.captions`) })) };
  }
  let gallery: Gallery | null = null;
  if (json.gallery) {
    const g = json.gallery;
    const ga = await decodeGroups(g.manifest, (name) => ofAsked(name) !== undefined);
    const texts = v.parse(GalleryTextsSchema, JSON.parse(new TextDecoder().decode(await file(g.texts))));
    if (texts.tokens.length !== g.captions) throw new FormatError(`${source}/${g.texts}`, `${texts.tokens.length} captions, model.json says ${g.captions}`);
    const E = json.config.embed_size;
    const lengths = Int32Array.from(texts.tokens, (t) => t.length);
    const { offsets, words } = wordOffsets(lengths);
    // With a region store, the encodings stay in their shards (read on demand, verified on every read).
    const regions: StoredRegions | undefined = g.regions && {
      layout: g.regions,
      geometry: { images: g.images, perCaptions: g.perCaptions, imagesPerShard: g.regions.imagesPerShard, embed: E, lengths, offsets },
      nets: asked,
      read: verified,
    };
    if (regions) checkRegionLayout(regions.layout, json.nets, regions.geometry, json.files, where);
    const empty = new Float32Array(0);
    // Every tensor must have the shape the gallery's counts imply: the counts are what the engine indexes by.
    const need = (name: string, shape: number[]) => {
      if (regions) return empty; // in the region shards, read on demand
      const a = ga.get(name);
      if (!a) throw new FormatError(source, `gallery lacks ${name}`);
      if (a.shape.join() !== shape.join()) throw new FormatError(where, `gallery tensor ${name} has shape [${a.shape}], the gallery's counts imply [${shape}]`);
      return a.data;
    };
    gallery = {
      split: g.split,
      perCaptions: g.perCaptions,
      images: asked.map((n) => ({ count: g.images, embed: E, emb: need(`${n}.images.emb`, [g.images, REGIONS, E]), glo: need(`${n}.images.glo`, [g.images, E]) })),
      captions: asked.map((n) => ({ count: g.captions, embed: E, lengths, offsets, emb: need(`${n}.captions.emb`, [words, E]), glo: need(`${n}.captions.glo`, [g.captions, E]) })),
      texts: texts.captions,
      tokens: texts.tokens,
      stageOne: decodeStageOne(ga, asked, g.images, g.captions, stageOneHead ? stageOneHead.dim : E, where),
      regions,
    };
    // Without its pooled vectors at hand, a gallery with a region store must carry its first stage.
    if (regions && !gallery.stageOne) throw new FormatError(where, "the gallery has a region store but no first-stage vectors");
  }
  return { json, config: json.config, netNames: asked, nets, dtype: json.dtype, sha256: await sha256Hex(modelJson), vocab, textFiles, gallery, runConfig: json.runConfig, stageOneHead };
}

/** The gallery's first-stage vectors, or undefined for a gallery exported before them. */
function decodeStageOne(ga: Map<string, { shape: number[]; data: Float32Array }>, nets: readonly string[], images: number, captions: number, dim: number, where: string): GalleryStageOne | undefined {
  const names = nets.flatMap((n) => ["images", "captions"].flatMap((side) => [`${n}.${side}.stage1`, `${n}.${side}.stage1_scale`]));
  const present = names.filter((name) => ga.has(name));
  if (present.length === 0) return undefined;
  if (present.length < names.length) throw new FormatError(where, `the gallery has some first-stage vectors but lacks ${names.find((name) => !ga.has(name))}`);
  const side = (n: string, s: "images" | "captions", count: number): StageOneVectors => {
    const values = ga.get(`${n}.${s}.stage1`)!;
    const scales = ga.get(`${n}.${s}.stage1_scale`)!;
    if (values.shape.join() !== [count, dim].join() || scales.shape.join() !== String(count)) {
      throw new FormatError(where, `first-stage vectors ${n}.${s}.stage1 have shape [${values.shape}] and [${scales.shape}] scales; the gallery's counts and first stage imply [${count},${dim}] and [${count}]`);
    }
    return { count, dim, values: Int8Array.from(values.data), scales: scales.data };
  };
  return { images: nets.map((n) => side(n, "images", images)), captions: nets.map((n) => side(n, "captions", captions)) };
}

/**
 * One stored entry as float32 values: what tf.io.decodeWeights gives (q × scale + min for uint8
 * and uint16, IEEE half for float16), without the tensor it builds and the copies it takes.
 */
export function decodeEntry(bytes: Uint8Array, w: v.InferOutput<typeof EntrySchema>): Float32Array {
  const n = w.shape.reduce((a, d) => a * d, 1);
  const q = w.quantization;
  const copy = bytes.slice(); // aligned, and owned by the result
  if (!q) return w.dtype === "int32" ? Float32Array.from(new Int32Array(copy.buffer, 0, n)) : new Float32Array(copy.buffer, 0, n);
  const out = new Float32Array(n);
  if (q.dtype === "float16") {
    const h = new Uint16Array(copy.buffer, 0, n);
    for (let i = 0; i < n; i++) out[i] = halfToFloat(h[i]);
    return out;
  }
  const values = q.dtype === "uint8" ? copy : new Uint16Array(copy.buffer, 0, n);
  const scale = q.scale ?? 1;
  const min = q.min ?? 0;
  for (let i = 0; i < n; i++) out[i] = values[i] * scale + min;
  return out;
}

function bytesPer(w: v.InferOutput<typeof EntrySchema>): number {
  const q = w.quantization?.dtype;
  return q === "uint8" ? 1 : q === "uint16" || q === "float16" ? 2 : 4;
}
