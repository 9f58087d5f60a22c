import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { containerIdFromCgroup, innermostNsPid, parseMapsPaths, parseNsLink, ProcReader, serviceNameFromEnviron } from '../../../src/host/proc-reader';

import { CID, fixtureProc } from '../enrich/fixtures';
import { resolveInView } from '../../../src/enrich/canonical';

/** Gives fixture process `pid` namespace links (as the kernel prints them) and an NSpid line. */
function withNamespaces(proc: string, pid: number, mnt: number, pidNs: number, nsPids: string): void {
  const dir = path.join(proc, String(pid));
  fs.mkdirSync(path.join(dir, 'ns'), { recursive: true });
  fs.symlinkSync(`mnt:[${mnt}]`, path.join(dir, 'ns', 'mnt'));
  fs.symlinkSync(`pid:[${pidNs}]`, path.join(dir, 'ns', 'pid'));
  fs.appendFileSync(path.join(dir, 'status'), `NSpid:\t${nsPids}\n`);
}

test('readProcess reads every field from a fixture tree', () => {
  const { proc, passwd } = fixtureProc();
  withNamespaces(proc, 1234, 4026532811, 4026532814, '1234\t1');
  const info = new ProcReader(proc, passwd).readProcess(1234)!;
  assert.equal(info.comm, 'evil) (x');
  assert.equal(info.ppid, 77);
  assert.equal(info.startTicks, 987654);
  assert.equal(info.exePath, '/usr/bin/python3.11');
  assert.equal(info.exeName, 'python3.11');
  assert.equal(info.commandLine, 'python3 -m http.server');
  assert.equal(info.uid, 1000);
  assert.equal(info.owner, 'alice');
  assert.equal(info.containerId, CID);
  assert.equal(info.serviceName, 'checkout');
  assert.deepEqual(info.declaredResource, { 'service.name': 'fromattrs', x: 'y' });
  assert.equal(info.mntNs, 4026532811);
  assert.equal(info.pidNs, 4026532814);
  assert.equal(info.nsPid, 1, 'pid 1 of its container');
  assert.deepEqual(info.missing, []);
  assert.equal(new ProcReader(proc, passwd).readProcess(999), undefined);
});

test('readProcess: a host process has namespace ids but no ns pid; unreadable facts are missing, not guessed', () => {
  const { proc, passwd } = fixtureProc();
  withNamespaces(proc, 1234, 4026531841, 4026531836, '1234');
  const host = new ProcReader(proc, passwd).readProcess(1234)!;
  assert.deepEqual([host.mntNs, host.pidNs, host.nsPid], [4026531841, 4026531836, undefined]);
  assert.ok(!('nsPid' in host));
  assert.deepEqual(host.missing, []);

  // Process exists, but no ns links and no NSpid line (exited between reads, or no permission).
  const bare = fixtureProc();
  const gone = new ProcReader(bare.proc, bare.passwd).readProcess(1234)!;
  assert.deepEqual([gone.mntNs, gone.pidNs, gone.nsPid], [undefined, undefined, undefined]);
  assert.ok(!('mntNs' in gone) && !('pidNs' in gone));
  assert.deepEqual(gone.missing, ['soload.process.ns_pid', 'soload.process.mnt_ns', 'soload.process.pid_ns']);
  fs.rmSync(path.join(bare.proc, '1234', 'status'));
  assert.deepEqual(new ProcReader(bare.proc, bare.passwd).readProcess(1234)!.missing, ['process.owner', 'soload.process.ns_pid', 'soload.process.mnt_ns', 'soload.process.pid_ns']);
});

test('readProcess on the live /proc: soload\'s own namespace ids match the kernel\'s links', () => {
  const info = new ProcReader('/proc').readProcess(process.pid)!;
  assert.equal(`mnt:[${info.mntNs}]`, fs.readlinkSync('/proc/self/ns/mnt'));
  assert.equal(`pid:[${info.pidNs}]`, fs.readlinkSync('/proc/self/ns/pid'));
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  assert.equal(info.nsPid, innermostNsPid(status).nsPid);
  assert.ok(!info.missing.some((m) => m.startsWith('soload.process.')), info.missing.join(','));
});

