import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { prepareWorkloads } from '../../../bench/workloads';

test('prebuilt workloads (the kernel matrix builds on the host, measures in gcc-less guests): reused as built, a missing binary named', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-cost-'));
  try {
    await assert.rejects(prepareWorkloads(dir, { quick: true, only: ['dlopen'], prebuilt: true }), /prebuilt workloads: .*\/spawn is missing/);
    const built = await prepareWorkloads(dir, { quick: true, only: ['dlopen'] });
    const mtime = fs.statSync(path.join(dir, 'dlopen-driver')).mtimeMs;
    const reused = await prepareWorkloads(dir, { quick: true, only: ['dlopen'], prebuilt: true });
    assert.equal(fs.statSync(path.join(dir, 'dlopen-driver')).mtimeMs, mtime, 'nothing recompiled');
    assert.deepEqual(reused.map((w) => [w.name, w.iterations]), built.map((w) => [w.name, w.iterations]));
    assert.ok(reused[0]!.run() > 0);
    fs.rmSync(path.join(dir, 'libbenchplugin.so'));
    await assert.rejects(prepareWorkloads(dir, { quick: true, only: ['dlopen'], prebuilt: true }), /libbenchplugin\.so is missing/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
