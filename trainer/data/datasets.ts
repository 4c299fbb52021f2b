/**
 * The official dataset layouts (`data.py`'s get_dataset and PrecompDataset, `co_train.py`'s main):
 *
 *   <data_path>/<data_name>/{split}_ims.npy        (images, 36, img_dim) region features
 *   f30k_precomp, coco_precomp: {split}_caps.txt   one caption per line, five per image
 *   cc152k_precomp:             {split}_caps.tsv   image id TAB caption, one per image
 *   now100k_precomp:            {split}_caps_{bpe,bert,jieba}.txt   comma-separated token ids
 *   <vocab_path>/<data_name>_vocab.json            (NoW: now100k_precomp_vocab_<tokenizer>.json)
 *
 * The NoW download names its folder `h5100k_precomp`; `now100k_precomp` is the name the official
 * code tests for everywhere else, so both the flag and the folder are accepted under either name.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FormatError } from "../../shared/formats/ndarray";
import { Vocabulary } from "../../shared/formats/vocab";
import { tokenizeCaption } from "../../shared/text/tokenize";
import { openFeatures, type FeatureStore } from "./features";

export const DATA_NAMES = ["f30k_precomp", "coco_precomp", "cc152k_precomp", "now100k_precomp"] as const;
export type DataName = (typeof DATA_NAMES)[number];

/** The folder name of the NoW download, accepted as a `--data_name` too. */
export const NOW_FOLDER_ALIAS = "h5100k_precomp";

export const NOW_TOKENIZERS = ["bpe", "bert", "jieba"] as const;
export type NowTokenizer = (typeof NOW_TOKENIZERS)[number];

export const SPLITS = ["train", "dev", "test", "testall"] as const;
export type Split = (typeof SPLITS)[number];

/** Regions per image in the official features; the projection head is built for exactly 36. */
export const REGIONS = 36;

/** Images kept in the dev split (PrecompDataset keeps 1000 × im_div captions, except for NoW). */
export const DEV_IMAGE_CAP = 1000;

/** A missing file, an unknown dataset, captions that do not match their images. */
export class DatasetError extends FormatError {
  constructor(file: string, message: string) {
    super(file, message);
    this.name = "DatasetError";
  }
}

export interface CaptionSplit {
  /** Canonical name (`now100k_precomp` also when the folder is `h5100k_precomp`). */
  dataName: DataName;
  split: Split;
  /** The folder the files were read from. */
  dir: string;
  files: { captions: string; images: string };
  /** Token ids including `<start>` and `<end>`; exactly `length` of them (after the dev cap). */
  captions: Int32Array[];
  images: FeatureStore;
  /** Captions per image in the files: 5 when the counts differ, else 1 (PrecompDataset.im_div). */
  imDiv: 1 | 5;
  /** Number of captions used (after the dev cap). */
  length: number;
  /**
   * Captions per image in evaluation: `per_captions` of co_train.validate (5 for Flickr30K and
   * MS-COCO, 1 for CC152K and NoW), except for a file that holds one caption per image where
   * five are usual: it is evaluated with the official metric at one caption per image (the
   * official code, and this one before, crashed on it at the first validation).
   */
  perCaptions: 1 | 5;
  /** cc152k_precomp only: the image id of each caption (first TSV column). */
  imageIds?: string[];
}

/** `co_train.main`'s name handling: the NoW folder alias maps to now100k_precomp. */
export function canonicalDataName(name: string): DataName {
  if (name === NOW_FOLDER_ALIAS) return "now100k_precomp";
  if ((DATA_NAMES as readonly string[]).includes(name)) return name as DataName;
  throw new DatasetError("--data_name", `unsupported dataset '${name}' (allowed: ${[...DATA_NAMES, NOW_FOLDER_ALIAS].join(", ")})`);
}

/** Datasets whose noise is natural: run.py forces noise_ratio 0 and no noise file for them. */
export function hasNaturalNoise(name: string): boolean {
  const n = canonicalDataName(name);
  return n === "cc152k_precomp" || n === "now100k_precomp";
}

