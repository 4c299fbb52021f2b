/**
 * The records of `metrics.jsonl`, one JSON object per line, written by the trainer and read back by
 * the report. Each record type is a valibot schema, so the file is checked where it is read
 * (`parseMetricsJsonl`) and the TypeScript types are inferred from the same definitions.
 *
 * Non-finite numbers cannot be written as JSON (`JSON.stringify(NaN)` is `null`), so the loss terms
 * and the learning rate of a step accept `null`: the record of a run that went to NaN still parses.
 */
import * as v from "valibot";
import { SimilaritySpreadSchema } from "../shared/eval/diagnostics";
import { RecallMetricsSchema } from "../shared/eval/metrics";

export type { RecallMetrics } from "../shared/eval/metrics";

const Int = v.pipe(v.number(), v.integer(), v.minValue(0));
const Count = v.pipe(v.number(), v.integer(), v.minValue(0));
const Share = v.pipe(v.number(), v.minValue(0), v.maxValue(1));

export const PHASES = ["warmup", "train"] as const;
export const NETS = ["A", "B"] as const;
/** What a split is computed from: the per-sample loss, or the PO (pseudo-classification) consistency. */
export const SPLIT_BY = ["loss", "po"] as const;
/** The loss terms the official `train`/`warmup` print, in that order. */
export const LOSS_TERMS = ["triplet_loss", "ce_loss_img", "ce_loss_cap", "neg_en_loss_img", "neg_en_loss_cap", "triplet_loss_u"] as const;

export type Phase = (typeof PHASES)[number];
export type Net = (typeof NETS)[number];
export type SplitBy = (typeof SPLIT_BY)[number];
export type LossTerm = (typeof LOSS_TERMS)[number];

const LossValue = v.optional(v.nullable(v.number()));

/** Running averages of the loss terms over the epoch so far, logged every `log_step` steps. */
export const StepRecordSchema = v.object({
  type: v.literal("step"),
  phase: v.picklist(PHASES),
  net: v.picklist(NETS),
  /** Epoch within its phase, from 0. */
  epoch: Int,
  /** Index of the batch just done within the epoch, from 0 (the official `i`). */
  step: Int,
  /** Batches in this epoch for this net. */
  steps: v.pipe(v.number(), v.integer(), v.minValue(1)),
  lr: v.nullable(v.number()),
  /** Unix time in seconds. */
  time: v.number(),
  triplet_loss: LossValue,
  ce_loss_img: LossValue,
  ce_loss_cap: LossValue,
  neg_en_loss_img: LossValue,
  neg_en_loss_cap: LossValue,
  triplet_loss_u: LossValue,
});

const Pair = v.tuple([v.number(), v.number()]);

/**
 * Two-component Gaussian mixture fitted on the min-max normalised values (official `eval_train`),
 * component order as fitted.
 */
export const GmmParamsSchema = v.object({
  means: Pair,
  variances: v.tuple([v.pipe(v.number(), v.minValue(0)), v.pipe(v.number(), v.minValue(0))]),
  weights: v.tuple([Share, Share]),
});

/**
 * Histogram over [0, 1] of the normalised per-sample values, `bins` equal bins, split by the known
 * noise label; `noisy` is null when the noise is unknown and then `clean` counts every sample.
 */
export const HistogramSchema = v.pipe(
  v.object({
    bins: v.pipe(v.number(), v.integer(), v.minValue(1)),
    clean: v.array(Count),
    noisy: v.nullable(v.array(Count)),
  }),
  v.check((h) => h.clean.length === h.bins && (h.noisy === null || h.noisy.length === h.bins), "clean and noisy must hold `bins` counts each"),
);

/** One clean/noisy division of the training set, per co-training epoch, net and criterion. */
export const SplitRecordSchema = v.object({
  type: v.literal("split"),
  epoch: Int,
  net: v.picklist(NETS),
  by: v.picklist(SPLIT_BY),
  size: Count,
  selected_noisy: Count,
  /** True when the official 1/100 rule forced the split (too few predicted clean). */
  forced: v.boolean(),
  /** Against the known noisy captions; null when the dataset's noise is unknown (cc152k, NoW). */
  precision: v.nullable(Share),
  recall: v.nullable(Share),
  gmm: GmmParamsSchema,
  hist: HistogramSchema,
  /** ROC-AUC of the criterion (higher loss or inconsistency = noisy) against the known noisy captions; null when unknown. */
  auc: v.optional(v.nullable(v.number())),
});


const EpochLabel = v.union([v.literal("warmup"), Int]);

