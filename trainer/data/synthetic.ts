/**
 * The embedded synthetic dataset: a small, learnable stand-in for Flickr30K in the official
 * `f30k_precomp` layout, so that the trainer, the tests and the default configuration run
 * without downloading anything.
 *
 * The world: latent object classes, each a unit prototype in img_dim space named by 2–3 invented
 * nouns (and their plurals), and attribute adjectives (colours, sizes) that each shift a region in
 * a fixed direction. An image holds 2–4 objects, each covering several of its 36 regions
 * (prototype + attribute directions + gaussian noise), the other regions background clutter; the
 * features are ReLU outputs on roughly the scale of precomputed CNN region features (non-negative,
 * not normalized). Each image gets five captions, each naming its objects (all of them, or a random
 * non-empty subset) in random order, with some of their attributes, articles and relation words.
 *
 * Files written under the output folder:
 *   f30k_precomp/{train,dev,test}_ims.npy   float32 (images, 36, img_dim)
 *   f30k_precomp/{train,dev,test}_caps.txt  five captions per image
 *   vocab/f30k_precomp_vocab.json           built like vocab.py from the train and dev captions
 *   noise/f30k_precomp_<ratio>.npy          int64 noise index of the train captions (ratio > 0)
 *   synthetic.json                          the options and this list (written last)
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeNpy } from "../../shared/formats/npy";
import { buildVocabulary, REGIONS } from "./datasets";
import { cleanIndex, drawNoise, pythonFloatStr, saveNoiseFile } from "./noise";
import { Random } from "../../shared/random";

export interface SyntheticOptions {
  seed: number;
  trainImages: number;
  devImages: number;
  testImages: number;
  imgDim: number;
  /** Latent object classes. */
  classes: number;
  /** Noise ratio of the generated noise index (0: no noise file). */
  noiseRatio: number;
  /** vocab.py's min word count. */
  vocabThreshold: number;
  /** Standard deviation of the per-region gaussian noise, relative to a unit prototype. */
  regionNoise: number;
  /** Multiplier from the unit-norm latent space to feature values. */
  featureScale: number;
  /** Nouns per object class (synonyms); 1 names each class by one noun (and its plural). */
  synonyms: number;
  /**
   * Whether every caption names every object of its image (as Flickr30K's descriptions mostly do),
   * or a random non-empty subset of them. With subsets many captions ("a pude .") fit many images,
   * so a mismatched caption is often not wrong and no per-sample loss can tell it apart.
   */
  mentionAll: boolean;
}

export const SYNTHETIC_DEFAULTS: SyntheticOptions = {
  seed: 0,
  trainImages: 400,
  devImages: 100,
  testImages: 100,
  imgDim: 32,
  classes: 24,
  noiseRatio: 0.4,
  vocabThreshold: 1,
  regionNoise: 0.45,
  featureScale: 8,
  synonyms: 1,
  mentionAll: true,
};

/** Bumped whenever the generator's output changes, so that cached datasets are regenerated. */
export const SYNTHETIC_VERSION = 2;

export const SYNTHETIC_DATA_NAME = "f30k_precomp";

const CAPTIONS_PER_IMAGE = 5;
const COLOURS = ["red", "green", "blue", "yellow", "white", "black"];
const SIZES = ["large", "small"];
const RELATIONS = ["with", "beside", "near", "and", "on"];
const BACKGROUND_CLASSES = 6;

/** Where a generated dataset lies: the flags the trainer needs to read it. */
export interface SyntheticDataset {
  dir: string;
  dataPath: string;
  dataName: typeof SYNTHETIC_DATA_NAME;
  vocabPath: string;
  /** The noise index file, when noiseRatio > 0. */
  noiseFile?: string;
  imgDim: number;
  options: SyntheticOptions;
}

interface World {
  prototypes: Float64Array[];
  nouns: string[][];
  attributes: { word: string; group: "colour" | "size"; direction: Float64Array }[];
  background: Float64Array[];
}

interface SplitData {
  features: Float32Array;
  captions: string[];
}

