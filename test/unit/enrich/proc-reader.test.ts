import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProcessEnricher } from '../../../src/enrich/enricher';
import { containerIdFromCgroup, parseMapsPaths, ProcReader, serviceNameFromEnviron } from '../../../src/enrich/proc-reader';
import type { LoadEvent } from '../../../src/types';

const CID = 'a'.repeat(12) + '0123456789abcdef'.repeat(3) + 'b'.repeat(4);

/** A fixture /proc tree with one process. */
function fixtureProc(): { root: string; proc: string; passwd: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-proc-'));
  const proc = path.join(root, 'proc');
  const p = path.join(proc, '1234');
  fs.mkdirSync(p, { recursive: true });
  // comm with ") " inside: the parser must use the last ")".
  fs.writeFileSync(path.join(p, 'stat'), `1234 (evil) (x) S 77 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0\n`);
  fs.symlinkSync('/usr/bin/python3.11', path.join(p, 'exe'));
  fs.symlinkSync(root, path.join(p, 'cwd'));
  fs.writeFileSync(path.join(p, 'cmdline'), 'python3\0-m\0http.server\0');
  fs.writeFileSync(path.join(p, 'status'), 'Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n');
  fs.writeFileSync(path.join(p, 'cgroup'), `0::/system.slice/docker-${CID}.scope\n`);
  fs.writeFileSync(path.join(p, 'environ'), 'PATH=/bin\0OTEL_RESOURCE_ATTRIBUTES=service.name=fromattrs,x=y\0OTEL_SERVICE_NAME=checkout\0');
  fs.writeFileSync(path.join(p, 'maps'), `7f00-7f01 r-xp 00000000 08:01 55 /usr/lib/libz.so.1\n7f01-7f02 r-xp 00000000 08:01 56 /opt/dir with space/libq.so (deleted)\n7f03-7f04 rw-p 00000000 00:00 0 \n`);
  const passwd = path.join(root, 'passwd');
  fs.writeFileSync(passwd, 'root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n');
  fs.mkdirSync(path.join(root, 'lib'));
  fs.writeFileSync(path.join(root, 'lib', 'libplug.so'), 'ELF?');
  return { root, proc, passwd };
}

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

test('enricher caches per pid, forgets on exit, absolutizes relative paths', () => {
  const { root, proc, passwd } = fixtureProc();
  const reader = new ProcReader(proc, passwd);
  const e = new ProcessEnricher(reader);
  const ev: LoadEvent = { timestampNs: 1n, pid: 1234, tid: 1234, comm: 'python3', method: 'dlopen', result: 'ok', probe: 'p', path: 'lib/libplug.so', requestedName: 'lib/libplug.so' };
  const out = e.enrich(ev);
  assert.equal(out.event.path, path.join(root, 'lib', 'libplug.so'));
  assert.equal(out.file?.size, 4);
  assert.equal(out.process?.serviceName, 'checkout');
  assert.equal(e.size, 1);
  e.forget(1234);
  assert.equal(e.size, 0);
  const gone = e.enrich({ ...ev, pid: 4321, path: '/nonexistent/x.so' });
  assert.deepEqual(gone.missing, ['process', 'file.size', 'file.inode']);
});

test('enricher falls back to /proc/<pid>/maps when l_name was unreadable', () => {
  const { proc, passwd } = fixtureProc();
  const e = new ProcessEnricher(new ProcReader(proc, passwd));
  const out = e.enrich({ timestampNs: 1n, pid: 1234, tid: 1234, comm: 'p', method: 'dlopen', result: 'ok', probe: 'p', requestedName: 'libz.so.1', unresolved: ['file.path'] });
  assert.equal(out.event.path, '/usr/lib/libz.so.1');
  assert.deepEqual(out.event.unresolved, []);
});

test('realpathAs resolves inside the process root and falls back to the host view', () => {
  const { root, proc } = fixtureProc();
  fs.mkdirSync(path.join(root, 'usr', 'lib'), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr', 'lib', 'libq.so'), '');
  fs.symlinkSync('usr/lib', path.join(root, 'lib64'));
  fs.symlinkSync(root, path.join(proc, '1234', 'root'));
  const r = new ProcReader(proc);
  assert.equal(r.realpathAs(1234, '/lib64/libq.so'), '/usr/lib/libq.so');
  assert.equal(r.realpathAs(1234, '/lib64/none.so'), undefined);
  assert.equal(r.realpathAs(4321, os.tmpdir()), fs.realpathSync(os.tmpdir()), 'no /proc entry: host view');
});
