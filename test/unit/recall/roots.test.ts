/**
 * The pure parts of the recall corpus' foreign-root and musl environments: symlinks resolved inside
 * a root (not on the host), the command lines that run a program in a root, ldd parsing, what each
 * environment skips, the harness's row and argument parsing, and host-path expectations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { inRoot, realpathIn, type ReadLink } from '../../helpers/roots';
import { envSkips, parseLdd, rootLauncher } from '../../recall/corpus';
import { expectedHostPath, formatTable, idealRecord, totals, type RunExpectations } from '../../recall/evaluate';
import { parseArgs, parseRow } from '../../recall/harness';

/** A fake file system of symlinks, by host path. */
const links = (m: Record<string, string>): ReadLink => (p) => m[p];

const R = '/cache/roots/bullseye';

test('realpathIn: an absolute symlink restarts at the root, not at the host /', () => {
  // bullseye with merged /usr: /lib64 -> usr/lib64, and its ld.so link is absolute
  const rl = links({
    [`${R}/lib64`]: 'usr/lib64',
    [`${R}/usr/lib64/ld-linux-x86-64.so.2`]: '/lib/x86_64-linux-gnu/ld-2.31.so',
    [`${R}/lib`]: 'usr/lib',
  });
  assert.equal(realpathIn(R, '/lib64/ld-linux-x86-64.so.2', rl), '/usr/lib/x86_64-linux-gnu/ld-2.31.so');
});

test('realpathIn: relative links, chains, "." and ".." (".." stops at the root), missing components kept', () => {
  const rl = links({
    [`${R}/usr/lib/x86_64-linux-gnu/libc.so.6`]: 'libc-2.31.so',
    [`${R}/opt/a/linkdir`]: '../b/real',
    [`${R}/opt/b/real/l.so`]: './l2.so',
    [`${R}/opt/b/real/l2.so`]: 'l3.so',
  });
  assert.equal(realpathIn(R, '/usr/lib/x86_64-linux-gnu/libc.so.6', rl), '/usr/lib/x86_64-linux-gnu/libc-2.31.so');
  assert.equal(realpathIn(R, '/opt/a/linkdir/l.so', rl), '/opt/b/real/l3.so');
  assert.equal(realpathIn(R, '/opt/./a//x/../y', rl), '/opt/a/y');
  assert.equal(realpathIn(R, '/../../etc/passwd', rl), '/etc/passwd');
  assert.equal(realpathIn(R, '/', rl), '/');
});

test('realpathIn: a symlink loop throws; a relative path is refused', () => {
  const rl = links({ [`${R}/a`]: 'b', [`${R}/b`]: '/a' });
  assert.throws(() => realpathIn(R, '/a/x', rl), /too many symlinks/);
  assert.throws(() => realpathIn(R, 'a', rl), /not absolute/);
});

test('inRoot: private mount namespace, no fork without pidNs, "/" bind-mounted, /proc inside, chroot; argv last', () => {
  const c = inRoot(R, ['/opt/x/prog', 'arg 1']);
  assert.equal(c.file, 'unshare');
  assert.deepEqual(c.args.slice(0, 3), ['--mount', '--propagation', 'private']);
  assert.ok(!c.args.includes('--fork') && !c.args.includes('--pid'));
  const script = c.args[c.args.indexOf('-c') + 1];
  assert.match(script, /mount --bind "\$target" "\$target"/);
  assert.match(script, /mount -t proc proc "\$target\/proc"/);
  assert.match(script, /exec chroot "\$target" "\$@"/);
  assert.deepEqual(c.args.slice(-4), [R, '', '/opt/x/prog', 'arg 1']);
  assert.equal(c.target, R);
  c.cleanup();
  const p = inRoot(R, ['/bin/true'], { pidNs: true });
  assert.deepEqual(p.args.slice(0, 5), ['--mount', '--propagation', 'private', '--pid', '--fork']);
});

test('inRoot overlay: lowerdir = the root, fresh upper/work/merged in a temp dir, chroot into merged; cleanup removes it', () => {
  const c = inRoot(R, ['/bin/true'], { overlay: true });
  try {
    const tmp = c.args[c.args.length - 2];
    assert.equal(c.args[c.args.length - 3], R);
    assert.equal(c.target, path.join(tmp, 'merged'));
    assert.equal(c.upperDir, path.join(tmp, 'upper'));
    assert.match(c.args[c.args.indexOf('-c') + 1], /mount -t overlay soload-overlay -o "lowerdir=\$lower,upperdir=\$tmp\/upper,workdir=\$tmp\/work" "\$target"/);
    assert.ok(fs.existsSync(path.join(tmp, 'work')));
  } finally {
    c.cleanup();
  }
  assert.ok(!fs.existsSync(c.target));
  assert.throws(() => inRoot('/roots/a,b', ['/bin/true'], { overlay: true }), /overlayfs options/);
});

