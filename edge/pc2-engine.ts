/**
 * The retrieval engine of an exported PC2 model: SGRAF nets on tfjs (wasm at the edge) and a
 * gallery of precomputed image-side and caption-side encodings. Text is tokenized with the
 * model's vocabulary (NLTK word_tokenize of the lower-cased text, as the official vocabularies);
 * scores of the two nets are averaged, as the official evaluation does.
 */
import { evaluateRecall } from "../shared/eval/metrics";
import { Vocabulary } from "../shared/formats/vocab";
import { REGIONS } from "../shared/model/config";
import { type EncodedCaptions, type EncodedImages, encodeCaptions, encodeImages, selectImages, similarityMatrix, sliceCaptions } from "../shared/model/inference";
import { type ModelPackage, decodeModelPackage, MODEL_JSON } from "../shared/model/package";
import { tokenizeCaption } from "../shared/text/tokenize";
import type { AssetSource } from "./assets.ts";
import { EngineInputError, type EngineLoader, type EvalResult, type Hit, type ImageQuery, type ModelInfo, type RetrievalEngine, type TextQuery } from "./engine.ts";

/** Longest caption accepted, in tokens (the official captions are far shorter). */
const MAX_TOKENS = 128;

export class Pc2Engine implements RetrievalEngine {
  readonly imgDim: number;
  readonly regions = REGIONS;
  readonly vocabSize: number;
  private readonly vocab: Vocabulary | null;

  constructor(readonly pkg: ModelPackage) {
    this.imgDim = pkg.config.img_dim;
    this.vocabSize = pkg.config.vocab_size;
    this.vocab = pkg.vocab ? new Vocabulary(pkg.vocab, "vocab.json") : null;
  }

  info(): ModelInfo {
    const g = this.pkg.gallery;
    return {
      config: { ...this.pkg.config },
      dtype: this.pkg.dtype,
      sha256: this.pkg.sha256,
      nets: this.pkg.netNames,
      gallery: g ? { images: g.images[0].count, captions: g.captions[0].count, perCaptions: g.perCaptions } : null,
    };
  }

  /** Token ids of a query: `<start>` words `<end>`, as the official data.py builds captions. */
  tokens(q: TextQuery): Int32Array {
    let ids: number[];
    if (q.tokens) ids = q.tokens;
    else {
      if (!this.vocab) throw new EngineInputError("this model takes token ids (its captions were tokenized outside the project); send `tokens`");
      const words = tokenizeCaption(q.text ?? "");
      if (!words.length) throw new EngineInputError("text: tokenizes to no words");
      ids = [this.vocab.start, ...words.map((w) => this.vocab!.id(w)), this.vocab.end];
    }
    if (ids.length > MAX_TOKENS) throw new EngineInputError(`text: ${ids.length} tokens, at most ${MAX_TOKENS}`);
    return Int32Array.from(ids);
  }

  private gallery() {
    const g = this.pkg.gallery;
    if (!g) throw new EngineInputError("this model has no gallery");
    return g;
  }

  /** Averaged similarity of the nets between images and captions given per net. */
  private sims(images: (k: number) => EncodedImages, captions: (k: number) => EncodedCaptions): Float32Array {
    let acc: Float32Array | null = null;
    this.pkg.nets.forEach((p, k) => {
      const s = similarityMatrix(p, images(k), captions(k));
      if (!acc) acc = s;
      else for (let i = 0; i < s.length; i++) acc[i] += s[i];
    });
    const out = acc as unknown as Float32Array;
    const n = this.pkg.nets.length;
    if (n > 1) for (let i = 0; i < out.length; i++) out[i] /= n;
    return out;
  }

  private encodeQueryCaption(k: number, tokens: Int32Array): EncodedCaptions {
    return encodeCaptions(this.pkg.nets[k], tokens, Int32Array.of(tokens.length));
  }

  private encodeQueryImage(k: number, q: ImageQuery): EncodedImages {
    if (q.features) return encodeImages(this.pkg.nets[k], q.features, 1);
    return selectImages(this.gallery().images[k], [q.image!]);
  }

  async searchImages(q: TextQuery, k: number): Promise<Hit[]> {
    const g = this.gallery();
    const tokens = this.tokens(q);
    const caps = this.pkg.nets.map((_, n) => this.encodeQueryCaption(n, tokens));
    const s = this.sims((n) => g.images[n], (n) => caps[n]);
    return topK(s, k).map(([index, score]) => ({ index, score, image: index }));
  }

  async searchCaptions(q: ImageQuery, k: number): Promise<Hit[]> {
    const g = this.gallery();
    const imgs = this.pkg.nets.map((_, n) => this.encodeQueryImage(n, q));
    const s = this.sims((n) => imgs[n], (n) => g.captions[n]);
    return topK(s, k).map(([index, score]) => ({ index, score, caption: g.texts[index] ?? undefined, image: Math.floor(index / g.perCaptions) }));
  }

  async score(pairs: Array<ImageQuery & TextQuery>): Promise<number[]> {
    return pairs.map((pair) => {
      const tokens = this.tokens(pair);
      return this.sims(
        (n) => this.encodeQueryImage(n, pair),
        (n) => this.encodeQueryCaption(n, tokens),
      )[0];
    });
  }

  async evaluate(limit?: number): Promise<EvalResult> {
    const g = this.gallery();
    const nImages = Math.min(limit ?? g.images[0].count, g.images[0].count);
    const nCaptions = nImages * g.perCaptions;
    const idx = Int32Array.from({ length: nImages }, (_, i) => i);
    const s = this.sims(
      (n) => (nImages === g.images[n].count ? g.images[n] : selectImages(g.images[n], idx)),
      (n) => (nCaptions === g.captions[n].count ? g.captions[n] : sliceCaptions(g.captions[n], 0, nCaptions)),
    );
    const r = evaluateRecall(s, nImages, g.perCaptions);
    return { i2t: r.i2t, t2i: r.t2i, rsum: r.rsum, images: nImages, captions: nCaptions };
  }

  dispose(): void {
    for (const p of this.pkg.nets) p.dispose();
  }
}

/** Indices of the k largest values, best first (ties: lower index first). */
export function topK(values: Float32Array, k: number): Array<[number, number]> {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => values[b] - values[a] || a - b);
  return idx.slice(0, k).map((i) => [i, values[i]]);
}

/** Reads an exported model directory through any AssetSource. */
export async function loadPackage(assets: AssetSource, source = "model"): Promise<ModelPackage> {
  const json = await assets.get(MODEL_JSON);
  if (json === null) throw new Error(`the model has no ${MODEL_JSON}; is this a model directory?`);
  return decodeModelPackage(
    json,
    async (name) => {
      const b = await assets.get(name);
      if (b === null) throw new Error(`${source}/${name}: missing file of the exported model`);
      return b;
    },
    source,
  );
}

export const loadPc2Engine: EngineLoader = async (assets) => new Pc2Engine(await loadPackage(assets));
