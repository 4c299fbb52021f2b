/**
 * The report page: the document, its sections and tables, with the charts from `charts.ts` set in.
 *
 * A training report as one self-contained HTML document: inline CSS and hand-drawn inline SVG, no
 * scripts, fonts or styles from elsewhere, so it opens offline from the output folder. Pure: the
 * records come in, a string goes out (the trainer writes the file).
 *
 * Every string that comes from the records or the configuration is escaped; every coordinate is
 * computed from finite values only, so degenerate runs (no records, one epoch, empty histograms,
 * a zero-variance mixture component, unknown noise) still render.
 */
import {
  type EpochRecord,
  type EventRecord,
  NETS,
  type RecallMetrics,
  SPLIT_BY,
  type MetricsRecord,
  type SplitRecord,
  type TestRecord,
  type ValidationRecord,
} from "../metrics";
import { BY_NAME, histogramChart, lossChart, splitChart, validationChart } from "./charts";
import { configValue, duration, epochName, esc, fix } from "./format";
import { bestValidation, latestSplits, latestValidations, recordsByType } from "./records";
import { alarmBanner, diagnosticsSection } from "./diagnostics";
import { CSS } from "./style";

export interface ReportMeta {
  title: string;
  /** The resolved configuration, shown collapsed; `p_threshold` (when a number) places the split boundary. */
  config: Record<string, unknown>;
  /** Shown in the header; now, as an ISO string, when absent. */
  generatedAt?: string;
}

