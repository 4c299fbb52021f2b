/**
 * The report's stylesheet, inlined into the page's one `<style>` (no fonts or sheets from
 * elsewhere, so the file opens offline). The SVG charts are styled here too, by class, so that
 * their markup carries geometry only.
 */
export const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1f2933; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header, main { max-width: 1100px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 17px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
section { background: #fff; border: 1px solid #e1e5eb; border-radius: 8px; padding: 16px 18px; margin: 16px 0; }
.muted { color: #6b7280; font-size: 13px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #edf0f3; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f1f4f8; font-weight: 600; }
table.kv th { font-weight: 600; color: #4b5563; }
table.kv td { text-align: left; }
tr.best td { background: #fff6d6; }
details summary { cursor: pointer; color: #374151; margin: 8px 0; }
section { overflow-x: auto; }
svg.chart { display: block; width: 100%; height: auto; margin: 8px 0; }
svg text { font-size: 11px; fill: #4b5563; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
svg .axis-label { font-size: 12px; fill: #374151; }
svg .panel-title { font-size: 12px; font-weight: 600; fill: #1f2933; }
svg .note { font-size: 10.5px; fill: #6b7280; }
svg .empty { font-size: 13px; fill: #9aa3af; }
svg .grid { stroke: #eef1f5; }
svg .tick, svg .axis { stroke: #9aa3af; }
.hist-grid { display: flex; flex-direction: column; gap: 4px; }
.hist-row { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px; }
.hist-row .missing { display: flex; align-items: center; justify-content: center; border: 1px dashed #d5dae1; border-radius: 6px; }
.alarm { border: 2px solid #b3261e; background: #fdecea; border-radius: 6px; padding: 4px 16px; margin: 12px 0; }
.alarm h2 { color: #b3261e; margin: 8px 0; }
tr.flagged td { background: #fdecea; }
@media (max-width: 720px) { .hist-row { grid-template-columns: minmax(0, 1fr); } header, main { padding: 0 10px; } }
`;
