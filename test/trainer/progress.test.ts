import { describe, expect, test } from "bun:test";
import { REDRAW_INTERVAL_MS, clock, createProgress, formatValue } from "../../trainer/progress";

/** A progress writing into an array, on a clock the test moves by hand (milliseconds). */
function harness(tty: boolean, logStep = 20, columns?: number) {
  const out: string[] = [];
  let t = 0;
  const p = createProgress({ tty, logStep, write: (s) => out.push(s), now: () => t, columns });
  return {
    p,
    out,
    advance(ms: number) {
      t += ms;
    },
  };
}

// Control characters other than the newline that ends a line.
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f]/;

describe("plain (no TTY)", () => {
  test("a line at the first step, every logStep steps and the last, no control characters", () => {
    const h = harness(false, 20);
    h.p.start("warmup A", 63);
    for (let s = 1; s <= 63; s++) {
      h.advance(600);
      h.p.tick(s, { triplet_loss: 1.23456, ce_loss_img: 0.5 });
    }
    h.p.end();
    expect(h.out.map((l) => l.split(" ")[2])).toEqual(["1/63", "20/63", "40/63", "60/63", "63/63"]);
    for (const line of h.out) {
      expect(line.endsWith("\n")).toBe(true);
      expect(line).not.toMatch(CONTROL);
    }
    // 20 steps in 12 s: 0.6 s a step, 43 steps left.
    expect(h.out[1]).toBe("[warmup A] 20/63 triplet_loss 1.235 ce_loss_img 0.5000 elapsed 00:12 eta 00:26\n");
    expect(h.out[4]).toBe("[warmup A] 63/63 triplet_loss 1.235 ce_loss_img 0.5000 elapsed 00:38 eta 00:00\n");
  });

  test("the label follows the phase; a summary is its own line", () => {
    const h = harness(false, 5);
    h.p.start("split", 3, "[2]");
    h.advance(1000);
    h.p.tick(1);
    h.p.end("done in 00:01");
    expect(h.out).toEqual(["[split [2]] 1/3 elapsed 00:01 eta 00:02\n", "[split [2]] done in 00:01\n"]);
  });

  test("end after an interruption logs the last step reached", () => {
    const h = harness(false, 20);
    h.p.start("train B", 63);
    for (let s = 1; s <= 27; s++) h.p.tick(s);
    h.p.end();
    expect(h.out.map((l) => l.split(" ")[2])).toEqual(["1/63", "20/63", "27/63"]);
  });

  test("a resumed epoch estimates from the steps done since the start", () => {
    const h = harness(false, 1000);
    h.p.start("train A", 100);
    h.advance(1000);
    h.p.tick(51); // resumed at 50: one step in 1 s, 49 left
    expect(h.out[0]).toBe("[train A] 51/100 elapsed 00:01 eta 00:49\n");
  });
});