/** Renders the report of a run from its `metrics.jsonl` records. */
export function renderReport(records: MetricsRecord[], meta: ReportMeta): string {
  const { step: steps, split: splits, validation: validations, test: tests, epoch: epochs, event: events, alarm: alarms } = recordsByType(records);
  const threshold = typeof meta.config.p_threshold === "number" && meta.config.p_threshold > 0 && meta.config.p_threshold < 1 ? meta.config.p_threshold : 0.5;
  const vals = latestValidations(validations);
  const generatedAt = meta.generatedAt ?? new Date().toISOString();

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(meta.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${esc(meta.title)}</h1>
<p class="muted">Generated ${esc(generatedAt)} · ${records.length} records</p>
</header>
<main>
${alarmBanner(alarms)}
${summarySection(vals, tests, epochs, events, meta.config)}
<section id="losses">
<h2>Training losses</h2>
<p class="muted">Running averages over each epoch, logged every <code>log_step</code> batches; x counts the batches each net has trained on.</p>
${lossChart(steps)}
</section>
<section id="validation">
<h2>Validation</h2>
${validationChart(vals)}
${validationTable(vals)}
</section>
${diagnosticsSection(vals, splits, alarms)}
<section id="splits">
<h2>Clean/noisy split</h2>
<p class="muted">Precision and recall of the pairs predicted noisy against the known noisy pairs, and the share predicted noisy.</p>
${splitChart(splits)}
</section>
${histogramSections(splits, threshold)}
</main>
</body>
</html>
`;
}

function summarySection(
  vals: ValidationRecord[],
  tests: TestRecord[],
  epochs: EpochRecord[],
  events: EventRecord[],
  config: Record<string, unknown>,
): string {
  const best = bestValidation(vals);
  const last = vals.length > 0 ? vals[vals.length - 1] : undefined;
  const seconds = (phase: "warmup" | "train") => epochs.filter((e) => e.phase === phase).reduce((s, e) => s + e.seconds, 0);
  const bestTests = best ? tests.filter((t) => t.epoch === best.epoch) : [];
  const warmupEpochs = epochs.filter((e) => e.phase === "warmup").length;
  const trainEpochs = epochs.filter((e) => e.phase === "train").length;
  const rows: [string, string][] = [
    ["Best validation", best ? `rsum <b>${fix(best.rsum, 1)}</b> at ${epochName(best.epoch)}` : "none yet"],
    ["Last validation", last ? `rsum ${fix(last.rsum, 1)} at ${epochName(last.epoch)}` : "none yet"],
    ["Test at the best", bestTests.length ? bestTests.map((t) => `rsum <b>${fix(t.rsum, 1)}</b> on ${esc(t.split)}${t.fold5 ? " (5-fold)" : ""}`).join(", ") : "none"],
    ["Epochs done", `${warmupEpochs} warmup (${duration(seconds("warmup"))}), ${trainEpochs} co-training (${duration(seconds("train"))})`],
  ];
  const testRows = tests.length === 0
    ? `<p class="muted">No test results.</p>`
    : `<table id="table-tests">
<thead><tr><th>Epoch</th><th>Split</th><th>i2t R@1</th><th>R@5</th><th>R@10</th><th>medr</th><th>meanr</th><th>t2i R@1</th><th>R@5</th><th>R@10</th><th>medr</th><th>meanr</th><th>rsum</th></tr></thead>
<tbody>
${tests.map((t) => `<tr${best && t.epoch === best.epoch ? ` class="best"` : ""}><td>${esc(epochName(t.epoch))}</td><td>${esc(t.split)}${t.fold5 ? " (5-fold)" : ""}</td>${recallCells(t.i2t, true)}${recallCells(t.t2i, true)}<td><b>${fix(t.rsum, 1)}</b></td></tr>`).join("\n")}
</tbody>
</table>`;
  const eventList = events.length === 0 ? "" : `<h3>Events</h3>
<ul id="events">
${events.map((e) => `<li>${e.time !== undefined && Number.isFinite(e.time) ? `<span class="muted">${esc(new Date(e.time * 1000).toISOString())}</span> ` : ""}${esc(e.message)}</li>`).join("\n")}
</ul>`;
  const epochTable = epochs.length === 0 ? "" : `<details>
<summary>Epoch times (${epochs.length})</summary>
<table id="table-epochs">
<thead><tr><th>Phase</th><th>Epoch</th><th>Time</th><th>Learning rate</th></tr></thead>
<tbody>
${epochs.map((e) => `<tr><td>${esc(e.phase)}</td><td>${e.epoch}</td><td>${duration(e.seconds)}</td><td>${e.lr === null ? "–" : esc(String(e.lr))}</td></tr>`).join("\n")}
</tbody>
</table>
</details>`;
  const configRows = Object.entries(config)
    .map(([k, value]) => `<tr><th>${esc(k)}</th><td><code>${esc(configValue(value))}</code></td></tr>`)
    .join("\n");
  return `<section id="summary">
<h2>Summary</h2>
<table id="table-summary" class="kv">
<tbody>
${rows.map(([k, value]) => `<tr><th>${k}</th><td>${value}</td></tr>`).join("\n")}
</tbody>
</table>
<h3>Test</h3>
${testRows}
${eventList}
${epochTable}
<details id="config">
<summary>Configuration (${Object.keys(config).length} settings)</summary>
<table class="kv">
<tbody>
${configRows}
</tbody>
</table>
</details>
</section>`;
}

function validationTable(vals: ValidationRecord[]): string {
  if (vals.length === 0) return `<p class="muted">No validation results.</p>`;
  const best = bestValidation(vals);
  return `<table id="table-validation">
<thead><tr><th>Epoch</th><th>i2t R@1</th><th>R@5</th><th>R@10</th><th>t2i R@1</th><th>R@5</th><th>R@10</th><th>rsum</th></tr></thead>
<tbody>
${vals.map((r) => `<tr${r === best ? ` class="best"` : ""}><td>${esc(epochName(r.epoch))}</td>${recallCells(r.i2t, false)}${recallCells(r.t2i, false)}<td>${r === best ? `<b>${fix(r.rsum, 1)}</b>` : fix(r.rsum, 1)}${r.best ? " ★" : ""}</td></tr>`).join("\n")}
</tbody>
</table>
<p class="muted">★ improved on the best so far (a test followed); the highlighted row is the best checkpoint kept.</p>`;
}

function recallCells(m: RecallMetrics, ranks: boolean): string {
  const cells = [m.r1, m.r5, m.r10, ...(ranks ? [m.medr, m.meanr] : [])];
  return cells.map((x) => `<td>${fix(x, 1)}</td>`).join("");
}

/** One small multiple per (epoch, net, by): the histogram by noise label with the fitted mixture over it. */
function histogramSections(allSplits: SplitRecord[], threshold: number): string {
  const splits = latestSplits(allSplits);
  return SPLIT_BY.map((by) => {
    const mine = splits.filter((s) => s.by === by);
    const epochs = [...new Set(mine.map((s) => s.epoch))].sort((a, b) => a - b);
    const rows = epochs.map((e) => {
      const cells = NETS.map((net) => mine.find((s) => s.epoch === e && s.net === net))
        .map((s) => (s ? histogramChart(s, threshold) : `<div class="missing muted">no split</div>`))
        .join("\n");
      return `<div class="hist-row">${cells}</div>`;
    });
    const what = by === "loss" ? "per-sample loss" : "PO consistency (KL divergence between the current prediction and its bank)";
    return `<section id="hist-${by}">
<h2>Split by ${esc(BY_NAME[by])}</h2>
<p class="muted">Histograms of the min-max normalised ${what}, clean and noisy pairs stacked, with the fitted two-component Gaussian mixture (dashed: components; the lower-mean one is the clean one) and where its clean posterior crosses p = ${fix(threshold, 2)}.</p>
${rows.length ? `<details open><summary>${rows.length} epoch${rows.length === 1 ? "" : "s"}</summary>\n<div class="hist-grid">\n${rows.join("\n")}\n</div>\n</details>` : `<p class="muted">No ${by} split records yet.</p>`}
</section>`;
  }).join("\n");
}
