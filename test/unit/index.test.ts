import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

test('package.json "main" names a file the build produces, exporting the public API', () => {
  const root = path.resolve(__dirname, '..', '..', '..');
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { main: string; bin: Record<string, string> };
  const main = path.join(root, pkg.main);
  assert.ok(fs.existsSync(main), `${pkg.main} exists`);
  for (const bin of Object.values(pkg.bin)) assert.ok(fs.existsSync(path.join(root, bin)), `${bin} exists`);
  const api = require(main) as Record<string, unknown>;
  for (const name of ['SoloadAgent', 'loadConfig', 'planCapture', 'MECHANISMS', 'ErrorCodes', 'escapePathBytes', 'unescapePathBytes']) assert.ok(api[name], `exports ${name}`);
});
