import { escapeForLog } from '../util/path-bytes';

/** soload's own diagnostics (stderr), separate from the records it exports. */
export interface DiagLog {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/**
 * A DiagLog writing `soload: level: msg` lines to stderr above `level`. Messages quote paths, comms
 * and kernel text from the outside: control characters (newline, ESC, …) are written as `\xhh`
 * ({@link escapeForLog}), so one message is always one line that nobody's file name can split,
 * forge or colour.
 */
export function stderrLog(level: string): DiagLog {
  const order = ['debug', 'info', 'warn', 'error'];
  const min = Math.max(0, order.indexOf(level));
  const at = (l: string) => (msg: string) => {
    if (order.indexOf(l) >= min) process.stderr.write(`soload: ${l}: ${escapeForLog(msg)}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
