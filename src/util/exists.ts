import fs from 'node:fs';

/**
 * Whether `p` exists, by stat(2) rather than access(2) as `fs.existsSync` does. access(2) checks
 * with the real uid and, for a non-root uid, without the process's capabilities: a soload running
 * as a service user with CAP_DAC_OVERRIDE would find no tracefs behind its 0700 mount point although
 * it can open every file there.
 */
export function pathExists(p: string): boolean {
  try {
    return fs.statSync(p, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}
