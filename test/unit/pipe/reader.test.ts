import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { TracePipeReader, type PipeStats, type TracePipeReaderOptions } from '../../../src/pipe';
import { isSoloadError } from '../../../src/errors';
import type { TraceRecord } from '../../../src/types';
import { FIXTURES, SCHEMAS, fixture } from './fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-pipe-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function waitFor(pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function collect(extra: Partial<TracePipeReaderOptions> & { path: string }): {
  reader: TracePipeReader;
  records: TraceRecord[];
  malformed: Array<[string, string]>;
  lost: Array<{ cpu: number; lost: number; exact: boolean }>;
  errors: Error[];
} {
  const records: TraceRecord[] = [];
  const malformed: Array<[string, string]> = [];
  const lost: Array<{ cpu: number; lost: number; exact: boolean }> = [];
  const errors: Error[] = [];
  const reader = new TracePipeReader({
    schemas: SCHEMAS,
    pollIntervalMs: 5,
    onRecord: (r) => records.push(r),
    onMalformed: (l, why) => malformed.push([l, why]),
    onLost: (i) => lost.push(i),
    onError: (e) => errors.push(e),
    ...extra,
  });
  return { reader, records, malformed, lost, errors };
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

test('reads a recorded fixture from a regular file: records, joined values, stats', async () => {
  const c = collect({ path: path.join(FIXTURES, 'default.txt') });
  c.reader.start();
  await waitFor(() => c.records.length === 18);
  await c.reader.stop();
  const s: PipeStats = c.reader.stats;
  assert.deepEqual(s, {
    bytes: fixture('default.txt').length,
    lines: 20,
    records: 18,
    joined: 2,
    malformed: 0,
    truncated: 0,
    comments: 0,
    lostEvents: 0,
    lostReports: 0,
    callbackErrors: 0,
  });
  assert.deepEqual(c.records[8].fields, { name: '/tmp/soload-pipetest/nl\nname=x.so', flags: '0x2', comm: 'my worker-2' });
  assert.equal(c.records[9].fields.path, '/tmp/soload-pipetest/nl\nname=x.so');
  assert.equal(c.records[17].comm, 'a-b 3-4567');
  assert.deepEqual(c.malformed, []);
  assert.deepEqual(c.errors, []);
});

test('counts kernel LOST notices', async () => {
  const c = collect({ path: path.join(FIXTURES, 'lost.txt') });
  c.reader.start();
  await waitFor(() => c.records.length === 114);
  await c.reader.stop();
  assert.deepEqual(c.lost, [{ cpu: 0, lost: 3886, exact: true }]);
  assert.equal(c.reader.stats.lostEvents, 3886);
  assert.equal(c.reader.stats.lostReports, 1);
});

test('follows a growing file (tail): partial lines wait for their end', async () => {
  const file = path.join(tmp, 'grow.txt');
  const data = fixture('tgid.txt');
  const cut = data.indexOf('\n', 300) + 40; // mid-line
  fs.writeFileSync(file, data.subarray(0, cut));
  const c = collect({ path: file });
  c.reader.start();
  await waitFor(() => c.records.length === 2);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(c.records.length, 2);
  fs.appendFileSync(file, data.subarray(cut));
  await waitFor(() => c.records.length === 18);
  await c.reader.stop();
  assert.equal(c.reader.stats.malformed, 0);
  assert.equal(c.records[16].tgid, 20256);
});

test('reads a FIFO opened non-blocking (no writer yet, then a writer, then EOF)', async () => {
  const fifo = path.join(tmp, 'fifo');
  const mk = spawnSync('mkfifo', [fifo]);
  assert.equal(mk.status, 0, 'mkfifo');
  const c = collect({ path: fifo });
  c.reader.start(); // O_NONBLOCK: opening the read end does not wait for a writer
  await new Promise((r) => setTimeout(r, 20));
  const w = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  const data = fixture('noirq.txt');
  fs.writeSync(w, data.subarray(0, 1000));
  await waitFor(() => c.records.length >= 5);
  fs.writeSync(w, data.subarray(1000));
  await waitFor(() => c.records.length === 18);
  fs.closeSync(w);
  await new Promise((r) => setTimeout(r, 20)); // EOF (no writer) is just "no data"
  assert.equal(c.reader.running, true);
  await c.reader.stop();
  assert.equal(c.records[17].comm, 'a-b 3-4567');
  assert.equal(c.reader.stats.malformed, 0);
});

test('stop() resolves promptly, closes the fd, and drains what is left by default', async () => {
  const file = path.join(tmp, 'stop.txt');
  fs.writeFileSync(file, '');
  const fds = openFds();
  const c = collect({ path: file, pollIntervalMs: 60_000 });
  c.reader.start();
  assert.equal(openFds(), fds + 1);
  await new Promise((r) => setTimeout(r, 20)); // first read: empty, next one in 60 s
  fs.appendFileSync(file, fixture('kernel-6.18-brief.txt'));
  const t0 = Date.now();
  await c.reader.stop();
  assert.ok(Date.now() - t0 < 500, `stop took ${Date.now() - t0} ms`);
  assert.equal(openFds(), fds);
  assert.equal(c.records.length, 5);
  assert.equal(c.reader.running, false);
  await c.reader.stop(); // idempotent
  assert.throws(() => c.reader.start(), /cannot be restarted/);
});

test('stop() is prompt even while the pipe never runs dry', async () => {
  const fifo = path.join(tmp, 'busy-fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  const c = collect({ path: fifo });
  c.reader.start();
  const w = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  const line = fixture('kernel-6.18-brief.txt');
  const feed = setInterval(() => {
    try {
      for (let i = 0; i < 20; i++) fs.writeSync(w, line);
    } catch {
      // EAGAIN: the FIFO is full, the reader is behind
    }
  }, 1);
  try {
    await waitFor(() => c.records.length > 200);
    const t0 = Date.now();
    await c.reader.stop();
    assert.ok(Date.now() - t0 < 1000, `stop took ${Date.now() - t0} ms`);
  } finally {
    clearInterval(feed);
    fs.closeSync(w);
  }
  // at most the line a 64 KiB read cut in half (a FIFO, unlike trace_pipe, does not keep lines whole)
  assert.ok(c.reader.stats.malformed <= 1);
});

test('stop() without draining, and a final line without \\n is still delivered', async () => {
  const file = path.join(tmp, 'nodrain.txt');
  fs.writeFileSync(file, '         timeout-2074    [000] DBZff   196.402101: dbg: (0x7ff8daac2060) st=1');
  const c = collect({ path: file, drainOnStop: false });
  c.reader.start();
  await waitFor(() => c.reader.stats.bytes > 0);
  await c.reader.stop();
  assert.equal(c.records.length, 1);
  assert.equal(c.records[0].fields.st, '1');
});

test('malformed, over-long and unterminated lines are counted; callbacks that throw do not stop it', async () => {
  const file = path.join(tmp, 'bad.txt');
  const good = '            main-2101    [000] DBZff   210.865465: r: (0x1 <- 0x2) h=0x0 path=(fault)';
  fs.writeFileSync(
    file,
    [
      '# tracer: nop',
      'garbage',
      `${good.slice(0, 60)}${'x'.repeat(300)}`,
      '            main-2101    [000] DBZff   210.865465: r: (0x1 <- 0x2) h=0x1 path="/never/closed',
      good,
      '',
    ].join('\n'),
  );
  let calls = 0;
  const c = collect({
    path: file,
    maxLineLength: 200,
    onRecord: () => {
      calls++;
      throw new Error('consumer bug');
    },
  });
  c.reader.start();
  await waitFor(() => calls === 1);
  await c.reader.stop();
  const s = c.reader.stats;
  assert.equal(s.lines, 5);
  assert.equal(s.comments, 1);
  assert.equal(s.truncated, 1);
  assert.equal(s.malformed, 3);
  assert.equal(s.records, 1);
  assert.equal(s.callbackErrors, 1);
  assert.deepEqual(
    c.malformed.map((m) => m[1]),
    ['no "comm-tid [cpu]" header', 'line longer than 200 bytes (cut)', 'line ends inside a quoted value and no continuation followed'],
  );
  assert.equal(c.errors.length, 1);
  assert.equal(c.errors[0].message, 'consumer bug');
});

test('start() on a missing path throws SoloadError TRACEFS_IO', () => {
  const r = new TracePipeReader({ path: path.join(tmp, 'does-not-exist'), onRecord: () => {} });
  assert.throws(
    () => r.start(),
    (e: unknown) => isSoloadError(e, 'SOLOAD_ERR_TRACEFS_IO') && /does-not-exist/.test((e as Error).message),
  );
});

// ---- live tracefs: a real probe hit through our own instance and probe group ----

const TRACEFS = '/sys/kernel/tracing';
const LIBC = '/lib/x86_64-linux-gnu/libc.so.6';
const INSTANCE = `soload-pipetest-${process.pid}`;
const GROUP = `soloadpipetest${process.pid}`;

function dlopenOffset(): string | undefined {
  const nm = spawnSync('nm', ['-D', '--defined-only', LIBC], { encoding: 'utf8' });
  if (nm.status !== 0) return undefined;
  const m = /^([0-9a-f]+) T dlopen@@/m.exec(nm.stdout);
  return m ? `0x${m[1]}` : undefined;
}

function liveSkipReason(): string | false {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'needs root on Linux';
  if (!fs.existsSync(path.join(TRACEFS, 'uprobe_events'))) return `no ${TRACEFS}/uprobe_events`;
  if (!fs.existsSync(LIBC)) return `no ${LIBC}`;
  if (!dlopenOffset()) return 'cannot find dlopen in libc with nm';
  return false;
}

const skipLive = liveSkipReason();

describe('live tracefs instance', { skip: skipLive }, () => {
  const inst = path.join(TRACEFS, 'instances', INSTANCE);
  const cleanup: Array<() => void> = [];
  let reader: TracePipeReader | undefined;

  before(() => {
    fs.mkdirSync(inst);
    cleanup.unshift(() => fs.rmdirSync(inst));
    const def = `p:${GROUP}/x ${LIBC}:${dlopenOffset()} name=+0(%di):ustring comm=$comm`;
    fs.appendFileSync(path.join(TRACEFS, 'uprobe_events'), `${def}\n`); // append: never truncate others' probes
    cleanup.push(() => fs.appendFileSync(path.join(TRACEFS, 'uprobe_events'), `-:${GROUP}/x\n`));
    fs.writeFileSync(path.join(inst, 'events', GROUP, 'enable'), '1');
    cleanup.unshift(() => fs.writeFileSync(path.join(inst, 'events', GROUP, 'enable'), '0'));
  });

  after(async () => {
    await reader?.stop();
    // order: disable, remove the instance, then the probe (the kernel refuses to delete a probe in use)
    for (const step of cleanup) {
      try {
        step();
      } catch (err) {
        console.error(`live tracefs cleanup: ${(err as Error).message}`);
      }
    }
    assert.equal(fs.existsSync(inst), false);
    assert.equal(fs.readFileSync(path.join(TRACEFS, 'uprobe_events'), 'utf8').includes(`${GROUP}/`), false);
  });

  test('a real dlopen hit is parsed', async () => {
    const records: TraceRecord[] = [];
    const schemas = new Map([['x', { fields: [{ name: 'name', string: true }, { name: 'comm', string: true }] }]]);
    reader = new TracePipeReader({ path: path.join(inst, 'trace_pipe'), schemas, pollIntervalMs: 10, onRecord: (r) => records.push(r) });
    reader.start();
    const target = `/nonexistent/soload pipe "test"-${process.pid}.so`;
    try {
      process.dlopen({ exports: {} } as NodeJS.Module, target); // glibc dlopen in this very thread
    } catch {
      // ENOENT is expected: only the probe hit matters
    }
    await waitFor(() => records.some((r) => r.fields.name === target), 10_000);
    await reader.stop();
    const hit = records.find((r) => r.fields.name === target)!;
    assert.equal(hit.event, 'x');
    assert.equal(hit.tid, process.pid); // the main thread's tid is the pid
    assert.equal(hit.fields.comm, fs.readFileSync('/proc/self/comm', 'utf8').trim());
    assert.match(hit.location, /^0x[0-9a-f]+$/);
    assert.ok(hit.timestampNs > 0n);
    assert.ok(hit.cpu >= 0 && hit.cpu < os.cpus().length);
    assert.equal(reader.stats.malformed, 0);
  });
});

test('an exec of a program whose path holds a newline: the unquoted tracepoint line is joined back', async () => {
  const { TraceStreamParser } = await import('../../../src/pipe');
  const records: TraceRecord[] = [];
  const malformed: string[] = [];
  const p = new TraceStreamParser({ schemas: SCHEMAS, onRecord: (r) => records.push(r), onMalformed: (_l, why) => malformed.push(why) });
  const head = '          <...>-20244   [000] DBZff   816.168620: ';
  p.write(Buffer.concat([
    Buffer.from(`${head}sched_process_exec: filename=/tmp/new\nline/p r`),
    Buffer.of(0xff),
    Buffer.from(` pid=20244 old_pid=20244\n${head}sched_process_exec: filename=/bin/true pid=7 old_pid=7\n${head}sched_process_exec: filename=/tmp/cut\n${head}sched_process_exec: filename=/x pid=8 old_pid=8\n`),
  ]));
  p.end();
  assert.deepEqual(records.map((r) => r.fields.filename), ['/tmp/new\nline/p r\\xff', '/bin/true', '/x']);
  assert.deepEqual(records.map((r) => r.fields.pid), ['20244', '7', '8']);
  assert.deepEqual(malformed, ['fields do not match the probe schema'], 'a cut line with no continuation is still reported, with its own reason');
});
