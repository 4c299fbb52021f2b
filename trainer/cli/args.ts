/** Command-line plumbing shared by `bun run eval` and `bun run export`. */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { BACKENDS, type BackendChoice } from "../backend";

export type CliValues = Record<string, string | boolean | undefined>;

/**
 * Parses `argv` strictly against `options` (plus `--help`/`-h` and `--backend`, default auto).
 * Returns the values, or the exit status after printing the help (0) or the error and the help (2).
 */
export function parseCli(argv: string[], options: NonNullable<ParseArgsConfig["options"]>, help: string): CliValues | number {
  let values: CliValues;
  try {
    values = parseArgs({
      args: argv,
      options: { ...options, backend: { type: "string", default: "auto" }, help: { type: "boolean", short: "h" } },
      strict: true,
    }).values;
  } catch (e) {
    console.error(`error: ${(e as Error).message.split("\n")[0]}\n\n${help}`);
    return 2;
  }
  if (values.help) {
    console.log(help);
    return 0;
  }
  if (!BACKENDS.includes(values.backend as BackendChoice)) {
    console.error(`error: --backend: invalid choice '${values.backend}' (choose from ${BACKENDS.join(", ")})`);
    return 2;
  }
  return values;
}
