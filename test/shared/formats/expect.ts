/** Assertions shared by the format suites. */
import { expect } from "bun:test";
import { FormatError } from "../../../shared/formats/ndarray";

/** Runs `fn`, expects a FormatError, and checks that its message names the file and matches `problem`. */
export function expectFormatError(fn: () => unknown, file: string, problem: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FormatError);
  const err = caught as FormatError;
  expect(err.file).toBe(file);
  expect(err.message.startsWith(`${file}: `)).toBe(true);
  expect(err.message).toMatch(problem);
}

/** Element-wise comparison within `tol` (0 where the format must be bit-exact); NaN equals NaN. */
export function expectClose(actual: ArrayLike<number | bigint>, expected: ArrayLike<number | bigint>, tol: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = Number(actual[i]);
    const b = Number(expected[i]);
    if (Number.isNaN(b)) expect(Number.isNaN(a)).toBe(true);
    else if (!Number.isFinite(b)) expect(a).toBe(b);
    else if (Math.abs(a - b) > tol) throw new Error(`element ${i}: ${a} differs from ${b} by more than ${tol}`);
  }
}
