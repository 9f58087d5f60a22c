import type { SoloadConfig } from '../config/schema';
import type { ElfSymbolResolver } from '../elf';
import type { LoadPathResolver } from '../enrich/paths';
import { FileHasher } from '../enrich/hasher';
import { FirstSeenStore } from '../enrich/first-seen';
import { nodeRootFs, PackageIndexes } from '../enrich/packages';
import { LoadSecurity } from '../enrich/security';
import type { ProcReader } from '../host/proc-reader';
import type { DiagLog } from './log';
import { isSoloadProcess } from './stale';

/** The security stage with what it owns (hasher worker, first-seen state), closed at shutdown. */
export interface SecurityStage {
  security: LoadSecurity;
  hasher?: FileHasher;
  firstSeen?: FirstSeenStore;
  close(): Promise<void>;
}

/**
 * Builds the security stage from `security.*`: the host adapter over the /proc reader, the views
 * and the ELF reader; the hasher; the first-seen state (a state directory that cannot be used is
 * reported and first-seen is off, the rest still works).
 */
export function createSecurityStage(
  config: SoloadConfig,
  deps: { proc: ProcReader; paths: LoadPathResolver; resolver: ElfSymbolResolver; execOf: (pid: number) => string | undefined; log: DiagLog },
): SecurityStage | undefined {
  const s = config.security;
  if (!s.enabled) return undefined;
  const { proc, paths, resolver, log } = deps;
  const hasher = s.hash.enabled
    ? new FileHasher({ maxFileBytes: s.hash.maxFileBytes, bytesPerSecond: s.hash.bytesPerSecond, maxQueue: s.hash.maxQueue })
    : undefined;
  let firstSeen: FirstSeenStore | undefined;
  if (s.stateDir) {
    try {
      const store = new FirstSeenStore({ dir: s.stateDir, maxEntries: s.firstSeenEntries, isAlive: (pid) => isSoloadProcess(proc, pid) });
      const opened = store.open();
      if (opened.recovered) log.warn(`first-seen state: ${opened.recovered}`);
      log.debug(`first-seen state: ${opened.entries} keys in ${s.stateDir}`);
      firstSeen = store;
    } catch (err) {
      log.warn(`first-seen state unavailable (soload.first_seen is not reported): ${(err as Error).message}`);
    }
  }
  const packages = s.packages.enabled ? new PackageIndexes() : undefined;
  const security = new LoadSecurity(
    {
      viewOf: (pid) => paths.viewRoot(pid),
      canonicalIn: (id, prefix, file) => paths.canonicalIn(id, prefix, file),
      fileFacts: (hostPath) => proc.fileFacts(hostPath),
      readSmallFile: (hostPath) => proc.readSmallFile(hostPath),
      dynamicInfo: (hostPath) => {
        try {
          return resolver.dynamicInfo(hostPath);
        } catch {
          return undefined;
        }
      },
      execOf: deps.execOf,
      rootFs: (id, prefix) => nodeRootFs(prefix, (p) => paths.canonicalIn(id, prefix, p)),
    },
    {
      rules: s.rules,
      severity: s.severity,
      ...(packages ? { packages } : {}),
      ...(hasher ? { hasher } : {}),
      hashWaitMs: s.hash.waitMs,
      ...(firstSeen ? { firstSeen } : {}),
      recheckMs: s.packages.recheckMs,
    },
  );
  // the host's own database is indexed before soload reports ready (its records carry provenance
  // from the first one); other roots are indexed when first met
  security.warmPackages(paths.viewRoot(process.pid));
  return {
    security,
    ...(hasher ? { hasher } : {}),
    ...(firstSeen ? { firstSeen } : {}),
    async close() {
      firstSeen?.close();
      await hasher?.close();
    },
  };
}
