import os from 'node:os';
import path from 'node:path';
import { resolverOptions } from '../agent/agent';
import { DebuginfodClient, debuginfodUrlsFromEnv } from '../elf/debuginfod';
import { inventoryLibraries, loaderKey, type LibraryFile } from '../plan/discover';
import { expandGlobs, layerLoaders, processLoaders, statFile } from '../plan/roots';
import type { LinkMapLayout } from '../plan/calibrate';
import { planCapture, type CapturePlan } from '../plan/select';
import type { SoloadConfig } from '../config/schema';
import { ElfSymbolResolver } from '../elf';
import { ProcReader } from '../host/proc-reader';
import { locateTracefs, probeCapabilities, TRACEFS_CANDIDATES, type TracefsCapabilities } from '../tracefs/session';
import { fileOffsetFetchVerdict, type FileOffsetFetchTest } from '../tracefs/fetch-selftest';
import { escapeForLog } from '../util/path-bytes';
import { assessPrivileges, type PrivilegeReport, type PrivilegeRoots } from '../host/privileges';

/** One loader/libc file in use on the host and what soload found in it. */
export interface LoaderFileReport {
  path: string;
  kind: 'libc' | 'libdl' | 'ld.so' | 'musl';
  processes: number;
  symbols: Array<{ symbol: string; found: boolean; table?: string; fileOffset?: string; error?: string }>;
  /** Which capture mechanism this file gets, and why. */
  mechanism: string;
  /** The root it belongs to when not the host's: a container's, a chroot, an image layer. */
  root?: { prefix: string; origin: string };
  /** Debug symbols fetched for it from debuginfod by this check (URL), or why not. */
  debuginfod?: string;
}

/** Everything `soload check` reports. */
export interface CheckReport {
  kernel: string;
  arch: string;
  root: boolean;
  /** Effective uid and capabilities, lockdown mode, what is missing (also in `problems`) and what degrades records. */
  privileges: PrivilegeReport;
  tracefs: TracefsCapabilities;
  /**
   * Live tests of what the README promises (the CLI runs them before check): `fileOffsetFetch`
   * absent = not run (not root, no tracefs, no program to probe).
   */
  selfTests?: { fileOffsetFetch?: FileOffsetFetchTest };
  loaders: LoaderFileReport[];
  probes: { planned: number; skipped: Array<{ probe: string; library: string; reason: string }> };
  problems: string[];
}

const WANTED: Record<LoaderFileReport['kind'], string[]> = {
  libc: ['dlopen'],
  libdl: ['dlopen'],
  'ld.so': ['_dl_add_to_namespace_list', '_dl_debug_state', '_r_debug'],
  musl: ['dlopen', '_dl_debug_state'],
};

function kindOf(p: string): LoaderFileReport['kind'] | undefined {
  const b = path.basename(p);
  if (/^ld-musl/.test(b) || /^libc\.musl/.test(b)) return 'musl';
  if (/^ld-linux.*\.so/.test(b) || /^ld\.so/.test(b) || /^ld64\.so/.test(b) || /^ld-2\.\d+\.so$/.test(b)) return 'ld.so';
  if (b === 'libc.so' && /musl/.test(p)) return 'musl';
  if (/^libc\.so\.6$/.test(b) || /^libc-2\.\d+\.so$/.test(b)) return 'libc';
  if (/^libdl\.so\.2$/.test(b) || /^libdl-2\.\d+\.so$/.test(b)) return 'libdl';
  return undefined;
}

