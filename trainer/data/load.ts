/**
 * The data of a training run, as `co_train.main` loads it: the vocabulary, the train / dev / test
 * splits and the noise index (read from `--noise_file`, or drawn and saved); or the embedded
 * synthetic dataset when the configuration asks for it.
 */
import type { TrainConfig } from "../config";
import type { PairSource } from "./batches";
import { type CaptionSplit, canonicalDataName, loadSplit, loadVocabulary, testSplitFor } from "./datasets";
import { type NoiseIndex, defaultNoiseFile, effectiveNoise, loadOrCreateNoise } from "./noise";
import { ensureSynthetic } from "./synthetic";

export interface Data {
  dataName: string;
  vocabSize: number;
  train: CaptionSplit;
  dev: CaptionSplit;
  test: CaptionSplit;
  noise: NoiseIndex;
  /** The training pairs as the noise index pairs them: what every training and split pass draws from. */
  pairs: PairSource;
}

/** The data flags as they were resolved: the embedded dataset's paths, the noise file used or written. */
export type ResolvedDataFlags = Pick<TrainConfig, "data_path" | "data_name" | "vocab_path" | "noise_file" | "noise_ratio">;

/** Loads a run's data; `config` is not modified, the flags it resolved are returned beside the data. */
export function loadData(config: TrainConfig, cacheDir: string): { data: Data; resolved: ResolvedDataFlags } {
  const flags: ResolvedDataFlags = { data_path: config.data_path, data_name: config.data_name, vocab_path: config.vocab_path, noise_file: config.noise_file, noise_ratio: config.noise_ratio };
  if (config.synthetic) {
    const ds = ensureSynthetic(cacheDir, { imgDim: config.img_dim, noiseRatio: config.noise_ratio, seed: 0 });
    flags.data_path = ds.dataPath;
    flags.data_name = ds.dataName;
    flags.vocab_path = ds.vocabPath;
    if (!flags.noise_file && ds.noiseFile) flags.noise_file = ds.noiseFile;
  }
  const dataName = canonicalDataName(flags.data_name);
  const noise = effectiveNoise(dataName, flags.noise_ratio, flags.noise_file || defaultNoiseFile(config.output_dir, dataName, flags.noise_ratio));
  flags.noise_ratio = noise.noiseRatio;
  flags.noise_file = noise.noiseFile;
  const { vocab, vocabSize } = loadVocabulary({ vocabPath: flags.vocab_path, dataName: flags.data_name, tokenizer: config.tokenizer });
  const common = { dataPath: flags.data_path, dataName: flags.data_name, vocab, vocabSize, tokenizer: config.tokenizer, imgDim: config.img_dim };
  const train = loadSplit({ ...common, split: "train" });
  const dev = loadSplit({ ...common, split: "dev" });
  const test = loadSplit({ ...common, split: testSplitFor(dataName) });
  const noiseIndex = loadOrCreateNoise({
    captions: train.length,
    images: train.images.count,
    imDiv: train.imDiv,
    noiseRatio: flags.noise_ratio,
    noiseFile: flags.noise_file,
    seed: config.seed,
  });
  const pairs: PairSource = { captions: train.captions, images: train.images, t2i: noiseIndex.t2i };
  return { data: { dataName, vocabSize, train, dev, test, noise: noiseIndex, pairs }, resolved: flags };
}
