/**
 * The training report (`report.html`), as the trainer uses it: render the records of
 * `metrics.jsonl` into one offline HTML page. Re-exports only: the page is assembled in `page.ts`;
 * the records are parsed where their schemas live (`../metrics.ts`), and re-exported here so that
 * a caller reads and renders through one import.
 */
export { type ReportMeta, renderReport } from "./page";
export { type MetricsRecord, parseMetricsJsonl } from "../metrics";
