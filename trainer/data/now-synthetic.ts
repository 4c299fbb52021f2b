/**
 * A tiny dataset in NoW's layout with Chinese captions, for the Jieba text path end to end:
 *
 *   now100k_precomp/{train,dev,test}_ims.npy        the synthetic images (synthetic.ts)
 *   now100k_precomp/{train,dev,test}_caps_jieba.txt comma-separated vocabulary ids of jieba.lcut(caption)
 *   vocab/now100k_precomp_vocab_jieba.json          the four special tokens, then every word seen
 *   captions.json                                   the caption texts (NoW ships none)
 *
 * The captions are synthetic.ts's, one per image (NoW has one), with each word put into Chinese of
 * the kind NoW's web pages hold: the class nouns become product and service words, the attributes
 * and relations their Chinese, and the words are written without spaces, so that Jieba, not the
 * generator, decides where words end, as it did for NoW.
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Vocabulary } from "../../shared/formats/vocab";
import type { JiebaSegmenter } from "../../shared/text/jieba";
import { generateSynthetic, type SyntheticOptions } from "./synthetic";

export const NOW_SYNTHETIC_SPLITS = ["train", "dev", "test"] as const;
const CAPTIONS_PER_SOURCE_IMAGE = 5;

const FIXED: Record<string, string> = {
  a: "一个",
  the: "这个",
  some: "一些",
  two: "两个",
  red: "红色",
  green: "绿色",
  blue: "蓝色",
  yellow: "黄色",
  white: "白色",
  black: "黑色",
  large: "大号",
  small: "小号",
  with: "搭配",
  beside: "旁边是",
  near: "靠近",
  and: "和",
  on: "上面有",
  ".": "。",
};

/** Dictionary words, so that each class noun is one Jieba word in most contexts. */
const NOUNS = [
  "连衣裙", "手机", "银行卡", "理财", "外卖", "火锅", "咖啡", "优惠券", "机票", "酒店", "运动鞋", "口红",
  "电影票", "红包", "耳机", "冰箱", "书包", "保险", "基金", "花呗", "蛋糕", "奶茶", "电脑", "相机",
  "汽车", "自行车", "手表", "雨伞", "帽子", "眼镜", "衬衫", "牛仔裤", "沙发", "台灯", "茶叶", "水果",
];

export interface NowSyntheticDataset {
  dataPath: string;
  dataName: "now100k_precomp";
  vocabPath: string;
  tokenizer: "jieba";
  imgDim: number;
  /** Caption texts per split, line by line as in the `_caps_jieba.txt` files. */
  captions: Record<(typeof NOW_SYNTHETIC_SPLITS)[number], string[]>;
  vocab: Vocabulary;
}

/** Generates the dataset into `dir`; same options → identical bytes. */
export function generateNowSynthetic(dir: string, jieba: JiebaSegmenter, options: Partial<SyntheticOptions> = {}): NowSyntheticDataset {
  const source = join(dir, ".source");
  const ds = generateSynthetic(source, { ...options, noiseRatio: 0 });
  const dataDir = join(dir, "now100k_precomp");
  const vocabDir = join(dir, "vocab");
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(vocabDir, { recursive: true });
  const chinese = translator();
  const captions = {} as NowSyntheticDataset["captions"];
  for (const split of NOW_SYNTHETIC_SPLITS) {
    const lines = readFileSync(join(source, ds.dataName, `${split}_caps.txt`), "utf8").split("\n").filter((l) => l !== "");
    captions[split] = lines.filter((_, i) => i % CAPTIONS_PER_SOURCE_IMAGE === 0).map(chinese);
    copyFileSync(join(source, ds.dataName, `${split}_ims.npy`), join(dataDir, `${split}_ims.npy`));
  }
  const words = NOW_SYNTHETIC_SPLITS.map((s) => captions[s].map((c) => jieba.cut(c)));
  const vocab = Vocabulary.fromWords(words.flat(2));
  NOW_SYNTHETIC_SPLITS.forEach((split, k) => {
    const ids = words[k].map((w) => w.map((x) => vocab.id(x)).join(","));
    writeFileSync(join(dataDir, `${split}_caps_jieba.txt`), ids.map((l) => `${l}\n`).join(""));
  });
  writeFileSync(join(vocabDir, "now100k_precomp_vocab_jieba.json"), JSON.stringify(vocab.toJSON()));
  writeFileSync(join(dir, "captions.json"), `${JSON.stringify(captions, null, 1)}\n`);
  rmSync(source, { recursive: true, force: true });
  return { dataPath: dir, dataName: "now100k_precomp", vocabPath: vocabDir, tokenizer: "jieba", imgDim: ds.imgDim, captions, vocab };
}

/** English synthetic caption → Chinese; invented nouns get NOUNS in order of first sight. */
function translator(): (caption: string) => string {
  const nouns = new Map<string, string>();
  const noun = (w: string) => {
    const base = nouns.has(w) ? w : w.endsWith("s") && nouns.has(w.slice(0, -1)) ? w.slice(0, -1) : w;
    if (!nouns.has(base)) {
      if (nouns.size >= NOUNS.length) throw new Error(`now-synthetic: more than ${NOUNS.length} nouns; use fewer classes or synonyms`);
      nouns.set(base, NOUNS[nouns.size]);
    }
    return nouns.get(base)!;
  };
  return (caption) =>
    caption
      .split(" ")
      .map((w) => FIXED[w] ?? noun(w))
      .join("");
}