test('rootLauncher: programs go through the static forkexec (cwd, variables in-root); launchers that print pids run directly', () => {
  const l = rootLauncher(R, '/opt/soload-recall/c1', '/opt/soload-recall/c1/bin/forkexec');
  assert.equal(l.truthView, '/opt/soload-recall/c1/truth');
  assert.equal(l.truthHost, `${R}/opt/soload-recall/c1/truth`);
  const w = l.wrap({ file: '/opt/soload-recall/c1/bin/plain', args: ['a'], env: { LD_PRELOAD: '/opt/p.so', SOLOAD_TRUTH_FILE: '/t' }, cwd: '/opt' });
  assert.equal(w.pidFromStdout, true);
  assert.deepEqual(w.args.slice(-6), ['/opt/soload-recall/c1/bin/forkexec', '/opt', 'LD_PRELOAD=/opt/p.so', 'SOLOAD_TRUTH_FILE=/t', '/opt/soload-recall/c1/bin/plain', 'a']);
  assert.equal(w.env?.LD_PRELOAD, undefined, 'an in-root LD_PRELOAD must not reach the host tools');
  const n = l.wrap({ file: '/opt/soload-recall/c1/bin/nsrun', args: ['x'], env: { SOLOAD_TRUTH_FILE: '/t' }, pidFromStdout: true });
  assert.deepEqual(n.args.slice(-2), ['/opt/soload-recall/c1/bin/nsrun', 'x']);
  assert.equal(n.env?.SOLOAD_TRUTH_FILE, '/t');
});

test('parseLdd: soname => path lines, first wins; vdso and the loader line ignored', () => {
  const m = parseLdd(
    '\tlinux-vdso.so.1 (0x00007ffd)\n\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tlibnot.so => not found\n',
  );
  assert.deepEqual([...m], [
    ['libdl.so.2', '/lib/x86_64-linux-gnu/libdl.so.2'],
    ['libc.so.6', '/lib/x86_64-linux-gnu/libc.so.6'],
  ]);
});

test('envSkips: musl skips /etc/ld.so.preload and python; a root skips python; the host nothing', () => {
  assert.deepEqual(envSkips({ kind: 'host', name: 'host' }), []);
  assert.deepEqual(envSkips({ kind: 'musl', name: 'musl' }).map((s) => s.name), ['etc-ld-so-preload', 'python-ctypes']);
  assert.deepEqual(envSkips({ kind: 'root', name: 'trixie', root: '/r' }).map((s) => s.name), ['python-ctypes']);
  for (const s of envSkips({ kind: 'musl', name: 'musl' })) assert.ok(s.reason.length > 10);
});

test('parseRow and the harness options: --rows, --root, --musl; host stays the default', () => {
  assert.deepEqual(parseRow('host'), { kind: 'host', name: 'host' });
  assert.deepEqual(parseRow('musl'), { kind: 'musl', name: 'musl' });
  assert.deepEqual(parseRow('bullseye'), { kind: 'root', name: 'bullseye', rootArg: 'bullseye' });
  assert.deepEqual(parseRow('/srv/roots/alpine/'), { kind: 'root', name: 'alpine', rootArg: '/srv/roots/alpine/' });
  assert.throws(() => parseRow('buster'), /unknown row/);
  assert.equal(parseArgs([]).rows, undefined);
  assert.deepEqual(parseArgs(['--rows', 'host,bullseye,trixie,musl']).rows, ['host', 'bullseye', 'trixie', 'musl']);
  assert.deepEqual(parseArgs(['--root', 'bullseye', '--musl', '--only', 'dlopen-absolute']).rows, ['bullseye', 'musl']);
  assert.deepEqual(parseArgs(['--root', 'trixie', '--only', 'a,b']).only, ['a', 'b']);
  assert.throws(() => parseArgs(['--root']), /--root needs/);
});

test('expectedHostPath: explicit host paths win; in a root, root + file.path; memfds have none', () => {
  const exp: RunExpectations = {
    executable: new Set(['/opt/c/bin/plain']),
    interpreter: new Set(['/usr/lib/x86_64-linux-gnu/ld-2.31.so']),
    preload: new Set(),
    dlopen: new Set(['/opt/c/ns/bind/bound/libplug.so', '/memfd:libmemfd.so']),
    hostPath: new Map([['/opt/c/ns/bind/bound/libplug.so', `${R}/opt/c/lib/plug/libplug.so`]]),
    hostRoot: R,
  };
  assert.equal(expectedHostPath('/usr/lib/x86_64-linux-gnu/ld-2.31.so', exp), `${R}/usr/lib/x86_64-linux-gnu/ld-2.31.so`);
  assert.equal(expectedHostPath('/opt/c/ns/bind/bound/libplug.so', exp), `${R}/opt/c/lib/plug/libplug.so`);
  assert.equal(expectedHostPath('/memfd:libmemfd.so', exp), undefined);
  assert.equal(expectedHostPath('/x', { ...exp, hostRoot: undefined }), undefined);
  assert.equal(idealRecord({ path: '/opt/c/bin/plain' }, exp).hostPath, `${R}/opt/c/bin/plain`);
  assert.equal(idealRecord({ path: '/memfd:libmemfd.so', deleted: true }, exp).hostPath, undefined);
});

test('formatTable: the first column can be titled (the per-environment summary)', () => {
  const t = totals([]);
  assert.match(formatTable([{ name: 'bullseye', t }], t, { head: 'environment' }).split('\n')[0], /^environment\s+runs/);
  assert.match(formatTable([{ name: 'x', t }], t).split('\n')[0], /^scenario\s+runs/);
});
