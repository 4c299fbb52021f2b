import { describe, expect, test } from "bun:test";
import { parseMetricsJsonl } from "../../trainer/metrics";
import { runRecords, splitRecord } from "./metrics-fixture";

const jsonl = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join("\n");

describe("parseMetricsJsonl", () => {
  test("reads back what the trainer writes, blank lines and CRLF ignored", () => {
    const records = runRecords({ warmupEpochs: 2, trainEpochs: 3, knownNoise: true });
    const text = `\n${records.map((r) => JSON.stringify(r)).join("\r\n\n")}\n\n`;
    expect(parseMetricsJsonl(text)).toEqual(records);
  });

  test("an empty file has no records", () => {
    expect(parseMetricsJsonl("")).toEqual([]);
    expect(parseMetricsJsonl("\n  \n")).toEqual([]);
  });

  test("a NaN loss (written by JSON.stringify as null) still parses", () => {
    const step = { type: "step", phase: "train", net: "A", epoch: 0, step: 0, steps: 10, lr: Number.NaN, time: 1, triplet_loss: Number.NaN, ce_loss_img: 1.5 };
    const [r] = parseMetricsJsonl(JSON.stringify(step));
    expect(r).toMatchObject({ type: "step", lr: null, triplet_loss: null, ce_loss_img: 1.5 });
  });

  test("unknown keys are dropped, so a newer trainer's extra fields do not break the report", () => {
    const [r] = parseMetricsJsonl(JSON.stringify({ type: "event", message: "resumed", extra: 1 }));
    expect(r).toEqual({ type: "event", message: "resumed" });
  });

  test("a line that is not JSON is an error naming its line number", () => {
    const good = JSON.stringify({ type: "event", message: "a" });
    expect(() => parseMetricsJsonl(`${good}\n\n{"type":"event",`, "out/metrics.jsonl")).toThrow(/^out\/metrics\.jsonl line 3: not JSON/);
  });

  test("a record that breaks its schema names the line and the field", () => {
    const bad = { ...runRecords({ warmupEpochs: 1, trainEpochs: 0, knownNoise: true })[0], net: "C" };
    expect(() => parseMetricsJsonl(`\n${JSON.stringify(bad)}`)).toThrow(/^metrics\.jsonl line 2: net: /);
  });

  test("an unknown record type lists the known ones", () => {
    expect(() => parseMetricsJsonl(jsonl([{ type: "epoch", phase: "train", epoch: 0, seconds: 1, lr: 0.1 }, { type: "loss" }]))).toThrow(
      'metrics.jsonl line 2: unknown record type "loss"; expected one of step, split, validation, test, epoch, event',
    );
    expect(() => parseMetricsJsonl("[1,2]")).toThrow(/line 1: /);
  });

  test("a histogram must hold `bins` counts for each label", () => {
    const s = splitRecord(0, "A", "loss", true, 10);
    expect(parseMetricsJsonl(jsonl([s]))).toHaveLength(1);
    const short = { ...s, hist: { ...s.hist, noisy: s.hist.noisy!.slice(1) } };
    expect(() => parseMetricsJsonl(jsonl([short]))).toThrow(/line 1: hist: clean and noisy must hold `bins` counts each/);
  });

  test("split precision must be a share or null", () => {
    const s = splitRecord(0, "A", "loss", true);
    expect(() => parseMetricsJsonl(jsonl([{ ...s, precision: 1.5 }]))).toThrow(/line 1: precision: /);
    expect(parseMetricsJsonl(jsonl([{ ...s, precision: null, recall: null }]))[0]).toMatchObject({ precision: null });
  });
});
