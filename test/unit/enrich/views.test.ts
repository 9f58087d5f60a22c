import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HOST_VIEW } from '../../../src/capture/views';
import { ProcReader } from '../../../src/host/proc-reader';
import { ViewRegistry } from '../../../src/enrich/views';

test('the host view is soload\'s own root; a chroot view is rooted at the canonical directory with its host path', () => {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'soload-views-')));
  fs.mkdirSync(path.join(base, 'jail'));
  fs.symlinkSync('jail', path.join(base, 'jail-link'));
  const v = new ViewRegistry(new ProcReader('/proc'));
  assert.equal(v.host.id, HOST_VIEW);
  assert.equal(v.host.prefix, '');
  assert.equal(v.identify(process.pid), HOST_VIEW, 'this process is in the host view');
  const id = v.chroot(HOST_VIEW, path.join(base, 'jail-link'));
  assert.equal(v.get(id)!.hostDir, path.join(base, 'jail'), 'the symlinked directory resolved');
  assert.equal(v.chroot(HOST_VIEW, '/'), HOST_VIEW, 'chroot("/") changes nothing');
  assert.equal(v.chroot(HOST_VIEW, path.join(base, 'jail')), id, 'one view per directory');
});

test('a lost view resolves like its base and is marked; the sweep keeps views in use and their bases', () => {
  const v = new ViewRegistry(new ProcReader('/proc'));
  const jail = v.chroot(HOST_VIEW, os.tmpdir());
  const lost = v.lost(jail);
  assert.equal(v.get(lost)!.lost, true);
  assert.equal(v.get(lost)!.prefix, v.get(jail)!.prefix);
  assert.deepEqual(v.sweep(new Map([[lost, 1]])), [], 'the lost view and its base are in use');
  assert.deepEqual(v.sweep(new Map()).sort(), [jail, lost].sort());
  assert.equal(v.size, 1, 'only the host view is left');
  v.close();
});
