/**
 * The dimensions and switches of one SGRAF network, named after the official `run.py` flags.
 */
import * as v from "valibot";

/** Regions per image: the official code fixes 36 (bottom-up-attention features). */
export const REGIONS = 36;

/** The similarity reasoning modules of SGRAF: graph reasoning or attention filtration. */
export const MODULE_NAMES = ["SGR", "SAF"] as const;

export const SgrafConfigSchema = v.object({
  img_dim: v.pipe(v.number(), v.integer(), v.minValue(1)),
  embed_size: v.pipe(v.number(), v.integer(), v.minValue(1)),
  word_dim: v.pipe(v.number(), v.integer(), v.minValue(1)),
  sim_dim: v.pipe(v.number(), v.integer(), v.minValue(1)),
  proj_dim: v.pipe(v.number(), v.integer(), v.minValue(1)),
  vocab_size: v.pipe(v.number(), v.integer(), v.minValue(1)),
  num_layers: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 1),
  bi_gru: v.optional(v.boolean(), true),
  no_imgnorm: v.optional(v.boolean(), false),
  no_txtnorm: v.optional(v.boolean(), false),
  module_name: v.optional(v.picklist(MODULE_NAMES), "SGR"),
  sgr_step: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 3),
});

export type SgrafConfig = v.InferOutput<typeof SgrafConfigSchema>;

/** Hidden width of the projection head (the official Projection_Head default). */
export const PROJ_HIDDEN = 256;

/** Picks the model fields out of a larger option object (e.g. a resolved command line) and validates them. */
export function sgrafConfig(opts: Record<string, unknown>): SgrafConfig {
  const picked: Record<string, unknown> = {};
  for (const k of Object.keys(SgrafConfigSchema.entries)) if (opts[k] !== undefined) picked[k] = opts[k];
  const r = v.safeParse(SgrafConfigSchema, picked);
  if (!r.success) {
    const issue = r.issues[0];
    throw new Error(`invalid model configuration: ${v.getDotPath(issue) ?? "(root)"}: ${issue.message}`);
  }
  return r.output;
}
