import type { ChildProcess } from 'node:child_process';

/**
 * Resolves when a spawned server is gone — by exiting, or because it could not be started (which
 * emits 'error' and never 'exit') — and keeps how, for the error message of a test that waits on it.
 */
export function watchExit(proc: ChildProcess): { exited: Promise<void>; info: () => string | undefined } {
  let info: string | undefined;
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => {
      info = `exit code ${code}, signal ${signal}`;
      resolve();
    });
    proc.once('error', (err) => {
      info = `spawn error: ${err.message}`;
      resolve();
    });
  });
  return { exited, info: () => info };
}
