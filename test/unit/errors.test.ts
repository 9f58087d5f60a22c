import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCodes } from '../../src/errors';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Every `SOLOAD_ERR_*` in the README's "Error codes" table. */
function documentedCodes(): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('## Error codes');
  assert.ok(start >= 0, 'README has an "Error codes" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^\|\s*`(SOLOAD_ERR_[A-Z_]+)`/gm)].map((m) => m[1]!);
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

test('every error code is documented in the README, and every documented code exists', () => {
  const documented = documentedCodes();
  const defined = Object.values(ErrorCodes) as string[];
  assert.deepEqual(defined.filter((c) => !documented.includes(c)), [], 'codes missing from the README table');
  assert.deepEqual(documented.filter((c) => !defined.includes(c)), [], 'README codes that src/errors.ts does not define');
  assert.equal(new Set(documented).size, documented.length, 'each code documented once');
});

test('every error soload throws carries a registry code (no plain Error, no cast codes)', () => {
  const offenders: string[] = [];
  for (const file of sources(path.join(ROOT, 'src'))) {
    const text = fs.readFileSync(file, 'utf8');
    text.split('\n').forEach((line, i) => {
      if (/throw new (Type|Range)?Error\(/.test(line) || /SoloadError\([^)]*as never/.test(line)) offenders.push(`${path.relative(ROOT, file)}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(offenders, []);
});
