import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger, LogRecord } from '@opentelemetry/api-logs';
import { LoadChain } from '../../../src/agent/chain';
import { CwdTracker } from '../../../src/capture/cwd';
import { LoadFilter } from '../../../src/capture/filters';
import { MemfdTracker, ViewTracker } from '../../../src/capture/views';
import { loadConfig } from '../../../src/config/load';
import { ProcessEnricher } from '../../../src/enrich/enricher';
import { LoadPathResolver } from '../../../src/enrich/paths';
import { ProcReader } from '../../../src/host/proc-reader';
import { ViewRegistry } from '../../../src/enrich/views';
import { TraceClock } from '../../../src/otel/clock';
import { AgentLoggers } from '../../../src/otel/resources';
import { SoLoadLogMapper } from '../../../src/otel/mapper';
import type { LoadEvent, TraceRecord } from '../../../src/types';

function chain(filters: Partial<ReturnType<typeof loadConfig>['filters']> = {}) {
  const emitted: LogRecord[] = [];
  const proc = new ProcReader('/proc');
  const clock = new TraceClock();
  const viewOf = new ViewTracker();
  const cwd = new CwdTracker();
  const config = loadConfig({ env: {} });
  const c = new LoadChain({
    cwd,
    enricher: new ProcessEnricher(proc),
    paths: new LoadPathResolver({ proc, views: new ViewRegistry(proc), viewOf, memfds: new MemfdTracker(), toWallNs: (ns) => clock.toWallNs(ns) }),
    filter: new LoadFilter({ ...config.filters, excludeSelf: false, ...filters }),
    mapper: new SoLoadLogMapper({ severity: 'INFO', toWallNs: (ns) => clock.toWallNs(ns) }),
    clock,
    loggers: new AgentLoggers({ emit: (r: LogRecord) => void emitted.push(r), enabled: () => true } as unknown as Logger),
  });
  return { c, emitted, cwd, clock };
}

const load = (over: Partial<LoadEvent>): LoadEvent => ({ timestampNs: 1_000n, pid: process.pid, tid: process.pid, comm: 'node', method: 'needed', result: 'ok', probe: 'loader_add', ...over });

test('loads: relative names made absolute from the followed cwd, named as the kernel does, enriched, mapped', () => {
  const { c, emitted, cwd } = chain();
  cwd.seed(process.pid, '/usr/lib');
  c.load(load({ path: 'x86_64-linux-gnu/../x86_64-linux-gnu/libc.so.6' }));
  assert.equal(emitted.length, 1);
  assert.equal(emitted[0]!.attributes!['file.path'], '/usr/lib/x86_64-linux-gnu/libc.so.6');
  assert.equal(emitted[0]!.attributes!['soload.loader_path'], 'x86_64-linux-gnu/../x86_64-linux-gnu/libc.so.6', 'the loader\'s own string');
  assert.equal(emitted[0]!.attributes!['process.pid'], process.pid);
  assert.ok(emitted[0]!.attributes!['process.executable.path'], 'enriched from /proc');
  assert.equal(c.stats.loadsEmitted, 1);
});

test('path filters see the canonical path (a glob on /usr/lib matches a /lib alias)', () => {
  const { c, emitted } = chain({ pathExclude: ['/usr/lib/x86_64-linux-gnu/libc.so.6'] });
  c.load(load({ path: '/lib/x86_64-linux-gnu/libc.so.6' }));
  assert.equal(emitted.length, 0);
  assert.equal(c.stats.loadsFiltered, 1);
});

test('custom probe records share the pid/comm filters, enrichment and the exact kernel timestamp', () => {
  const { c, emitted, clock } = chain({ excludeComms: ['blocked'] });
  const rec = (comm: string, ts: bigint): TraceRecord => ({ comm, tid: process.pid, tgid: process.pid, cpu: 0, timestampNs: ts, event: 'my_probe', location: '', fields: { arg: '42' } });
  c.custom(rec('blocked', 5n), { event: 'my_probe', kind: 'entry', path: '/x', offset: 0, fetch: [], role: 'custom' });
  assert.equal(c.stats.customFiltered, 1, 'filtered like loads (before the fix custom records skipped filters)');
  const ts = 123_456_789_123n;
  c.custom(rec('worker', ts), { event: 'my_probe', kind: 'entry', path: '/x', offset: 0, fetch: [], role: 'custom' });
  const r = emitted[0]!;
  assert.equal(r.eventName, 'soload.probe');
  assert.equal(r.attributes!['soload.arg.arg'], '42');
  assert.ok(r.attributes!['process.executable.path'], 'enriched');
  const wall = clock.toWallNs(ts);
  assert.deepEqual(r.timestamp, [Number(wall / 1_000_000_000n), Number(wall % 1_000_000_000n)], 'nanosecond timestamp, not milliseconds');
});
