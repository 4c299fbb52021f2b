/**
 * Ctrl-C and SIGTERM for a long computation on the main thread.
 *
 * A signal handler runs only when the event loop turns, so the trainer yields to it between steps
 * and shards (`yieldToEventLoop`); the first SIGINT or SIGTERM then asks the run to stop at the
 * next such point, where it writes a resumable checkpoint. The first signal also removes the
 * handlers: the signal's default action is back, so a second Ctrl-C ends the process at once, even
 * in the middle of a step that never yields.
 */

export interface StopSignals {
  /** True once SIGINT or SIGTERM arrived. */
  requested(): boolean;
  /** Removes the handlers (the default action of the signals is back). */
  dispose(): void;
}

const SIGNALS = ["SIGINT", "SIGTERM"] as const;

export function installStopSignals(onFirst: (signal: string) => void): StopSignals {
  let stop = false;
  const handlers = new Map<string, () => void>();
  const dispose = () => {
    for (const [signal, handler] of handlers) process.removeListener(signal, handler);
    handlers.clear();
  };
  for (const signal of SIGNALS) {
    const handler = () => {
      // Two signals that arrived during one stretch without a yield reach the handlers together.
      if (stop) process.exit(130);
      stop = true;
      dispose();
      onFirst(signal);
    };
    handlers.set(signal, handler);
    process.on(signal, handler);
  }
  return { requested: () => stop, dispose };
}

/** Lets pending signal handlers, timers and I/O run (a macrotask turn, not a microtask). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
