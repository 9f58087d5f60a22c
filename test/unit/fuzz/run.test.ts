import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runFuzz } from '../../fuzz/run';

// The time-boxed fuzz run of `npm test` (the long one is `npm run fuzz -- --seconds N`): the trace_pipe
// parser and the ELF readers under the coverage-guided fuzzer of test/fuzz, each input under the
// watchdog. SOLOAD_FUZZ_SEED reproduces a run; by default every run explores from a new seed.

test('the harness itself reports a failing input and a hanging one, with the input saved', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-fuzz-canary-'));
  const r = await runFuzz({ seconds: 4, targets: ['canary-crash', 'canary-hang'], perInputMs: 300, outDir: out, seed: 1 });
  const crash = r.failures.find((f) => f.target === 'canary-crash' && f.kind === 'crash' && f.property === 'canary');
  const hang = r.failures.find((f) => f.target === 'canary-hang' && f.kind === 'hang');
  assert.ok(crash, JSON.stringify(r.failures));
  assert.ok(hang, JSON.stringify(r.failures));
  assert.ok(fs.readFileSync(crash.file).includes('BOOM'));
  assert.ok(fs.readFileSync(hang.file).includes('BOOM'));
  assert.ok(r.targets.find((t) => t.target === 'canary-hang')!.restarts >= 1, 'fuzzing resumed in a new worker after the hang');
  fs.rmSync(out, { recursive: true, force: true });
});

test('trace_pipe parser and ELF readers: 30 s of coverage-guided fuzzing, no crash, no hang, bounded memory', async () => {
  const seed = process.env.SOLOAD_FUZZ_SEED ? Number(process.env.SOLOAD_FUZZ_SEED) : Date.now() & 0x7fffffff;
  const lines: string[] = [];
  const r = await runFuzz({ seconds: 30, seed, log: (l) => lines.push(l) });
  const summary = `seed ${seed} (SOLOAD_FUZZ_SEED=${seed} reproduces)\n${lines.join('\n')}`;
  console.log(summary);
  assert.deepEqual(
    r.failures.map((f) => `${f.target} ${f.kind} ${f.property}: ${f.message.split('\n')[0]} ${f.file}`),
    [],
    summary,
  );
  const trace = r.targets.find((t) => t.target === 'trace')!;
  const elf = r.targets.find((t) => t.target === 'elf')!;
  // Enough inputs ran to mean something (thresholds far below what a busy 2-core VM does: 1,600 and
  // 400), and coverage guidance saw the code under test.
  assert.ok(trace.executions >= 300, summary);
  assert.ok(elf.executions >= 100, summary);
  assert.ok(trace.blocks > 500 && elf.blocks > 300, summary);
  // The host's own glibc objects are among the ELF seeds (the real files soload reads most).
  const missing = elf.stats.flatMap((s) => s.missingSeeds);
  for (const p of ['/lib/x86_64-linux-gnu/libc.so.6', '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2']) assert.ok(!missing.includes(p), `${p} missing`);
});
