import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ProcessEnricher } from '../../../src/enrich/enricher';
import { ProcReader } from '../../../src/host/proc-reader';
import type { LoadEvent } from '../../../src/types';
import { fixtureProc } from './fixtures';

test('enricher caches per pid, forgets on exit, absolutizes relative paths', () => {
  const { root, proc, passwd } = fixtureProc();
  const reader = new ProcReader(proc, passwd);
  const e = new ProcessEnricher(reader);
  const ev: LoadEvent = { timestampNs: 1n, pid: 1234, tid: 1234, comm: 'python3', method: 'dlopen', result: 'ok', probe: 'p', path: 'lib/libplug.so', requestedName: 'lib/libplug.so' };
  const out = e.enrich(e.completePath(ev).event);
  assert.equal(out.event.path, path.join(root, 'lib', 'libplug.so'));
  assert.equal(out.process?.serviceName, 'checkout');
  assert.equal(e.size, 1);
  e.forget(1234);
  assert.equal(e.size, 0);
  const gone = e.enrich({ ...ev, pid: 4321, path: '/nonexistent/x.so' });
  assert.deepEqual(gone.missing, ['process', 'file.size', 'file.inode']);
  const facts = e.enrich({ ...ev, path: '/x.so', file: { dev: 1, ino: 2, size: 3 } });
  assert.deepEqual([facts.file?.inode, facts.file?.size], [2, 3], 'file facts come from path resolution');
  const rel = e.completePath({ ...ev, pid: 4321, path: 'rel/x.so' });
  assert.deepEqual(rel.missing, ['file.path.absolute']);
});

test('enricher falls back to /proc/<pid>/maps when l_name was unreadable', () => {
  const { proc, passwd } = fixtureProc();
  const e = new ProcessEnricher(new ProcReader(proc, passwd));
  const out = e.completePath({ timestampNs: 1n, pid: 1234, tid: 1234, comm: 'p', method: 'dlopen', result: 'ok', probe: 'p', requestedName: 'libz.so.1', unresolved: ['file.path'] });
  assert.equal(out.event.path, '/usr/lib/libz.so.1');
  assert.deepEqual(out.event.unresolved, []);
});

