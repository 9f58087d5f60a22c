import fs from 'node:fs';
import path from 'node:path';
import type { ProbeSchemaMap } from '../../../src/pipe';

/** test/fixtures/trace, found from both the sources (tsx) and the compiled tests (dist/test/...). */
export const FIXTURES = ((): string => {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'test', 'fixtures', 'trace');
    if (fs.existsSync(path.join(candidate, 'README.md'))) return candidate;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`test/fixtures/trace not found above ${__dirname}`);
    dir = up;
  }
})();

export function fixture(name: string): Buffer {
  return fs.readFileSync(path.join(FIXTURES, name));
}

/** Schemas of the probes and tracepoints the recordings were made with. */
export const SCHEMAS: ProbeSchemaMap = new Map([
  ['e', { fields: [{ name: 'name', string: true }, { name: 'flags', string: false }, { name: 'comm', string: true }] }],
  ['r', { fields: [{ name: 'h', string: false }, { name: 'path', string: true }] }],
  [
    'sched_process_exec',
    { fields: [{ name: 'filename', string: false }, { name: 'pid', string: false }, { name: 'old_pid', string: false }] },
  ],
  [
    'sched_process_exit',
    {
      fields: [
        { name: 'comm', string: false },
        { name: 'pid', string: false },
        { name: 'prio', string: false },
        { name: 'group_dead', string: false },
      ],
    },
  ],
]);
