import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRiskRules, defaultRiskRules, globToRegExp, RiskEvaluator, type RiskRule } from '../../../src/enrich/risk';

const defaults = new RiskEvaluator(defaultRiskRules());

test('default rules: a package-owned system library is none', () => {
  const v = defaults.assess({
    'file.path': '/usr/lib/x86_64-linux-gnu/libc.so.6',
    'soload.load.method': 'needed',
    'soload.result': 'ok',
    'soload.package.name': 'libc6',
    'soload.package.manager': 'dpkg',
    'soload.package.modified': false,
    'soload.file.world_writable': false,
    'soload.file.writable_dir': false,
    'soload.search.step': 'ld_so_cache',
    'process.user.id': 0,
  });
  assert.deepEqual(v, { risk: 'none', reasons: [] });
});

test('default rules: an LD_PRELOAD from /tmp outside any package is high with every reason, in rule order', () => {
  const v = defaults.assess({
    'file.path': '/tmp/x/libevil.so',
    'soload.load.method': 'preload',
    'soload.result': 'ok',
    'soload.package.manager': 'dpkg',
    'soload.file.writable_dir': true,
    'process.user.id': 1000,
  });
  assert.equal(v.risk, 'high');
  assert.deepEqual(v.reasons, ['tmp_path', 'writable_dir', 'preload', 'not_packaged']);
});

test('default rules: writable_dir is high for a root process, medium otherwise; one reason either way', () => {
  assert.deepEqual(defaults.assess({ 'file.path': '/opt/a/x.so', 'soload.file.writable_dir': true, 'process.user.id': 0 }), { risk: 'high', reasons: ['writable_dir'] });
  assert.deepEqual(defaults.assess({ 'file.path': '/opt/a/x.so', 'soload.file.writable_dir': true, 'process.user.id': 1000 }), { risk: 'medium', reasons: ['writable_dir'] });
});

test('default rules: not_packaged needs a package database in the root, and never fires for memfd', () => {
  assert.deepEqual(defaults.assess({ 'file.path': '/opt/a/x.so', 'soload.result': 'ok' }), { risk: 'none', reasons: [] });
  const memfd = defaults.assess({ 'file.path': '/memfd:x', 'soload.file.memfd': true, 'soload.result': 'ok', 'soload.package.manager': 'dpkg' });
  assert.deepEqual(memfd, { risk: 'high', reasons: ['memfd'] });
});

test('default rules: setuid with LD_LIBRARY_PATH, modified package file, home directory', () => {
  assert.equal(defaults.assess({ 'soload.process.secure': true, 'soload.process.ld_library_path': '' }).reasons[0], 'ld_library_path_in_setuid');
  assert.deepEqual(defaults.assess({ 'soload.process.secure': false, 'soload.process.ld_library_path': '/x' }).reasons, []);
  assert.deepEqual(defaults.assess({ 'soload.package.modified': true }), { risk: 'high', reasons: ['modified_package_file'] });
  assert.deepEqual(defaults.assess({ 'file.path': '/home/u/lib/x.so' }), { risk: 'medium', reasons: ['loaded_from_home'] });
  assert.deepEqual(defaults.assess({ 'file.path': '/homework/x.so' }), { risk: 'none', reasons: [] }, 'under is by path component');
});

test('operators: equals, in, under, glob, exists, gte/lte, not, arrays', () => {
  const rules: RiskRule[] = [
    { reason: 'a', risk: 'low', when: { n: { gte: 2, lte: 4 } } },
    { reason: 'b', risk: 'medium', when: { s: { in: ['x', 'y'] }, t: { not: { equals: 'z' } } } },
    { reason: 'c', risk: 'high', when: { p: { glob: '/opt/**/plugins/*.so' } } },
    { reason: 'd', risk: 'low', when: { list: 'm' } },
    { reason: 'e', risk: 'low', when: { q: { exists: false } }, unless: { s: 'x' } },
  ];
  const ev = new RiskEvaluator(rules);
  assert.deepEqual(ev.assess({ n: 3, q: 1 }).reasons, ['a']);
  assert.deepEqual(ev.assess({ n: 5, q: 1 }).reasons, []);
  assert.deepEqual(ev.assess({ s: 'x', t: 'w', q: 1 }).reasons, ['b']);
  assert.deepEqual(ev.assess({ s: 'x', t: 'z', q: 1 }).reasons, []);
  assert.deepEqual(ev.assess({ p: '/opt/app/v1/plugins/a.so', q: 1 }), { risk: 'high', reasons: ['c'] });
  assert.deepEqual(ev.assess({ p: '/opt/app/plugins/sub/a.so', q: 1 }).reasons, []);
  assert.deepEqual(ev.assess({ list: ['l', 'm'], q: 1 }).reasons, ['d']);
  assert.deepEqual(ev.assess({}).reasons, ['e']);
  assert.deepEqual(ev.assess({ s: 'x' }).reasons, ['b'], 'not: an absent attribute is not "z"; unless stops e');
});

test('globToRegExp escapes regex characters of paths', () => {
  assert.ok(globToRegExp('/a+b/(x)/*.so').test('/a+b/(x)/lib.so'));
  assert.ok(!globToRegExp('/a/?.so').test('/a/ab.so'));
});

test('the default rule set passes its own validation; bad rules are refused with the rule and field named', () => {
  checkRiskRules(defaultRiskRules());
  const bad: Array<[unknown, RegExp]> = [
    [{}, /array/],
    [[{ reason: 'X', risk: 'low', when: { a: 1 } }], /rules\[0\]\.reason/],
    [[{ reason: 'x', risk: 'severe', when: { a: 1 } }], /rules\[0\]\.risk/],
    [[{ reason: 'x', risk: 'low', when: {} }], /at least one condition/],
    [[{ reason: 'x', risk: 'low', when: { a: { like: 1 } } }], /unknown operator "like"/],
    [[{ reason: 'x', risk: 'low', when: { a: { under: 'tmp' } } }], /absolute/],
    [[{ reason: 'x', risk: 'low', when: { a: 1 }, extra: 1 }], /unknown key "extra"/],
    [[{ reason: 'x', risk: 'low', when: { 'bad key': 1 } }], /not an attribute name/],
    [[{ reason: 'x', risk: 'low', when: { a: { not: { gte: 'x' } } } }], /gte must be a number/],
  ];
  for (const [rules, re] of bad) assert.throws(() => checkRiskRules(rules), re);
});
