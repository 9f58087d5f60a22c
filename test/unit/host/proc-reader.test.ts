import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { containerIdFromCgroup, parseMapsPaths, ProcReader, serviceNameFromEnviron } from '../../../src/host/proc-reader';

import { CID, fixtureProc } from '../enrich/fixtures';
import { resolveInView } from '../../../src/enrich/canonical';

test('readProcess reads every field from a fixture tree', () => {
  const { proc, passwd } = fixtureProc();
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
  assert.deepEqual(info.missing, []);
  assert.equal(new ProcReader(proc, passwd).readProcess(999), undefined);
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
