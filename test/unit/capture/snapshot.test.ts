import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyMappings } from '../../../src/capture/snapshot';

const FACTS: Record<string, { needed: string[]; soname?: string; interp?: string }> = {
  '/usr/bin/app': { needed: ['libssl.so.3', 'libc.so.6'], interp: '/lib64/ld-linux-x86-64.so.2' },
  '/usr/lib/libssl.so.3': { needed: ['libcrypto.so.3', 'libc.so.6'], soname: 'libssl.so.3' },
  '/usr/lib/libcrypto.so.3': { needed: ['libc.so.6'], soname: 'libcrypto.so.3' },
  '/usr/lib/libc.so.6': { needed: ['ld-linux-x86-64.so.2'], soname: 'libc.so.6' },
  '/usr/lib/ld-linux-x86-64.so.2': { needed: [] },
  '/tmp/inject.so': { needed: ['libinjdep.so'] },
  '/tmp/libinjdep.so': { needed: [], soname: 'libinjdep.so' },
  '/opt/plugins/plugin.so': { needed: ['libplugdep.so.1'] },
  '/opt/plugins/libplugdep.so.1.0': { needed: [], soname: 'libplugdep.so.1' },
};
const elf = {
  dynamicInfo: (f: string) => {
    const x = FACTS[f];
    if (!x) throw new Error('unreadable');
    return x;
  },
};

test('snapshot: executable, interpreter, preloads and theirs, DT_NEEDED closure, dlopen and its dependencies', () => {
  const m = classifyMappings('/usr/bin/app', Object.keys(FACTS), elf, (p) => p, ['/tmp/inject.so']);
  assert.deepEqual(Object.fromEntries(m), {
    '/usr/bin/app': 'executable',
    '/usr/lib/libssl.so.3': 'needed',
    '/usr/lib/libcrypto.so.3': 'needed',
    '/usr/lib/libc.so.6': 'needed',
    '/usr/lib/ld-linux-x86-64.so.2': 'interpreter',
    '/tmp/inject.so': 'preload',
    '/tmp/libinjdep.so': 'needed',
    '/opt/plugins/plugin.so': 'dlopen',
    '/opt/plugins/libplugdep.so.1.0': 'needed',
  });
});

test('snapshot: a preload named without a slash (LD_PRELOAD=libinject.so) matches by file name', () => {
  const m = classifyMappings('/usr/bin/app', Object.keys(FACTS), elf, (p) => p, ['inject.so']);
  assert.equal(m.get('/tmp/inject.so'), 'preload');
});

test('snapshot: without a readable executable nothing can be told apart (unknown, not a guess)', () => {
  const m = classifyMappings('/gone/app', ['/usr/lib/libc.so.6', '/opt/plugins/plugin.so'], elf, (p) => p);
  assert.equal(m.get('/opt/plugins/plugin.so'), 'unknown');
});