/** Generates the dataset into `dir` (created if needed); same options → identical bytes. */
export function generateSynthetic(dir: string, options: Partial<SyntheticOptions> = {}): SyntheticDataset {
  const o = resolveOptions(options);
  const world = makeWorld(o, new Random(streamSeed(o.seed, 0)));
  const splits = {
    train: makeSplit(world, o, o.trainImages, new Random(streamSeed(o.seed, 1))),
    dev: makeSplit(world, o, o.devImages, new Random(streamSeed(o.seed, 2))),
    test: makeSplit(world, o, o.testImages, new Random(streamSeed(o.seed, 3))),
  };
  const dataDir = join(dir, SYNTHETIC_DATA_NAME);
  const vocabDir = join(dir, "vocab");
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(vocabDir, { recursive: true });
  for (const [name, s] of Object.entries(splits)) {
    const n = s.features.length / (REGIONS * o.imgDim);
    writeFileSync(join(dataDir, `${name}_ims.npy`), writeNpy({ dtype: "float32", shape: [n, REGIONS, o.imgDim], data: s.features }));
    writeFileSync(join(dataDir, `${name}_caps.txt`), s.captions.map((c) => `${c}\n`).join(""));
  }
  const vocab = buildVocabulary([...splits.train.captions, ...splits.dev.captions], o.vocabThreshold);
  writeFileSync(join(vocabDir, `${SYNTHETIC_DATA_NAME}_vocab.json`), JSON.stringify(vocab.toJSON()));
  if (o.noiseRatio > 0) {
    const clean = cleanIndex(o.trainImages * CAPTIONS_PER_IMAGE, CAPTIONS_PER_IMAGE);
    saveNoiseFile(join(dir, noiseFileName(o)), drawNoise(clean, o.noiseRatio, new Random(streamSeed(o.seed, 4))));
  }
  writeFileSync(join(dir, "synthetic.json"), `${JSON.stringify({ version: SYNTHETIC_VERSION, options: o }, null, 1)}\n`);
  return describe(dir, o);
}

/**
 * The dataset for `options` under `cacheDir`, generated once into a folder named by a hash of the
 * options and reused afterwards. Generation goes to a temporary folder that is renamed into place,
 * so an interrupted run leaves no half dataset, and two racing runs both end with a whole one.
 */
export function ensureSynthetic(cacheDir: string, options: Partial<SyntheticOptions> = {}): SyntheticDataset {
  const o = resolveOptions(options);
  const key = createHash("sha256").update(JSON.stringify({ version: SYNTHETIC_VERSION, options: o })).digest("hex").slice(0, 16);
  const dir = join(cacheDir, `synthetic-${key}`);
  if (existsSync(join(dir, "synthetic.json"))) return describe(dir, o);
  mkdirSync(cacheDir, { recursive: true });
  const tmp = join(cacheDir, `.synthetic-${key}.${process.pid}.${Date.now()}.tmp`);
  try {
    generateSynthetic(tmp, o);
    if (existsSync(dir) && !existsSync(join(dir, "synthetic.json"))) rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // Another process renamed its copy first: use that one.
      if (!existsSync(join(dir, "synthetic.json"))) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return describe(dir, o);
}

function resolveOptions(options: Partial<SyntheticOptions>): SyntheticOptions {
  const o = { ...SYNTHETIC_DEFAULTS, ...options };
  for (const k of ["trainImages", "devImages", "testImages", "imgDim", "classes"] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`synthetic option ${k} must be a positive integer, got ${o[k]}`);
  }
  if (o.classes < 4) throw new Error(`synthetic option classes must be at least 4 (images hold up to 4 objects), got ${o.classes}`);
  if (!Number.isInteger(o.synonyms) || o.synonyms < 1) throw new Error(`synthetic option synonyms must be a positive integer, got ${o.synonyms}`);
  if (!(o.noiseRatio >= 0 && o.noiseRatio < 1)) throw new Error(`synthetic option noiseRatio must be in [0, 1), got ${o.noiseRatio}`);
  return o;
}

function noiseFileName(o: SyntheticOptions): string {
  return join("noise", `${SYNTHETIC_DATA_NAME}_${pythonFloatStr(o.noiseRatio)}.npy`);
}

function describe(dir: string, o: SyntheticOptions): SyntheticDataset {
  return {
    dir,
    dataPath: dir,
    dataName: SYNTHETIC_DATA_NAME,
    vocabPath: join(dir, "vocab"),
    ...(o.noiseRatio > 0 ? { noiseFile: join(dir, noiseFileName(o)) } : {}),
    imgDim: o.imgDim,
    options: o,
  };
}

/** Independent streams per part, so that e.g. the train size does not change the test split. */
function streamSeed(seed: number, stream: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
}

function makeWorld(o: SyntheticOptions, rng: Random): World {
  const used = new Set<string>([...COLOURS, ...SIZES, ...RELATIONS, "a", "the", "some", "two"]);
  const nouns: string[][] = [];
  for (let c = 0; c < o.classes; c++) {
    const k = Math.min(o.synonyms, 2 + rng.nextInt(2));
    const words: string[] = [];
    while (words.length < k) {
      const w = inventWord(rng);
      // A plural must not collide with another class's singular either.
      if (used.has(w) || used.has(`${w}s`)) continue;
      used.add(w);
      used.add(`${w}s`);
      words.push(w);
    }
    nouns.push(words);
  }
  const unit = () => normalize(Float64Array.from({ length: o.imgDim }, () => rng.normal()));
  const prototypes = nouns.map(() => unit());
  const attributes = [
    ...COLOURS.map((word) => ({ word, group: "colour" as const, direction: unit() })),
    ...SIZES.map((word) => ({ word, group: "size" as const, direction: unit() })),
  ];
  const background = Array.from({ length: BACKGROUND_CLASSES }, () => unit());
  return { prototypes, nouns, attributes, background };
}