/** `per_captions` of co_train.validate: 5 for Flickr30K and MS-COCO, 1 for CC152K and NoW. */
export function perCaptionsFor(name: string): 1 | 5 {
  return hasNaturalNoise(name) ? 1 : 5;
}

/** The split co_train.main tests on: `testall` (5K) for MS-COCO, `test` otherwise. */
export function testSplitFor(name: string): Split {
  return canonicalDataName(name) === "coco_precomp" ? "testall" : "test";
}

/**
 * The folder of a dataset under `dataPath`. For NoW: the folder named by `dataName` when it exists,
 * else the other of `now100k_precomp` / `h5100k_precomp`.
 */
export function resolveDataDir(dataPath: string, dataName: string): string {
  const canonical = canonicalDataName(dataName);
  if (canonical !== "now100k_precomp") return join(dataPath, canonical);
  const named = join(dataPath, dataName);
  if (isDir(named)) return named;
  const other = join(dataPath, dataName === NOW_FOLDER_ALIAS ? "now100k_precomp" : NOW_FOLDER_ALIAS);
  return isDir(other) ? other : named;
}

/** The caption file of a split, relative to the dataset folder. */
export function captionFileName(name: string, split: Split, tokenizer?: string): string {
  switch (canonicalDataName(name)) {
    case "cc152k_precomp":
      return `${split}_caps.tsv`;
    case "now100k_precomp":
      return `${split}_caps_${checkTokenizer(tokenizer)}.txt`;
    default:
      return `${split}_caps.txt`;
  }
}

/** Every file the official layout of a dataset holds (for "missing file" messages). */
export function layoutFiles(name: string, tokenizer?: string): string[] {
  const canonical = canonicalDataName(name);
  const splits: Split[] = canonical === "coco_precomp" ? ["train", "dev", "test", "testall"] : ["train", "dev", "test"];
  const tok = canonical === "now100k_precomp" ? (tokenizer ?? "{bpe,bert,jieba}") : undefined;
  return splits.flatMap((s) => [`${s}_ims.npy`, canonical === "now100k_precomp" ? `${s}_caps_${tok}.txt` : captionFileName(canonical, s)]);
}

/** The vocabulary file co_train.main reads. */
export function vocabFileName(name: string, tokenizer?: string): string {
  const canonical = canonicalDataName(name);
  return canonical === "now100k_precomp" ? `${canonical}_vocab_${checkTokenizer(tokenizer)}.json` : `${canonical}_vocab.json`;
}

/**
 * `co_train.main`'s vocabulary loading: vocab_size is `vocab.idx` for NoW (its ids come from an
 * external tokenizer and may exceed the number of words) and `len(vocab)` otherwise.
 */
export function loadVocabulary(opts: { vocabPath: string; dataName: string; tokenizer?: string }): {
  vocab: Vocabulary;
  vocabSize: number;
  file: string;
} {
  const file = join(opts.vocabPath, vocabFileName(opts.dataName, opts.tokenizer));
  if (!existsSync(file)) {
    throw new DatasetError(file, `vocabulary file not found (--vocab_path ${opts.vocabPath}, --data_name ${opts.dataName}${canonicalDataName(opts.dataName) === "now100k_precomp" ? `, --tokenizer ${opts.tokenizer}` : ""})`);
  }
  const vocab = Vocabulary.parse(readFileSync(file, "utf8"), file);
  const vocabSize = canonicalDataName(opts.dataName) === "now100k_precomp" ? vocab.idx : vocab.length;
  return { vocab, vocabSize, file };
}

export interface LoadSplitOptions {
  dataPath: string;
  dataName: string;
  split: Split;
  vocab: Vocabulary;
  /** Token ids of NoW captions must be below it. */
  vocabSize: number;
  /** NoW only: which `{split}_caps_<tokenizer>.txt` to read. */
  tokenizer?: string;
  /** The user's `--img_dim`, checked against the features. */
  imgDim?: number;
  /** Regions per image to require (default 36). */
  regions?: number;
}

/**
 * `data.py`'s get_dataset plus the parts of PrecompDataset that do not depend on noise: im_div and
 * the dev cap. The dev cap is min(1000 images, the split) where the official code indexes past the
 * end of a smaller dev split (a listed defect).
 */
