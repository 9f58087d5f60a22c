import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoadFilter } from '../../../src/capture/filters';
import type { LoadEvent } from '../../../src/types';

const NONE = { pids: [], excludePids: [], comms: [], excludeComms: [], pathInclude: [], pathExclude: [], excludeSelf: true };
const ev = (over: Partial<LoadEvent>): LoadEvent => ({ timestampNs: 1n, pid: 10, tid: 10, comm: 'app', method: 'needed', result: 'ok', probe: 'p', path: '/usr/lib/libz.so.1', ...over });

test('pid and comm filters (shared with custom probe records), self excluded', () => {
  const f = new LoadFilter({ ...NONE, excludeComms: ['noisy'] }, 99);
  assert.equal(f.acceptsProcess(10, 'app'), true);
  assert.equal(f.acceptsProcess(10, 'noisy'), false);
  assert.equal(f.acceptsProcess(99, 'soload'), false, 'soload itself');
  assert.equal(new LoadFilter({ ...NONE, pids: [7] }).acceptsProcess(10, 'app'), false);
});

test('path globs: * within a directory, ** across; a failed load is judged by its requested name', () => {
  const f = new LoadFilter({ ...NONE, pathInclude: ['/usr/lib/**'], pathExclude: ['/usr/lib/*/libnss_*'] });
  assert.equal(f.accepts(ev({})), true);
  assert.equal(f.accepts(ev({ path: '/usr/lib/x86_64-linux-gnu/libnss_files.so.2' })), false);
  assert.equal(f.accepts(ev({ path: '/tmp/evil.so' })), false);
  assert.equal(f.accepts(ev({ path: undefined, requestedName: '/usr/lib/missing.so', result: 'failed' })), true);
});