test('parseNsLink: inode of a /proc/<pid>/ns link target, nothing else', () => {
  assert.equal(parseNsLink('mnt:[4026531841]'), 4026531841);
  assert.equal(parseNsLink('pid:[4026532814]\n'), 4026532814);
  assert.equal(parseNsLink('pid_for_children:[4026531836]'), 4026531836);
  assert.equal(parseNsLink('mnt:[]'), undefined);
  assert.equal(parseNsLink('/usr/bin/python3'), undefined);
  assert.equal(parseNsLink(''), undefined);
});

test('innermostNsPid: last NSpid value, only for nested pid namespaces', () => {
  const status = (nspid: string) => `Name:\tsh\nTgid:\t4242\nPid:\t4242\nNSpid:${nspid}\nNSsgid:\t4242\n`;
  assert.deepEqual(innermostNsPid(status('\t4242')), { levels: 1 });
  assert.deepEqual(innermostNsPid(status('\t4242\t7')), { nsPid: 7, levels: 2 });
  assert.deepEqual(innermostNsPid(status('\t4242\t310\t1')), { nsPid: 1, levels: 3 }, 'container in a container');
  assert.deepEqual(innermostNsPid('Name:\tsh\nPid:\t4242\n'), { levels: 0 }, 'kernel without NSpid');
  assert.deepEqual(innermostNsPid(status('\t')), { levels: 0 });
  assert.deepEqual(innermostNsPid(status('\t12\tx')), { levels: 0 });
});

const HEX = '0123456789abcdef'.repeat(4);
const POD = '6f1c1b4e-2f3a-4b5c-9d8e-0123456789ab';
const SYSTEMD_POD = POD.replace(/-/g, '_');