/** Gathers the report (reads the host and runs calibration helpers; never writes to the kernel). */
export async function runCheck(
  config: SoloadConfig,
  opts: { proc?: ProcReader; inventory?: LibraryFile[]; /** fixture trees for the privilege facts (tests) */ privilegeRoots?: Omit<PrivilegeRoots, 'tracefsPath'> } = {},
): Promise<CheckReport> {
  const proc = opts.proc ?? new ProcReader(config.procRoot);
  const problems: string[] = [];
  const root = typeof process.getuid === 'function' ? process.getuid() === 0 : false;
  // Capabilities, lockdown and tracefs writability, as `run` meets them (it fails with the same text).
  const privileges = assessPrivileges({ ...opts.privilegeRoots, tracefsPath: config.tracefs.path });
  problems.push(...privileges.problems.map((p) => p.message));
  const canMount = privileges.capabilities.includes('CAP_SYS_ADMIN');
  const tracefsPath = privileges.tracefs ?? locateTracefs(config.tracefs.path, canMount && !opts.privilegeRoots?.tracefsCandidates);
  const caps = probeCapabilities(tracefsPath);
  if (!caps.path) {
    if (privileges.problems.length === 0) problems.push(`tracefs is not mounted at ${(opts.privilegeRoots?.tracefsCandidates ?? TRACEFS_CANDIDATES).join(' or ')} (mount -t tracefs nodev /sys/kernel/tracing)`);
  } else if (!caps.uprobes) problems.push(`${caps.path}/uprobe_events is missing: kernel built without CONFIG_UPROBE_EVENTS`);
  else {
    if (!caps.instances) problems.push('tracefs has no instances/: soload needs its own instance so other tracers are not disturbed');
    if (!caps.returnProbes) problems.push('return uprobes are not supported: dlopen results cannot be captured');
    if (!caps.ustring) problems.push('the ustring fetch type is not supported (kernel < 5.5): paths cannot be read');
  }
  const discovery = config.discovery.enabled && !opts.inventory;
  const inventory = opts.inventory ?? inventoryLibraries(proc, undefined, undefined, !config.discovery.enabled);
  const resolver = new ElfSymbolResolver(resolverOptions(config));
  const layouts = new Map<string, Promise<LinkMapLayout>>();
  const urls = config.debuginfod.urls.length > 0 ? config.debuginfod.urls : debuginfodUrlsFromEnv();
  const client = config.debuginfod.enabled && urls.length > 0 ? new DebuginfodClient({ urls, cacheDir: config.debuginfod.cacheDir, timeoutMs: config.debuginfod.timeoutMs, maxBytes: config.debuginfod.maxBytes }) : undefined;
  // Loaders of other roots (running containers and chroots, image layers), as `run` arms them.
  const hostKeys = new Set<string>();
  for (const f of inventory) {
    const st = statFile(f.path);
    if (st) hostKeys.add(loaderKey(st));
  }
  const foreign = discovery ? [...processLoaders(proc, resolver, hostKeys), ...layerLoaders(expandGlobs(config.discovery.imageLayers), proc, new Set(hostKeys))] : [];
  const fetched = new Map<string, string>();
  if (client) {
    // What `run` would do in the background, done here before reporting: symbols by build-id.
    for (const f of [...inventory, ...foreign.flatMap((l) => l.files)]) {
      if (kindOf(f.path) !== 'ld.so' && !f.aliases.some((a) => kindOf(a) === 'ld.so')) continue;
      try {
        resolver.lookup(f.path, '_dl_add_to_namespace_list');
        continue;
      } catch {
        /* no local symbols: ask debuginfod */
      }
      const id = safeBuildId(resolver, f.path);
      if (!id) continue;
      const r = await client.fetch(id);
      fetched.set(f.path, r.ok ? `fetched from ${r.url}` : `not available: ${r.reason}`);
    }
  }
  // The same selector `run` and `probes` use: what is reported here is what run installs.
  const plan = await planCapture({ config, resolver, proc, inventory, layouts });
  const loaders: LoaderFileReport[] = [];
  report(inventory, plan, undefined);
  let n = 0;
  for (const l of foreign) {
    const p = await planCapture({ config, resolver, proc, inventory: l.files, layouts, eventSuffix: `_l${++n}` });
    report(l.files, p, { prefix: l.files[0]!.root?.prefix ?? '', origin: l.origin });
  }
  function report(files: LibraryFile[], plan: CapturePlan, root: LoaderFileReport['root']): void {
  const choiceFor = (file: string) => plan.sets.find((c) => c.set.dir === path.dirname(file));
  for (const lib of files) {
    const kind = kindOf(lib.path);
    if (!kind) continue;
    const symbols = WANTED[kind].map((symbol) => {
      try {
        // Data such as _r_debug may live in .bss (no file bytes): report where it is, not a file offset.
        const r = resolver.lookup(lib.path, symbol);
        const table = r.debugFile ? `${r.table} (${r.debugFile})` : r.table;
        if (r.type === 'object' || r.type === 'tls') return { symbol, found: true, table, fileOffset: `vaddr 0x${r.vaddr.toString(16)} (data; read with @+)` };
        return { symbol, found: true, table, fileOffset: `file offset 0x${resolver.resolve(lib.path, symbol).fileOffset.toString(16)}` };
      } catch (err) {
        return { symbol, found: false, error: (err as Error).message };
      }
    });
    const choice = choiceFor(lib.path);
    let mechanism: string;
    const extra = { ...(root ? { root } : {}), ...(fetched.has(lib.path) ? { debuginfod: fetched.get(lib.path)! } : {}) };
    if (kind === 'libdl' && plan.stubs.includes(lib.path)) {
      // glibc ≥ 2.34 keeps libdl.so.2 only as a stub for old binaries: nothing to probe, by design.
      loaders.push({ path: lib.path, kind, processes: lib.usedBy.length, symbols: [], mechanism: 'none needed: a glibc ≥ 2.34 stub (dlopen lives in libc.so.6 next to it)', ...extra });
      continue;
    } else if (!choice) mechanism = 'none: no probe could be planned on this file (see skipped probes)';
    else if (!choice.mechanism) mechanism = `NONE: ${choice.rejected.map((r) => `${r.mechanism}: ${r.reason}`).join('; ')}`;
    else {
      const passed = choice.rejected.map((r) => `${r.mechanism} not used: ${r.reason}`).join('; ');
      mechanism = `${choice.mechanism.name} (${choice.reason}) — ${choice.description}${passed ? ` [${passed}]` : ''}`;
    }
    loaders.push({ path: lib.path, kind, processes: lib.usedBy.length, symbols, mechanism, ...extra });
  }
  }
  if (plan.specs.length === 0) problems.push('no probe can be planned on this host (see skipped probes)');
  return {
    kernel: os.release(),
    arch: process.arch,
    root,
    privileges,
    tracefs: caps,
    selfTests: { ...(fileOffsetFetchVerdict() ? { fileOffsetFetch: fileOffsetFetchVerdict()! } : {}) },
    loaders,
    probes: {
      planned: plan.specs.length,
      skipped: plan.skipped.map((s) => ({ probe: s.probe, library: s.library, reason: s.reason })),
    },
    problems,
  };
}

