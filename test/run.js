#!/usr/bin/env node
'use strict';
// `npm test`: builds the real components the integration tests need (once; cached in .cache/),
// then runs the compiled unit and integration suites with node's test runner.
// Integration tests need root and a kernel with uprobe_events; they fail loudly when either is missing.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist', 'test');

function find(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...find(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

const only = process.argv[2]; // optional: unit | integration
const suites = only ? [only] : ['unit', 'integration'];
if (suites.includes('integration')) {
  // Distribution packages the integration tests use, installed where missing: glibc's debug
  // symbols (found by build-id) for the loader-list mechanism tests, bpftrace for the coexistence
  // test (a perf-event uprobe on the same function soload probes), systemd for systemd-analyze.
  const needed = [
    ['libc6-dbg', 'the tests of the debug-symbol capture mechanism will fail'],
    ['bpftrace', 'the coexistence test will fail'],
    // systemd-analyze, to verify examples/systemd/soload.service (PID 1 need not be systemd)
    ['systemd', 'the service test (systemd-analyze verify of the shipped unit) will fail'],
  ].filter(([pkg]) => spawnSync('dpkg', ['-s', pkg], { stdio: 'ignore' }).status !== 0);
  if (needed.length) {
    console.error(`installing ${needed.map(([p]) => p).join(', ')} for the integration tests`);
    const apt = (args) => spawnSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status;
    if (apt(['update']) !== 0 || apt(['install', '-y', '--no-install-recommends', ...needed.map(([p]) => p)]) !== 0) {
      for (const [pkg, consequence] of needed) console.error(`could not install ${pkg}: ${consequence}`);
    }
  }
  for (const script of ['scripts/build-collector.sh']) {
    if (!fs.existsSync(path.join(root, script))) continue;
    const r = spawnSync('bash', [script], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) {
      console.error(`${script} failed (exit ${r.status}); integration tests need it`);
      process.exit(1);
    }
  }
}
const files = suites.flatMap((s) => find(path.join(dist, s)));
if (files.length === 0) {
  console.error('no compiled tests found under dist/test: run `npm run build` first');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=600000', ...files], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
