import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expandGlobs } from '../../../src/agent/loaders';

/** An image store like containerd's overlayfs snapshotter: snapshots/<n>/fs are the layers. */
function store(): string {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'soload-globs-')));
  fs.mkdirSync(path.join(root, 'snapshots', '1', 'fs'), { recursive: true });
  fs.mkdirSync(path.join(root, 'snapshots', '2', 'fs'), { recursive: true });
  fs.mkdirSync(path.join(root, 'snapshots', '10', 'work'), { recursive: true }); // no fs: not a layer
  fs.writeFileSync(path.join(root, 'snapshots', '3'), 'a file, not a snapshot directory');
  fs.writeFileSync(path.join(root, 'snapshots', '1', 'fs.bak'), 'a file matching fs*');
  return root;
}

test('expandGlobs: a starred component matches directories only, in every match of the components before it', () => {
  const root = store();
  assert.deepEqual(expandGlobs([`${root}/snapshots/*/fs`]).sort(), [`${root}/snapshots/1/fs`, `${root}/snapshots/2/fs`]);
  assert.deepEqual(expandGlobs([`${root}/snapshots/*`]).sort(), [`${root}/snapshots/1`, `${root}/snapshots/10`, `${root}/snapshots/2`], 'the file snapshots/3 is left out');
  assert.deepEqual(expandGlobs([`${root}/snapshots/?/fs*`]).sort(), [`${root}/snapshots/1/fs`, `${root}/snapshots/2/fs`], 'fs.bak is a file');
  assert.deepEqual(expandGlobs([`${root}/snapshots/[12]/fs`]).sort(), [`${root}/snapshots/1/fs`, `${root}/snapshots/2/fs`]);
});

test('expandGlobs: a glob component with no match gives nothing (no literal fallback)', () => {
  const root = store();
  assert.deepEqual(expandGlobs([`${root}/snapshots/*/rootfs`]), []);
  assert.deepEqual(expandGlobs([`${root}/nothing-*/fs`]), []);
  assert.deepEqual(expandGlobs([`${root}/snapshots/3/*`]), [], 'a file in a starred component\'s parent: readdir fails, nothing');
  assert.deepEqual(expandGlobs([`${root}/missing/*`]), []);
});

test('expandGlobs: a path without glob characters is itself when it is a directory, nothing otherwise', () => {
  const root = store();
  assert.deepEqual(expandGlobs([`${root}/snapshots/1/fs`]), [`${root}/snapshots/1/fs`]);
  assert.deepEqual(expandGlobs([`${root}/snapshots/1/fs/`]), [`${root}/snapshots/1/fs`], 'trailing slash normalised');
  assert.deepEqual(expandGlobs([`${root}/snapshots/3`]), [], 'a file is not a root');
  assert.deepEqual(expandGlobs([`${root}/snapshots/4`]), [], 'not there (yet)');
});

test('expandGlobs: several globs in order, each expanded on its own', () => {
  const root = store();
  const got = expandGlobs([`${root}/snapshots/2/fs`, `${root}/snapshots/*/fs`]);
  assert.equal(got[0], `${root}/snapshots/2/fs`);
  assert.deepEqual(got.slice(1).sort(), [`${root}/snapshots/1/fs`, `${root}/snapshots/2/fs`]);
  assert.deepEqual(expandGlobs([]), []);
});

test('expandGlobs: a symlink to a directory counts as a directory (layers reached through links)', () => {
  const root = store();
  fs.symlinkSync(path.join(root, 'snapshots', '1'), path.join(root, 'snapshots', 'latest'));
  assert.ok(expandGlobs([`${root}/snapshots/*/fs`]).includes(`${root}/snapshots/latest/fs`));
});