const CONSONANTS = "bdfgklmnprstvz";
const VOWELS = "aeiou";

function inventWord(rng: Random): string {
  const syllables = 2 + rng.nextInt(2);
  let w = "";
  for (let s = 0; s < syllables; s++) w += CONSONANTS[rng.nextInt(CONSONANTS.length)] + VOWELS[rng.nextInt(VOWELS.length)];
  return w;
}

function makeSplit(world: World, o: SyntheticOptions, images: number, rng: Random): SplitData {
  const d = o.imgDim;
  const features = new Float32Array(images * REGIONS * d);
  const captions: string[] = [];
  const colours = world.attributes.filter((a) => a.group === "colour");
  const sizes = world.attributes.filter((a) => a.group === "size");
  const sigma = o.regionNoise / Math.sqrt(d);
  const v = new Float64Array(d);
  for (let img = 0; img < images; img++) {
    const nObjects = 2 + rng.nextInt(3);
    const classes = rng.permutation(o.classes).subarray(0, nObjects);
    const objects = Array.from(classes, (c) => ({
      cls: c,
      colour: rng.nextFloat() < 0.5 ? colours[rng.nextInt(colours.length)] : undefined,
      size: rng.nextFloat() < 0.3 ? sizes[rng.nextInt(sizes.length)] : undefined,
    }));
    // Regions 0..35 in random order; each object takes the next 3–6 of them.
    const slots = rng.permutation(REGIONS);
    let next = 0;
    const owner = new Int32Array(REGIONS).fill(-1);
    for (let k = 0; k < objects.length; k++) {
      const n = 3 + rng.nextInt(4);
      for (let j = 0; j < n; j++) owner[slots[next++]] = k;
    }
    for (let r = 0; r < REGIONS; r++) {
      const k = owner[r];
      if (k >= 0) {
        const obj = objects[k];
        v.set(world.prototypes[obj.cls]);
        if (obj.colour) addScaled(v, obj.colour.direction, 0.7);
        if (obj.size) addScaled(v, obj.size.direction, 0.5);
      } else {
        v.fill(0);
        addScaled(v, world.background[rng.nextInt(BACKGROUND_CLASSES)], 0.6);
      }
      const base = (img * REGIONS + r) * d;
      for (let i = 0; i < d; i++) features[base + i] = Math.max(0, o.featureScale * (v[i] + sigma * rng.normal()));
    }
    for (let c = 0; c < CAPTIONS_PER_IMAGE; c++) captions.push(makeCaption(world, objects, o.mentionAll, rng));
  }
  return { features, captions };
}

function makeCaption(
  world: World,
  objects: { cls: number; colour?: { word: string }; size?: { word: string } }[],
  mentionAll: boolean,
  rng: Random,
): string {
  const order = rng.permutation(objects.length);
  const named = mentionAll ? order : order.subarray(0, 1 + rng.nextInt(objects.length));
  const phrases: string[] = [];
  for (const k of named) {
    const obj = objects[k];
    const synonyms = world.nouns[obj.cls];
    const plural = rng.nextFloat() < 0.25;
    const noun = synonyms[rng.nextInt(synonyms.length)] + (plural ? "s" : "");
    const words: string[] = [plural ? (rng.nextFloat() < 0.5 ? "the" : "some") : rng.nextFloat() < 0.5 ? "a" : "the"];
    if (obj.size && rng.nextFloat() < 0.6) words.push(obj.size.word);
    if (obj.colour && rng.nextFloat() < 0.7) words.push(obj.colour.word);
    words.push(noun);
    phrases.push(words.join(" "));
  }
  let caption = phrases[0];
  for (let i = 1; i < phrases.length; i++) caption += ` ${RELATIONS[rng.nextInt(RELATIONS.length)]} ${phrases[i]}`;
  return rng.nextFloat() < 0.5 ? `${caption} .` : caption;
}

function normalize(x: Float64Array): Float64Array {
  let n = 0;
  for (const e of x) n += e * e;
  n = Math.sqrt(n) || 1;
  for (let i = 0; i < x.length; i++) x[i] /= n;
  return x;
}

function addScaled(dst: Float64Array, src: Float64Array, s: number): void {
  for (let i = 0; i < dst.length; i++) dst[i] += s * src[i];
}