export const ValidationRecordSchema = v.object({
  type: v.literal("validation"),
  /** "warmup" for the validation after the warmup phase, else the co-training epoch. */
  epoch: EpochLabel,
  i2t: RecallMetricsSchema,
  t2i: RecallMetricsSchema,
  rsum: v.number(),
  /** Whether this validation improved on the best so far (and so triggered a test). */
  best: v.boolean(),
  /** Each net's similarity spread on the validation split. */
  spread: v.optional(v.object({ A: SimilaritySpreadSchema, B: SimilaritySpreadSchema })),
  /** True for the validation repeated after a collapsed net was restored. */
  recovered: v.optional(v.boolean()),
});

/**
 * What the diagnostics flag: a split that keeps (nearly) nothing or everything, a collapsed net, or
 * a run whose selected model validates below the model after warmup (co-training made it worse).
 */
export const ALARMS = ["degenerate_split", "collapsed_net", "below_warmup"] as const;

/** A problem the run noticed, and what it did about it. */
export const AlarmRecordSchema = v.object({
  type: v.literal("alarm"),
  kind: v.picklist(ALARMS),
  epoch: Int,
  /** The net concerned (absent for below_warmup, which is about the two-net model). */
  net: v.optional(v.picklist(NETS)),
  /**
   * The measured value and the rule's bound: the split's clean share, the net's similarity std, or
   * the selected model's validation rsum against the one after warmup.
   */
  value: v.number(),
  threshold: v.number(),
  /** What was done: "reported", or the recovery applied. */
  action: v.string(),
});

export const TestRecordSchema = v.object({
  type: v.literal("test"),
  epoch: EpochLabel,
  split: v.picklist(["test", "testall"]),
  /** Averaged over five folds of 1000 images (COCO 1K) rather than the whole split. */
  fold5: v.boolean(),
  i2t: RecallMetricsSchema,
  t2i: RecallMetricsSchema,
  rsum: v.number(),
});

export const EpochRecordSchema = v.object({
  type: v.literal("epoch"),
  phase: v.picklist(PHASES),
  epoch: Int,
  seconds: v.pipe(v.number(), v.minValue(0)),
  lr: v.nullable(v.number()),
});

/** Anything else worth showing: a resume, a NaN stop, an interruption. */
export const EventRecordSchema = v.object({
  type: v.literal("event"),
  message: v.string(),
  /** Unix time in seconds, when known. */
  time: v.optional(v.number()),
});

export const MetricsRecordSchema = v.variant("type", [
  StepRecordSchema,
  SplitRecordSchema,
  ValidationRecordSchema,
  TestRecordSchema,
  EpochRecordSchema,
  EventRecordSchema,
  AlarmRecordSchema,
]);

export type StepRecord = v.InferOutput<typeof StepRecordSchema>;
export type GmmParams = v.InferOutput<typeof GmmParamsSchema>;
export type Histogram = v.InferOutput<typeof HistogramSchema>;
export type SplitRecord = v.InferOutput<typeof SplitRecordSchema>;
export type ValidationRecord = v.InferOutput<typeof ValidationRecordSchema>;
export type TestRecord = v.InferOutput<typeof TestRecordSchema>;
export type EpochRecord = v.InferOutput<typeof EpochRecordSchema>;
export type EventRecord = v.InferOutput<typeof EventRecordSchema>;
export type AlarmRecord = v.InferOutput<typeof AlarmRecordSchema>;
export type MetricsRecord = v.InferOutput<typeof MetricsRecordSchema>;

const RECORD_TYPES = MetricsRecordSchema.options.map((o) => o.entries.type.literal);

/**
 * Reads `metrics.jsonl`: one record per line, blank lines ignored. Throws on the first line that is
 * not JSON or not a record, naming the source and the line number (1-based).
 */
export function parseMetricsJsonl(text: string, source = "metrics.jsonl"): MetricsRecord[] {
  const records: MetricsRecord[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const where = `${source} line ${i + 1}`;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: not JSON (${(e as Error).message})`);
    }
    const r = v.safeParse(MetricsRecordSchema, json);
    if (!r.success) {
      const issue = r.issues[0];
      const path = v.getDotPath(issue);
      if (path === "type") {
        const got = typeof json === "object" && json !== null ? JSON.stringify((json as { type?: unknown }).type) : "none";
        throw new Error(`${where}: unknown record type ${got ?? "undefined"}; expected one of ${RECORD_TYPES.join(", ")}`);
      }
      throw new Error(`${where}: ${path ?? "(record)"}: ${issue.message}`);
    }
    records.push(r.output);
  }
  return records;
}
