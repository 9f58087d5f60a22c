import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MECHANISMS, type LoaderSet, type MechanismContext } from '../../../src/mechanisms';
import { loadConfig } from '../../../src/config/load';
import type { ProcReader } from '../../../src/host/proc-reader';
import type { ElfSymbolResolver } from '../../../src/elf';
import { groupLoaderSets } from '../../../src/plan/select';
import { setFileOffsetFetchVerdict } from '../../../src/tracefs/fetch-selftest';
import type { ProbeRole, ProbeSpec } from '../../../src/types';

// The kernels of KERNELS.md where `@+` reads nothing (5.10, 6.1): the mechanisms reading libc's
// GOT with it must step aside for one that needs no `@+`.
const DIR = '/usr/lib/x86_64-linux-gnu';
const spec = (event: string, role: ProbeRole, file: string, symbol = 'sym'): ProbeSpec => ({ event, kind: role.endsWith('return') ? 'return' : 'entry', path: `${DIR}/${file}`, offset: 0x100, fetch: [], role, symbol, symbolSource: 'dynsym' });
const DLOPEN = [spec('dlopen_entry', 'dlopen.entry', 'libc.so.6'), spec('dlopen_return', 'dlopen.return', 'libc.so.6')];
const ADD = spec('loader_add', 'loader.add', 'ld-linux-x86-64.so.2');
const OPEN = spec('loader_open', 'loader.open', 'ld-linux-x86-64.so.2', '_dl_open');
const INIT = spec('libc_init', 'libc.init', 'libc.so.6', '__libc_early_init');
const ctx: MechanismContext = {
  config: loadConfig({ env: {} }),
  resolver: { fetchOffset: () => 0x34118, gotFetchOffset: () => 0x1d2f78 } as unknown as ElfSymbolResolver,
  proc: {} as ProcReader,
  calibrate: async () => ({ searchlist: 0x2d8, fileId: 968, source: 'test' }),
  info: () => undefined,
};
const set = (specs: ProbeSpec[]): LoaderSet => groupLoaderSets(specs)[0]!;
async function verdicts(s: LoaderSet) {
  const out: Array<[string, boolean, string]> = [];
  for (const m of MECHANISMS) {
    const a = await m.applies(s, ctx);
    out.push([m.name, a.applies, a.reason]);
  }
  return out;
}

test('a measured broken @+ fetch rejects loader-lists and search-lists with the measurement; loader-probe takes over', async () => {
  const s = set([OPEN, ADD, INIT, ...DLOPEN]);
  setFileOffsetFetchVerdict(undefined);
  const trusted = await verdicts(s);
  assert.equal(trusted.find((v) => v[1])![0], 'loader-lists', 'README trusted: the default mechanism');
  setFileOffsetFetchVerdict({ works: false, binary: '/usr/bin/true', offset: 0x2b80, read: '0x0', expected: '0xff8300000002b8c3' });
  try {
    const measured = await verdicts(s);
    assert.equal(measured.find((v) => v[1])![0], 'loader-probe');
    for (const name of ['loader-lists', 'search-lists']) {
      const v = measured.find((x) => x[0] === name)!;
      assert.equal(v[1], false);
      assert.match(v[2], /@\+ file-offset fetch does not read the probed file \(self-test on \/usr\/bin\/true: read 0x0/);
    }
    const noDebug = await verdicts(set([INIT, ...DLOPEN]));
    assert.equal(noDebug.find((v) => v[1])![0], 'dlopen-only', 'without debug symbols and without @+: dlopen calls only');
  } finally {
    setFileOffsetFetchVerdict(undefined);
  }
});
