import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CID = 'a'.repeat(12) + '0123456789abcdef'.repeat(3) + 'b'.repeat(4);

/** A fixture /proc tree with one process. */
export function fixtureProc(): { root: string; proc: string; passwd: string } {
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
