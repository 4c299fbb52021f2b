/**
 * The report's diagnostics: whether PC2's premise holds in this run (the split criteria separate
 * the known noisy pairs: AUC), how much each split keeps, how spread each net's similarities are,
 * and every alarm (a degenerate split, a collapsed net) with what the run did about it.
 */
import { type AlarmRecord, NETS, type SplitRecord, type ValidationRecord } from "../metrics";
import { epochName, esc, fix } from "./format";
import { latestSplits } from "./records";

/** A banner for the top of the report: nothing when the run raised no alarm. */
export function alarmBanner(alarms: AlarmRecord[]): string {
  if (alarms.length === 0) return "";
  const line = (a: AlarmRecord) =>
    a.kind === "collapsed_net"
      ? `co-training epoch ${a.epoch}: net ${a.net} <b>collapsed</b> (similarity std ${a.value.toExponential(2)}, bound ${a.threshold.toExponential(2)}) — ${esc(a.action)}`
      : a.kind === "below_warmup"
        ? `the selected model (co-training epoch ${a.epoch}) validates <b>below the model after warmup</b> (rsum ${fix(a.value, 1)} against ${fix(a.threshold, 1)}): co-training made it worse — ${esc(a.action)}`
        : `co-training epoch ${a.epoch}: net ${a.net}'s split is <b>degenerate</b> (keeps ${fix(100 * a.value, 1)}% of the pairs as clean) — ${esc(a.action)}`;
  return `<div class="alarm" id="alarms" role="alert">
<h2>${alarms.length} alarm${alarms.length === 1 ? "" : "s"}</h2>
<ul>
${alarms.map((a) => `<li>${line(a)}</li>`).join("\n")}
</ul>
</div>`;
}

/** Per epoch and net: the loss split's clean share and both criteria's AUC, and the validation spread. */
export function diagnosticsSection(vals: ValidationRecord[], allSplits: SplitRecord[], alarms: AlarmRecord[]): string {
  const splits = latestSplits(allSplits);
  const epochs: (number | "warmup")[] = [...new Set<number | "warmup">([...vals.map((v) => v.epoch), ...splits.map((s) => s.epoch)])].sort((a, b) => (a === "warmup" ? -1 : b === "warmup" ? 1 : a - b));
  if (epochs.length === 0) return "";
  const reference = vals.find((v) => v.epoch === "warmup")?.spread;
  const cell = (x: number | null | undefined, digits: number) => (x === null || x === undefined || !Number.isFinite(x) ? "–" : fix(x, digits));
  const rows = epochs.flatMap((e) =>
    NETS.map((net) => {
      const loss = splits.find((s) => s.epoch === e && s.net === net && s.by === "loss");
      const po = splits.find((s) => s.epoch === e && s.net === net && s.by === "po");
      const spread = vals.find((v) => v.epoch === e)?.spread?.[net];
      const flagged = alarms.some((a) => e !== "warmup" && a.epoch === e && a.net === net);
      const ratio = spread && reference ? spread.std / reference[net].std : null;
      return `<tr${flagged ? ` class="flagged"` : ""}><td>${esc(epochName(e))}</td><td>${net}</td><td>${loss ? fix((100 * (loss.size - loss.selected_noisy)) / loss.size, 1) : "–"}</td><td>${cell(loss?.auc, 3)}</td><td>${cell(po?.auc, 3)}</td><td>${spread ? spread.std.toExponential(2) : "–"}</td><td>${cell(ratio, 2)}</td><td>${spread ? spread.meanPos.toFixed(4) : "–"}</td></tr>`;
    }),
  );
  return `<section id="diagnostics">
<h2>Diagnostics</h2>
<p class="muted">Clean share: the pairs a net's loss split keeps for its peer. AUC: how well the per-sample loss and the PO inconsistency rank the known noisy pairs above the clean ones (0.5 is chance; – when the noise is unknown). Spread: the standard deviation of the net's similarities over every validation pair, and its ratio to the net's spread after warmup; a net is collapsed under 0.01, or under 0.1 when its own ranking also fell under half of its post-warmup rsum. A split made at the start of epoch e comes from the nets as validated at the end of epoch e − 1.</p>
<table id="table-diagnostics">
<thead><tr><th>Epoch</th><th>Net</th><th>Clean share %</th><th>AUC loss</th><th>AUC PO</th><th>Sim. std</th><th>÷ warmup</th><th>Mean pos. sim.</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>
</section>`;
}