export function loadSplit(opts: LoadSplitOptions): CaptionSplit {
  const dataName = canonicalDataName(opts.dataName);
  if (!(SPLITS as readonly string[]).includes(opts.split)) {
    throw new DatasetError(opts.dataPath, `unknown split '${opts.split}' (allowed: ${SPLITS.join(", ")})`);
  }
  const dir = resolveDataDir(opts.dataPath, opts.dataName);
  const tokenizer = dataName === "now100k_precomp" ? checkTokenizer(opts.tokenizer) : undefined;
  if (!isDir(dir)) {
    const folders = dataName === "now100k_precomp" ? `now100k_precomp or ${NOW_FOLDER_ALIAS}` : dataName;
    throw new DatasetError(dir, `dataset folder not found: --data_path ${opts.dataPath} must hold ${folders}/ with ${layoutFiles(dataName, tokenizer).join(", ")}`);
  }
  const capsFile = join(dir, captionFileName(dataName, opts.split, tokenizer));
  const imsFile = join(dir, `${opts.split}_ims.npy`);
  for (const f of [capsFile, imsFile]) {
    if (!existsSync(f)) {
      throw new DatasetError(f, `file not found; the ${dataName} layout in ${dir} expects ${layoutFiles(dataName, tokenizer).join(", ")}`);
    }
  }

  let captions: Int32Array[];
  let imageIds: string[] | undefined;
  const text = readFileSync(capsFile, "utf8");
  if (dataName === "now100k_precomp") {
    captions = parseTokenIdCaptions(text, capsFile, opts.vocab, opts.vocabSize);
  } else if (dataName === "cc152k_precomp") {
    const rows = parseCc152kTsv(text, capsFile);
    imageIds = rows.map((r) => r.imageId);
    captions = rows.map((r, i) => encodeCaption(r.caption, opts.vocab, capsFile, i + 1));
  } else {
    captions = pyLines(text).map((line, i) => encodeCaption(line, opts.vocab, capsFile, i + 1));
  }

  const images = openFeatures(imsFile, { regions: opts.regions ?? REGIONS, imgDim: opts.imgDim });
  let imDiv: 1 | 5;
  if (captions.length === images.count) imDiv = 1;
  else if (captions.length === 5 * images.count) imDiv = 5;
  else {
    images.close();
    throw new DatasetError(
      capsFile,
      `${captions.length} captions for ${images.count} images in ${imsFile}: expected one caption per image (${images.count}) or five (${5 * images.count})`,
    );
  }

  let length = captions.length;
  if (opts.split === "dev" && dataName !== "now100k_precomp") {
    length = Math.min(DEV_IMAGE_CAP * imDiv, captions.length);
    captions = captions.slice(0, length);
    if (imageIds) imageIds = imageIds.slice(0, length);
  }
  return {
    dataName,
    split: opts.split,
    dir,
    files: { captions: capsFile, images: imsFile },
    captions,
    images,
    imDiv,
    length,
    perCaptions: Math.min(perCaptionsFor(dataName), imDiv) as 1 | 5,
    ...(imageIds ? { imageIds } : {}),
  };
}

/** `[<start>, vocab(token) for token in word_tokenize(caption.lower()), <end>]`. */
function encodeCaption(caption: string, vocab: Vocabulary, file: string, line: number): Int32Array {
  const tokens = tokenizeCaption(pyStrip(caption));
  if (tokens.length === 0) throw new FormatError(file, `line ${line}: empty caption (no tokens)`);
  const ids = new Int32Array(tokens.length + 2);
  ids[0] = vocab.start;
  for (let i = 0; i < tokens.length; i++) ids[i + 1] = vocab.id(tokens[i]);
  ids[tokens.length + 1] = vocab.end;
  return ids;
}

const INT_TOKEN = /^[+-]?\d+$/;