describe("TTY", () => {
  test("one line redrawn in place with bar, count, percentage, values and times; end adds the newline", () => {
    const h = harness(true);
    h.p.start("warmup A", 63);
    for (let s = 1; s <= 20; s++) {
      h.advance(600);
      h.p.tick(s, { triplet_loss: 1.9 });
    }
    expect(h.out).toHaveLength(20);
    const line = h.out[19];
    expect(line.startsWith("\r\x1b[2K[warmup A] ")).toBe(true);
    expect(line).not.toContain("\n");
    expect(line).toContain(" 20/63 ");
    expect(line).toContain(" 31% ");
    expect(line).toContain("triplet_loss 1.900");
    expect(line).toContain("elapsed 00:12 eta 00:26");
    const bar = /\] ([█░]+) /.exec(line)![1];
    expect(bar.length).toBe(24);
    expect([...bar].filter((c) => c === "█").length).toBe(Math.round((20 / 63) * 24));
    h.p.end("best rsum 300.1");
    expect(h.out.at(-1)).toBe("  best rsum 300.1\n");
  });

  test("redraws at most once per interval, but always the first and the last step", () => {
    const h = harness(true);
    h.p.start("train A", 100);
    for (let s = 1; s <= 100; s++) {
      h.advance(10); // 100 steps in 1 s
      h.p.tick(s, { loss: s });
    }
    // t = 10 (first), then one each REDRAW_INTERVAL_MS: 110, 210, ..., 910, and t = 1000 (last).
    expect(REDRAW_INTERVAL_MS).toBe(100);
    expect(h.out.length).toBe(11);
    expect(h.out[0]).toContain(" 1/100 ");
    expect(h.out[1]).toContain(" 11/100 ");
    expect(h.out.at(-1)).toContain(" 100/100 ");
    expect(h.out.at(-1)).toContain("100%");
    h.p.end();
    expect(h.out.length).toBe(12);
    expect(h.out.at(-1)).toBe("\n");
  });

  test("a slow loop redraws on every step", () => {
    const h = harness(true);
    h.p.start("train A", 5);
    for (let s = 1; s <= 5; s++) {
      h.advance(REDRAW_INTERVAL_MS);
      h.p.tick(s);
    }
    expect(h.out.length).toBe(5);
  });

  test("end redraws a throttled last state before the newline", () => {
    const h = harness(true);
    h.p.start("split", 1000);
    h.p.tick(1);
    h.advance(5);
    h.p.tick(2);
    expect(h.out.length).toBe(1);
    h.p.end();
    expect(h.out[1]).toContain(" 2/1000 ");
    expect(h.out[2]).toBe("\n");
  });

  test("a line is cut to the terminal width so it never wraps", () => {
    const h = harness(true, 20, 40);
    h.p.start("warmup A", 63);
    h.p.tick(1, { triplet_loss: 1, ce_loss_img: 2, ce_loss_cap: 3 });
    expect(h.out[0].length).toBe("\r\x1b[2K".length + 39);
  });

  test("starting a phase while one is open finishes the open line first", () => {
    const h = harness(true);
    h.p.start("warmup A", 10);
    h.p.tick(1);
    h.p.start("warmup B", 10);
    expect(h.out).toHaveLength(2);
    expect(h.out[1]).toBe("\n");
  });
});

describe("errors", () => {
  test("tick before start", () => {
    expect(() => harness(false).p.tick(1)).toThrow("progress.tick(1) before progress.start");
  });
  test("logStep must be a positive integer", () => {
    expect(() => createProgress({ tty: false, logStep: 0, write: () => {} })).toThrow("logStep must be a positive integer, got 0");
  });
});

describe("formatting", () => {
  test("clock: mm:ss, h:mm:ss from an hour, --:-- when unknown", () => {
    expect(clock(0)).toBe("00:00");
    expect(clock(59.4)).toBe("00:59");
    expect(clock(61)).toBe("01:01");
    expect(clock(3599.6)).toBe("1:00:00");
    expect(clock(3723)).toBe("1:02:03");
    expect(clock(Number.NaN)).toBe("--:--");
    expect(clock(Number.POSITIVE_INFINITY)).toBe("--:--");
  });

  test("the ETA is unknown until time has passed", () => {
    const h = harness(false);
    h.p.start("warmup A", 10);
    h.p.tick(1);
    expect(h.out[0]).toBe("[warmup A] 1/10 elapsed 00:00 eta --:--\n");
  });

  test("values: four significant digits", () => {
    expect(formatValue(1.23456)).toBe("1.235");
    expect(formatValue(-1.6)).toBe("-1.600");
    expect(formatValue(0)).toBe("0.000");
    expect(formatValue(123.456)).toBe("123.5");
    expect(formatValue(0.000123456)).toBe("1.235e-4");
    expect(formatValue(98765)).toBe("9.877e+4");
    expect(formatValue(Number.NaN)).toBe("nan");
  });
});
