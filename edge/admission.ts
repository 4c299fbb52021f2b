/**
 * Admission of engine work: how many requests the engine has in hand (running or waiting for a
 * worker), how many of them are evaluations, and how long each may take. A request over a bound
 * is refused at once with 503 (the app adds Retry-After to every 503) rather than queued without
 * end; one past its deadline is answered 504 and its work abandoned through its AbortSignal.
 *
 * A request counts until its engine work has really stopped, not until it was answered: work that
 * an engine cannot stop at once still holds the CPU, and the next request must wait for it.
 */
import { HTTPException } from "hono/http-exception";
import type { EdgeLimits } from "./schemas.ts";

export type WorkKind = "eval" | "other";

export interface Admission {
  /** Runs `work` once admitted, with a signal that fires at the deadline. */
  run<T>(kind: WorkKind, work: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** Engine requests in hand now. */
  pending(): number;
}

export function admission(limits: Pick<EdgeLimits, "maxPending" | "maxEvals" | "deadlineMs">): Admission {
  let pending = 0;
  let evals = 0;
  return {
    pending: () => pending,
    async run(kind, work) {
      if (pending >= limits.maxPending) {
        throw new HTTPException(503, { message: `the server has ${pending} requests in hand, its most (maxPending); retry later` });
      }
      if (kind === "eval" && evals >= limits.maxEvals) {
        throw new HTTPException(503, { message: `${evals} evaluation${evals === 1 ? " is" : "s are"} running, the server's most (maxEvals); retry later` });
      }
      pending++;
      if (kind === "eval") evals++;
      const controller = new AbortController();
      const deadline = new HTTPException(504, { message: `the request took longer than the server's ${limits.deadlineMs} ms deadline and was abandoned; ask for less work` });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          controller.abort(deadline);
          reject(deadline);
        }, limits.deadlineMs);
      });
      const running = Promise.resolve()
        .then(() => work(controller.signal))
        .finally(() => {
          clearTimeout(timer);
          pending--;
          if (kind === "eval") evals--;
        });
      // The loser of the race is ignored: an abandoned call's rejection is expected.
      running.catch(() => {});
      expired.catch(() => {});
      return Promise.race([running, expired]);
    },
  };
}