/** NoW's `{split}_caps_<tokenizer>.txt`: `[<start>, int(t) for t in line.split(',') if t, <end>]`. */
function parseTokenIdCaptions(text: string, file: string, vocab: Vocabulary, vocabSize: number): Int32Array[] {
  return pyLines(text).map((raw, li) => {
    const line = li + 1;
    const ids: number[] = [vocab.start];
    for (const part of pyStrip(raw).split(",")) {
      if (part === "") continue;
      const t = pyStrip(part); // int() ignores surrounding whitespace
      if (!INT_TOKEN.test(t)) throw new FormatError(file, `line ${line}: token '${part}' is not an integer id`);
      const id = Number(t);
      if (id < 0 || id >= vocabSize) {
        throw new FormatError(file, `line ${line}: token id ${id} outside the vocabulary [0, ${vocabSize})`);
      }
      ids.push(id);
    }
    if (ids.length === 1) throw new FormatError(file, `line ${line}: empty caption (no token ids)`);
    ids.push(vocab.end);
    return Int32Array.from(ids);
  });
}

/**
 * CC152K's `{split}_caps.tsv` read as Python's `csv.reader(f, delimiter="\t")` does: fields may be
 * quoted with `"` (a doubled `""` inside is one quote, and a quoted field may span lines).
 */
export function parseCc152kTsv(text: string, file: string): { imageId: string; caption: string }[] {
  const rows: { imageId: string; caption: string }[] = [];
  for (const { fields, startLine } of pyCsvRows(text, "\t")) {
    if (fields.length < 2) {
      throw new FormatError(file, `line ${startLine}: expected 'image id<TAB>caption', found ${fields.length} field${fields.length === 1 ? "" : "s"}`);
    }
    rows.push({ imageId: fields[0], caption: pyStrip(fields[1]) });
  }
  return rows;
}

/** Python csv (excel dialect, non-strict) over a whole file, with the lines each record spans. */
function* pyCsvRows(text: string, delimiter: string): Generator<{ fields: string[]; startLine: number }> {
  let i = 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const startLine = line;
    const fields: string[] = [];
    let field = "";
    let quoted = false; // inside a quoted section
    let atFieldStart = true;
    let sawAny = false;
    for (;;) {
      if (i >= n) {
        if (sawAny) fields.push(field);
        break;
      }
      const c = text[i];
      if (quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
          } else {
            quoted = false;
            i++;
          }
        } else {
          if (c === "\n" || (c === "\r" && text[i + 1] !== "\n")) line++;
          field += c;
          i++;
        }
        continue;
      }
      if (c === "\r" || c === "\n") {
        i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
        line++;
        // csv.reader yields [] for a blank line; a record ends at the line end otherwise.
        if (sawAny) fields.push(field);
        break;
      }
      sawAny = true;
      if (c === delimiter) {
        fields.push(field);
        field = "";
        atFieldStart = true;
        i++;
        continue;
      }
      if (c === '"' && atFieldStart) {
        quoted = true;
        atFieldStart = false;
        i++;
        continue;
      }
      atFieldStart = false;
      field += c;
      i++;
    }
    yield { fields, startLine };
  }
}

/** Python's `\s` (str.strip()'s whitespace). */
const PY_SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, "g");

/** Python's `str.strip()` (JavaScript's trim() also strips U+FEFF and not \x1c-\x1f / \x85). */
export function pyStrip(s: string): string {
  return s.replace(PY_STRIP, "");
}

/** `for line in open(file)`: universal newlines, no empty record after a final newline. */
export function pyLines(text: string): string[] {
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/**
 * `vocab.py`'s build_vocab: words of the tokenized captions in first-seen order, kept when they
 * occur at least `threshold` times (the official vocabularies used 4), after the four special tokens.
 */
export function buildVocabulary(captions: Iterable<string>, threshold = 4): Vocabulary {
  const counts = new Map<string, number>();
  for (const c of captions) {
    for (const t of tokenizeCaption(c)) counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  const words: string[] = [];
  for (const [w, n] of counts) if (n >= threshold) words.push(w);
  return Vocabulary.fromWords(words);
}

function checkTokenizer(tokenizer: string | undefined): NowTokenizer {
  if (tokenizer && (NOW_TOKENIZERS as readonly string[]).includes(tokenizer)) return tokenizer as NowTokenizer;
  throw new DatasetError("--tokenizer", `'${tokenizer ?? ""}' is not a NoW tokenizer (allowed: ${NOW_TOKENIZERS.join(", ")})`);
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