function foffsLine(t: FileOffsetFetchTest | undefined): string {
  if (!t) return 'not run (needs root and a mounted tracefs)';
  return t.works
    ? `reads the file (${t.binary} at 0x${t.offset.toString(16)})`
    : `DOES NOT READ THE FILE (${t.read} from ${t.binary} at 0x${t.offset.toString(16)}, the file has ${t.expected}): the loader-lists and search-lists mechanisms are not used`;
}

function safeBuildId(resolver: ElfSymbolResolver, file: string): string | undefined {
  try {
    return resolver.inspect(file).buildId;
  } catch {
    return undefined;
  }
}

/** Human-readable rendering of a CheckReport. */
export function formatCheck(r: CheckReport): string {
  const yn = (b: boolean) => (b ? 'yes' : 'NO');
  const lines = [
    `kernel            ${r.kernel} (${r.arch})`,
    `running as root   ${yn(r.root)}`,
    `privileges        uid ${r.privileges.euid}; ${r.privileges.capabilities.join(' ') || 'no capabilities'}${r.privileges.lockdown ? `; lockdown ${r.privileges.lockdown}` : ''}`,
    `tracefs           ${r.tracefs.path ?? (r.privileges.problems.length ? 'NOT USABLE (see below)' : 'NOT MOUNTED')}`,
    `uprobe_events     ${yn(r.tracefs.uprobes)}`,
    `kprobe_events     ${r.tracefs.kprobes ? 'yes' : 'no (optional: soload does not need kprobes)'}`,
    `instances         ${yn(r.tracefs.instances)}`,
    `%return probes    ${yn(r.tracefs.returnProbes)}`,
    `ustring           ${yn(r.tracefs.ustring)}`,
    `@+offset fetch    ${yn(r.tracefs.fileOffsetFetch)}`,
    `@+ live test      ${foffsLine(r.selfTests?.fileOffsetFetch)}`,
    `$comm fetch       ${yn(r.tracefs.comm)}`,
    `record-tgid       ${yn(r.tracefs.recordTgid)}`,
    `sched tracepoints ${yn(r.tracefs.schedTracepoints)}`,
    `trace clocks      ${r.tracefs.traceClocks.join(' ') || '-'}`,
    '',
    'loader and libc files in use:',
  ];
  if (r.loaders.length === 0) lines.push('  (none found)');
  for (const l of r.loaders) {
    lines.push(`  ${l.path} [${l.kind}]${l.root ? ` (${l.root.origin} root ${l.root.prefix})` : ''} used by ${l.processes}${l.processes >= 16 ? '+' : ''} processes`);
    if (l.debuginfod) lines.push(`    debuginfod: ${l.debuginfod}`);
    for (const s of l.symbols) {
      lines.push(s.found ? `    ${s.symbol}: found in ${s.table} at ${s.fileOffset}` : `    ${s.symbol}: NOT FOUND (${s.error})`);
    }
    lines.push(`    capture: ${l.mechanism}`);
  }
  lines.push('', `probes planned: ${r.probes.planned}`);
  for (const s of r.probes.skipped) lines.push(`  skipped ${s.probe} (${s.library}): ${s.reason}`);
  if (r.privileges.degraded.length) lines.push('', 'records will be incomplete:', ...r.privileges.degraded.map((d) => `  - ${d}`));
  lines.push('', ...(r.problems.length ? ['soload CANNOT run here:', ...r.problems.map((p) => `  - ${p}`)] : ['soload can run here.']));
  // Paths and kernel text come from the outside: a newline or escape sequence in one must not
  // make a line of its own or reach the terminal (each line is escaped alone).
  return lines.map((l) => escapeForLog(l)).join('\n');
}
