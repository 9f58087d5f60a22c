import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CwdTracker } from '../../../src/capture/cwd';

test('cwd follows fork, successful chdir (absolute and relative), exec keeps it, exit forgets', () => {
  const t = new CwdTracker();
  t.seed(1, '/home/u');
  t.onFork(1, 2);
  assert.equal(t.resolve(2, './lib/x.so'), '/home/u/lib/x.so');
  t.onChdirEntry(2, 2, 'proj');
  t.onChdirReturn(2, 0);
  assert.equal(t.get(2), '/home/u/proj');
  t.onChdirEntry(2, 2, '/nonexistent');
  t.onChdirReturn(2, -2);
  assert.equal(t.get(2), '/home/u/proj', 'failed chdir changes nothing');
  t.onChdirEntry(2, 7, '/opt/app/../app2/');
  t.onChdirReturn(7, 0);
  assert.equal(t.resolve(2, 'plugins/p.so'), '/opt/app2/plugins/p.so');
  assert.equal(t.get(1), '/home/u', 'parent unaffected');
  t.onExit(2);
  assert.equal(t.resolve(2, 'x.so'), undefined);
  assert.equal(t.resolve(2, '/abs.so'), '/abs.so');
});

test('a relative chdir from an unknown directory makes the cwd unknown, not wrong', () => {
  const t = new CwdTracker();
  t.onChdirEntry(5, 5, 'sub');
  t.onChdirReturn(5, 0);
  assert.equal(t.get(5), undefined);
});

test('bounded', () => {
  const t = new CwdTracker(3);
  for (let i = 0; i < 10; i++) t.seed(i, `/d${i}`);
  assert.equal(t.size, 3);
  assert.equal(t.get(9), '/d9');
});

test('chdir calls in flight are bounded and dropped when their thread or process is gone', () => {
  const t = new CwdTracker(2);
  t.onChdirEntry(1, 11, '/a');
  t.onChdirEntry(1, 12, '/b');
  t.onChdirEntry(1, 13, '/c');
  assert.equal(t.pending, 2, 'oldest dropped past the bound');
  t.onThreadGone(12);
  assert.equal(t.pending, 1);
  t.onChdirEntry(4, 4, '/d');
  t.onExit(4);
  assert.equal(t.pending, 1);
  t.onChdirReturn(13, 0);
  assert.equal(t.get(1), '/c');
  assert.equal(t.pending, 0);
});