test('container ids: each real-world cgroup format', () => {
  const v1docker = ['12:pids:/docker/', '11:memory:/docker/', '1:name=systemd:/docker/'].map((l) => l + HEX).join('\n') + '\n0::/system.slice/containerd.service\n';
  assert.equal(containerIdFromCgroup(v1docker), HEX, 'cgroup v1 docker (hybrid: a 0:: line without an id)');
  assert.equal(containerIdFromCgroup(`11:memory:/kubepods/burstable/pod${POD}/${HEX}\n10:cpu,cpuacct:/kubepods/burstable/pod${POD}/${HEX}\n`), HEX, 'cgroup v1 kubepods');
  assert.equal(containerIdFromCgroup(`0::/system.slice/docker-${HEX}.scope\n`), HEX, 'cgroup v2 docker');
  assert.equal(
    containerIdFromCgroup(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${SYSTEMD_POD}.slice/cri-containerd-${HEX}.scope\n`),
    HEX,
    'containerd CRI',
  );
  assert.equal(containerIdFromCgroup(`0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${HEX}.scope/container\n`), HEX, 'rootless podman');
  assert.equal(containerIdFromCgroup(`0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${SYSTEMD_POD}.slice/crio-${HEX}.scope\n`), HEX, 'CRI-O');
  assert.equal(containerIdFromCgroup('0::/init.scope\n'), undefined, 'host process');
  assert.equal(containerIdFromCgroup(`0::/system.slice/docker-${HEX}a.scope\n`), undefined, '65 hex digits are no container id');
});

test('container ids from cgroup v1, v2, containerd, podman, crio; none for host processes', () => {
  assert.equal(containerIdFromCgroup(`12:memory:/docker/${CID}\n11:cpu:/docker/${CID}\n`), CID);
  assert.equal(containerIdFromCgroup(`0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-${CID}.scope\n`), CID);
  assert.equal(containerIdFromCgroup(`0::/machine.slice/libpod-${CID}.scope/container\n`), CID, 'podman nests a container cgroup');
  assert.equal(containerIdFromCgroup(`0::/machine.slice/libpod-${CID}.scope\n`), CID);
  assert.equal(containerIdFromCgroup(`0::/kubepods/burstable/pod1/crio-${CID}.scope\n`), CID);
  assert.equal(containerIdFromCgroup('0::/user.slice/user-0.slice/session-1.scope\n'), undefined);
});

test('service.name: OTEL_SERVICE_NAME wins, else OTEL_RESOURCE_ATTRIBUTES, else none', () => {
  assert.equal(serviceNameFromEnviron('OTEL_RESOURCE_ATTRIBUTES=a=b,service.name=pay%20ments\0'), 'pay ments');
  assert.equal(serviceNameFromEnviron('OTEL_SERVICE_NAME=\0OTEL_RESOURCE_ATTRIBUTES=service.name=x\0'), 'x');
  assert.equal(serviceNameFromEnviron('HOME=/root\0'), undefined);
});

test('parseMapsPaths keeps file-backed paths with spaces, strips (deleted), skips anon', () => {
  assert.deepEqual(parseMapsPaths(`1-2 r-xp 0 08:01 5 /a b/c.so (deleted)\n3-4 rw-p 0 00:00 0 [stack]\n5-6 r--p 0 08:01 7 /x.so\n7-8 r--p 0 08:01 7 /x.so\n`), ['/a b/c.so', '/x.so']);
});

test('preloadsOf reads LD_PRELOAD (spaces and colons) and the process root\'s /etc/ld.so.preload', () => {
  const { root, proc } = fixtureProc();
  fs.writeFileSync(path.join(proc, '1234', 'environ'), 'A=1\0LD_PRELOAD=/tmp/a.so libb.so:/opt/c.so\0');
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc', 'ld.so.preload'), '/usr/lib/d.so\n# no comments in this file\n');
  fs.symlinkSync(root, path.join(proc, '1234', 'root'));
  const r = new ProcReader(proc);
  assert.deepEqual(r.preloadsOf(1234).slice(0, 4), ['/tmp/a.so', 'libb.so', '/opt/c.so', '/usr/lib/d.so']);
  assert.deepEqual(r.preloadsOf(4321), []);
});

test('viewIdentity and pinView on the live /proc: soload itself, fds closed again', () => {
  const r = new ProcReader('/proc');
  const own = r.viewIdentity('self');
  assert.match(own ?? '', /^mnt:\[\d+\]:\d+:\d+$/);
  assert.equal(r.viewIdentity(process.pid), own);
  const pin = r.pinView(process.pid);
  assert.ok(pin);
  assert.equal(pin.identity, own);
  assert.ok(fs.statSync(path.join(pin.prefix, 'etc')).isDirectory(), 'the pinned root is walkable');
  r.closeFds(pin.fds);
  assert.equal(r.pinView(2 ** 22 + 12345), undefined, 'no such process');
});

test('defect 5: non-UTF-8 names are resolved by their bytes, reported with \\xNN escapes', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-bytes-'));
  const dir = Buffer.concat([Buffer.from(base + '/lib-'), Buffer.from([0xff, 0xfe]), Buffer.from('-dir')]);
  fs.mkdirSync(dir);
  fs.writeFileSync(Buffer.concat([dir, Buffer.from('/libreal.so')]), 'x');
  fs.symlinkSync('libreal.so', Buffer.concat([dir, Buffer.from('/liblink.so')]));
  const escaped = `${base}/lib-\\xff\\xfe-dir`;
  const r = resolveInView('', `${escaped}/liblink.so`, new ProcReader('/proc'));
  assert.deepEqual([r.path, r.exists, r.links], [`${escaped}/libreal.so`, true, 1]);
});

test('otelResourceFromEnviron: the declared list, parsed and bounded; OTEL_SERVICE_NAME wins', async () => {
  const { otelResourceFromEnviron, DECLARED_RESOURCE_LIMITS } = await import('../../../src/host/proc-reader');
  assert.deepEqual(otelResourceFromEnviron('HOME=/\0OTEL_RESOURCE_ATTRIBUTES=service.namespace=shop,service.instance.id=c-1\0OTEL_SERVICE_NAME=checkout\0'), {
    serviceName: 'checkout',
    attributes: { 'service.namespace': 'shop', 'service.instance.id': 'c-1' },
  });
  assert.deepEqual(otelResourceFromEnviron('PATH=/bin\0'), {});
  const many = Array.from({ length: 100 }, (_, i) => `k${i}=v`).join(',');
  const long = 'x'.repeat(DECLARED_RESOURCE_LIMITS.maxValueLength + 1);
  const r = otelResourceFromEnviron(`OTEL_RESOURCE_ATTRIBUTES=big=${long},${many}\0`);
  assert.equal(Object.keys(r.attributes!).length, DECLARED_RESOURCE_LIMITS.maxAttributes);
  assert.equal(r.attributes!.big, undefined, 'an over-long value is dropped, not truncated');
  assert.equal(r.attributes!.k0, 'v');
});

test('hostile names from /proc keep their bytes: maps (\\012 for a newline, 0xff raw), exe and cwd links, cmdline, comm', () => {
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-proc-hostile-'));
  const dir = path.join(proc, '4242');
  fs.mkdirSync(dir);
  const bad = (s: string) => Buffer.from(s.replace(/\u00ff/g, '\u0000'), 'utf8').map((b) => (b === 0 ? 0xff : b));
  // what the kernel prints: seq_path escapes only the newline, as \012
  fs.writeFileSync(
    path.join(dir, 'maps'),
    Buffer.concat([
      Buffer.from('7f00-7f01 r-xp 00000000 fe:01 11                         /tmp/new\\012line/lib a.so\n'),
      Buffer.from('7f01-7f02 r-xp 00000000 fe:01 12                         '),
      bad('/tmp/bad\u00ff/lib\\x41.so (deleted)\n'),
      Buffer.from('7f02-7f03 rw-p 00000000 00:00 0 \n'),
    ]),
  );
  const target = path.join(proc, 'targets');
  fs.mkdirSync(target);
  const exe = Buffer.concat([Buffer.from(target + '/bin'), Buffer.of(0xfe), Buffer.from('\nx')]);
  fs.writeFileSync(exe, '');
  fs.symlinkSync(exe, path.join(dir, 'exe'));
  const cwdDir = Buffer.concat([Buffer.from(target + '/cwd'), Buffer.of(0x80)]);
  fs.mkdirSync(cwdDir);
  fs.symlinkSync(cwdDir, path.join(dir, 'cwd'));
  fs.writeFileSync(path.join(dir, 'stat'), Buffer.concat([Buffer.from('4242 (c'), Buffer.of(0xff), Buffer.from(') S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0\n')]));
  fs.writeFileSync(path.join(dir, 'cmdline'), Buffer.concat([Buffer.from('prog\0--dir=\\x41'), Buffer.of(0xff), Buffer.from('\0')]));
  const r = new ProcReader(proc, '/nonexistent');
  assert.deepEqual(r.mappedFiles(4242), ['/tmp/new\nline/lib a.so', '/tmp/bad\\xff/lib\\x5cx41.so']);
  assert.deepEqual(r.executableMappings(4242), ['/tmp/new\nline/lib a.so', '/tmp/bad\\xff/lib\\x5cx41.so']);
  assert.deepEqual(r.mappings(4242).map((m) => m.path), ['/tmp/new\nline/lib a.so', '/tmp/bad\\xff/lib\\x5cx41.so', '']);
  assert.equal(r.cwd(4242), `${target}/cwd\\x80`);
  const info = r.readProcess(4242)!;
  assert.equal(info.exePath, `${target}/bin\\xfe\nx`);
  assert.equal(info.comm, 'c\\xff');
  assert.equal(info.commandLine, 'prog --dir=\\x5cx41\\xff');
  // and an escaped name is opened by its bytes, never as its text
  fs.writeFileSync(`${target}/bin\\xfe\nx`, 'a decoy named after the escaped text');
  assert.equal(r.fileFacts(info.exePath!)?.size, 0, 'the real file (empty), not the decoy');
  fs.rmSync(proc, { recursive: true, force: true });
});

test('alive: a pid or tid with a stat file that is not dead; a zombie counts as alive', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-alive-'));
  const stat = (id: number, state: string) => {
    fs.mkdirSync(path.join(root, String(id)));
    fs.writeFileSync(path.join(root, String(id), 'stat'), `${id} (a) b) ${state} 1 ${id} ${id} 0 -1\n`);
  };
  stat(10, 'S');
  stat(11, 'Z');
  stat(12, 'X');
  const r = new ProcReader(root);
  assert.deepEqual([10, 11, 12, 13].map((id) => r.alive(id)), [true, true, false, false]);
});
