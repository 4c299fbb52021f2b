/**
 * The command-line plumbing of `bun run eval`, `bun run export` and `bun run edge` (the trainer's
 * run.py flags have their own table in trainer/config.ts, which uses the same CliError).
 *
 * A user's mistake is a `CliError`: the entry point prints it (with the usage when it asks for it)
 * and exits 2; anything else is a bug and prints its stack. The one runtime API this file uses is
 * `parseArgs` of node:util, a pure-JavaScript parser that Bun, Node and Deno provide; only the
 * command-line entry points import it.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";

/** A mistake on the command line. */
export class CliError extends Error {
  constructor(
    message: string,
    /** Print the usage after the message (a flag mistake), or only the message (a bad file, say). */
    readonly showUsage = true,
  ) {
    super(message);
    this.name = "CliError";
  }
}

export type CliOptions = NonNullable<ParseArgsConfig["options"]>;
export type CliValues = Record<string, string | boolean | undefined>;

/**
 * Parses `argv` strictly against `options` plus `--help`/`-h`. Returns the values, or null when
 * help was asked for; an unknown flag or a missing value is a CliError (its first line only:
 * node's message goes on with a hint about positionals that does not apply here).
 */
export function parseFlags(argv: string[], options: CliOptions): CliValues | null {
  let values: CliValues;
  try {
    values = parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, strict: true }).values;
  } catch (e) {
    throw new CliError((e as Error).message.split("\n")[0]);
  }
  return values.help ? null : values;
}

/** A flag's value that must be one of `choices`. */
export function choiceFlag<T extends string>(name: string, value: unknown, choices: readonly T[]): T {
  if (!choices.includes(value as T)) throw new CliError(`--${name}: invalid choice '${String(value)}' (choose from ${choices.join(", ")})`);
  return value as T;
}

/** A flag's value that must be an integer in [min, max]. */
export function intFlag(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (typeof value !== "string" || !/^[-+]?\d+$/.test(value.trim()) || n < min || n > max) {
    throw new CliError(`--${name}: invalid value ${JSON.stringify(value)} (an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? "" : max})`);
  }
  return n;
}

/**
 * Runs a command's main: a CliError prints `<name>: message` (and the usage when it asks for it)
 * and gives `exitCode`; anything else propagates.
 */
export async function runCli(name: string, usage: string, main: () => Promise<number>, exitCode = 2): Promise<number> {
  try {
    return await main();
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    console.error(e.showUsage ? `${name}: error: ${e.message}\n\n${usage}` : `${name}: error: ${e.message}`);
    return e.showUsage ? exitCode : 1;
  }
}
