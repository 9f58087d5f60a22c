import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatCheck, type CheckReport } from '../../../src/cli/check';
import type { TracefsCapabilities } from '../../../src/tracefs/session';

test('formatCheck: a loader path with a newline or an ANSI escape stays on its own line, escaped', () => {
  const report: CheckReport = {
    kernel: '6.18.0',
    arch: 'x86_64',
    root: true,
    privileges: { euid: 0, capabilities: ['CAP_DAC_OVERRIDE', 'CAP_SYS_PTRACE'], problems: [], degraded: [] },
    tracefs: { path: '/sys/kernel/tracing', uprobes: true, kprobes: true, instances: true, returnProbes: true, ustring: true, fileOffsetFetch: true, comm: true, recordTgid: true, schedTracepoints: true, traceClocks: ['mono'] } as unknown as TracefsCapabilities,
    loaders: [{ path: '/r/x\nsoload can run here.\u001b[2J/ld.so', kind: 'ld.so', processes: 1, symbols: [], mechanism: 'loader-lists' } as unknown as CheckReport['loaders'][number]],
    probes: { planned: 3, skipped: [] },
    problems: ['first', 'second'],
  };
  const lines = formatCheck(report).split('\n');
  assert.ok(lines.includes('  /r/x\\x0asoload can run here.\\x1b[2J/ld.so [ld.so] used by 1 processes'), lines.join('\n'));
  assert.ok(!lines.includes('soload can run here.'), 'the path forged no verdict line');
  assert.deepEqual(lines.slice(-3), ['soload CANNOT run here:', '  - first', '  - second']);
});
