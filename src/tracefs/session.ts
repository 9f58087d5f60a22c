import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ErrorCodes, SoloadError } from '../errors';
import type { ProbeSpec } from '../types';
import { buildProbeLine, buildRemoveLine, checkFilter, parseProbeListing, probeAliases } from './probe-line';
import { fsName } from '../util/path-bytes';
import { pathExists } from '../util/exists';
import { readRingBufferStats, type RingBufferStats } from './ring-stats';
import { parseTracepointFormat, type TracepointFormat } from './format';

/** What the running kernel's tracefs offers. */
export interface TracefsCapabilities {
  /** Mount point in use, or undefined when tracefs is unavailable. */
  path?: string;
  uprobes: boolean;
  kprobes: boolean;
  instances: boolean;
  returnProbes: boolean;
  ustring: boolean;
  fileOffsetFetch: boolean;
  comm: boolean;
  recordTgid: boolean;
  traceClocks: string[];
  schedTracepoints: boolean;
}

/** Paths tried, in order, when no tracefs path is configured. */
export const TRACEFS_CANDIDATES = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

/**
 * Finds a mounted tracefs (a directory holding `uprobe_events` or `trace`); with `mountIfMissing`,
 * mounts tracefs at /sys/kernel/tracing the way `mount -t tracefs nodev /sys/kernel/tracing` does.
 */
export function locateTracefs(configured = '', mountIfMissing = true): string | undefined {
  const candidates = configured ? [configured] : TRACEFS_CANDIDATES;
  const found = candidates.find((p) => pathExists(path.join(p, 'trace')));
  if (found || !mountIfMissing) return found;
  const target = configured || TRACEFS_CANDIDATES[0]!;
  if (!pathExists(target)) return undefined;
  spawnSync('mount', ['-t', 'tracefs', 'nodev', target], { stdio: 'ignore' });
  return pathExists(path.join(target, 'trace')) ? target : undefined;
}

/** Reads what a tracefs mount supports from its files and README (pure over the file tree). */
export function probeCapabilities(root: string | undefined): TracefsCapabilities {
  const caps: TracefsCapabilities = {
    path: root,
    uprobes: false,
    kprobes: false,
    instances: false,
    returnProbes: false,
    ustring: false,
    fileOffsetFetch: false,
    comm: false,
    recordTgid: false,
    traceClocks: [],
    schedTracepoints: false,
  };
  if (!root) return caps;
  const exists = (p: string) => pathExists(path.join(root, p));
  const readme = safeRead(path.join(root, 'README'));
  caps.uprobes = exists('uprobe_events');
  caps.kprobes = exists('kprobe_events');
  caps.instances = exists('instances');
  caps.returnProbes = /%return/.test(readme) || /\[r\[/.test(readme);
  caps.ustring = /\bustring\b/.test(readme);
  // `@+OFFSET` (file-offset memory fetch for uprobes) arrived with the same README line that lists
  // "@<address>"; older kernels document it as "@+offset" in uprobetracer only, so accept both.
  caps.fileOffsetFetch = /@<address>|@\+/.test(readme);
  caps.comm = /\$comm/.test(readme);
  caps.recordTgid = exists('options/record-tgid');
  caps.traceClocks = safeRead(path.join(root, 'trace_clock')).replace(/[[\]]/g, '').split(/\s+/).filter(Boolean);
  caps.schedTracepoints = exists('events/sched/sched_process_exit') && exists('events/sched/sched_process_exec');
  return caps;
}

function safeRead(p: string): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

/** Options of a {@link TracefsSession}. */
export interface TracefsSessionOptions {
  /** tracefs mount point (a fixture tree in tests). */
  root: string;
  /** Event group, unique to this soload process (e.g. `soload_1234`). */
  group: string;
  /** Instance directory name, unique to this soload process. */
  instance: string;
  bufferSizeKb?: number;
  traceClock?: string;
  /**
   * Directory for symlinks to probed files whose paths hold whitespace (created on demand, removed
   * at shutdown); without it such files are refused loudly.
   */
  aliasDir?: string;
}

/** A tracepoint soload enables in its own instance, with an optional filter. */
export interface TracepointSpec {
  system: string;
  event: string;
  filter?: string;
  /** Fields the filter needs: without them (older kernels) the event is enabled unfiltered. */
  filterNeeds?: string[];
}

/** A tracepoint as enabled: its format as this kernel describes it, and whether it is filtered. */
export interface EnabledTracepoint {
  spec: TracepointSpec;
  format: TracepointFormat;
  filtered: boolean;
}

/** Probe groups and instances a previous soload left behind. */
export interface StaleState {
  groups: string[];
  instances: string[];
}

/**
 * Owns soload's footprint in tracefs: one instance, one probe group. `start()` creates them;
 * `shutdown()` undoes exactly what start did, in reverse, and keeps going past individual errors so
 * nothing is left behind. Other tracers' probes, instances and global settings are never touched.
 */
export class TracefsSession {
  readonly root: string;
  readonly group: string;
  readonly instance: string;
  private readonly opts: TracefsSessionOptions;
  /** Steps undoing start()/addProbes(), in order; `event` marks the steps of one probe (removeProbes). */
  private readonly undo: Array<{ what: string; run: () => void; event?: string }> = [];
  private aliasesMade = 0;
  private aliasDirMade = false;
  private installed: ProbeSpec[] = [];
  private errorLogOffset = 0;

  constructor(opts: TracefsSessionOptions) {
    this.opts = opts;
    this.root = opts.root;
    this.group = opts.group;
    this.instance = opts.instance;
  }

  /** Directory of soload's instance. */
  get instanceDir(): string {
    return path.join(this.root, 'instances', this.instance);
  }

  /** trace_pipe of soload's instance. */
  get tracePipePath(): string {
    return path.join(this.instanceDir, 'trace_pipe');
  }

  /** Kernel ring-buffer loss counters of soload's instance (undefined when it does not exist). */
  ringStats(): RingBufferStats | undefined {
    return readRingBufferStats(this.instanceDir);
  }

  /** The instance's per-CPU buffer size in KiB as the kernel reports it (0 when unreadable). */
  bufferSizeKb(): number {
    const m = /^(\d+)/.exec(safeRead(path.join(this.instanceDir, 'buffer_size_kb')));
    return m ? Number(m[1]) : 0;
  }

  /** Probes the kernel accepted. */
  get probes(): readonly ProbeSpec[] {
    return this.installed;
  }

  /**
   * Creates the instance, configures it, installs and enables `probes` and `tracepoints`.
   * Probes the kernel refuses are returned in `rejected` (with the kernel's reason) unless
   * `failFast`; the caller decides whether what was accepted is enough.
   */
  start(
    probes: ProbeSpec[],
    tracepoints: TracepointSpec[] = [],
  ): { rejected: Array<{ probe: ProbeSpec; error: SoloadError }>; tracepoints: EnabledTracepoint[] } {
    if (!pathExists(path.join(this.root, 'uprobe_events'))) {
      throw new SoloadError(
        ErrorCodes.UPROBES_UNAVAILABLE,
        `${this.root}/uprobe_events does not exist: this kernel was built without CONFIG_UPROBE_EVENTS, so soload cannot trace. Run \`soload check\` for details.`,
      );
    }
    try {
      fs.mkdirSync(this.instanceDir);
    } catch (err) {
      throw this.ioError(`create tracefs instance ${this.instanceDir}`, err);
    }
    this.undo.push({ what: `remove instance ${this.instance}`, run: () => this.removeInstanceDir(this.instanceDir) });

    if (this.opts.traceClock) this.writeControl(path.join(this.instanceDir, 'trace_clock'), this.opts.traceClock);
    if (this.opts.bufferSizeKb) this.writeControl(path.join(this.instanceDir, 'buffer_size_kb'), String(this.opts.bufferSizeKb));
    // The line header's pid is the thread id; record-tgid adds the process id, which is what a
    // load belongs to. irq-info off drops the latency flags column nobody here reads.
    for (const [opt, val] of [['record-tgid', '1'], ['irq-info', '0']] as const) {
      const p = path.join(this.instanceDir, 'options', opt);
      if (pathExists(p)) this.writeControl(p, val);
    }

    const rejected = this.addProbes(probes);
    const enabledTracepoints: EnabledTracepoint[] = [];
    for (const tp of tracepoints) {
      const on = this.enableTracepoint(tp);
      if (on) enabledTracepoints.push(on);
    }
    return { rejected, tracepoints: enabledTracepoints };
  }

  /**
   * Installs and enables more probes in the running session (a loader met after start: a new
   * container's ld.so). Returns the probes the kernel refused, with its reason; the rest trace
   * from now on. Event names must be new in this session.
   */
  addProbes(probes: readonly ProbeSpec[]): Array<{ probe: ProbeSpec; error: SoloadError }> {
    const rejected: Array<{ probe: ProbeSpec; error: SoloadError }> = [];
    const aliases = this.makeAliases(probes);
    for (const probe of probes) {
      try {
        this.addProbe(probe, aliases.get(probe.path));
      } catch (err) {
        if (err instanceof SoloadError && (err.code === ErrorCodes.PROBE_REJECTED || err.code === ErrorCodes.PATH_NOT_PROBEABLE)) rejected.push({ probe, error: err });
        else throw err;
      }
    }
    return rejected;
  }

  /**
   * Removes probes this session installed (disable, clear filter, delete: the reverse of adding
   * them), e.g. those of a loader whose last process exited. Returns the steps that failed.
   */
  removeProbes(events: readonly string[]): string[] {
    const gone = new Set(events);
    const failures: string[] = [];
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const step = this.undo[i]!;
      if (step.event === undefined || !gone.has(step.event)) continue;
      this.undo.splice(i, 1);
      try {
        step.run();
      } catch (err) {
        failures.push(`${step.what}: ${(err as Error).message}`);
      }
    }
    this.installed = this.installed.filter((p) => !gone.has(p.event));
    return failures;
  }

  /** Symlinks for probed files whose paths uprobe_events cannot carry (see probeAliases); made ones only. */
  private makeAliases(probes: readonly ProbeSpec[]): Map<string, string> {
    const wanted = this.opts.aliasDir ? probeAliases(probes, this.opts.aliasDir, this.aliasesMade) : new Map<string, string>();
    const made = new Map<string, string>();
    if (wanted.size === 0) return made;
    const dir = this.opts.aliasDir!;
    if (!this.aliasDirMade) {
      try {
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        this.aliasDirMade = true;
        this.undo.push({ what: `remove alias directory ${dir}`, run: () => fs.rmSync(dir, { recursive: true, force: true }) });
      } catch {
        return made; // the probes on those files are then refused with PATH_NOT_PROBEABLE
      }
    }
    for (const [file, alias] of wanted) {
      try {
        // `file` is soload-escaped: the link must point at the file's real bytes
        fs.symlinkSync(fsName(file), alias);
        made.set(file, alias);
      } catch {
        /* refused below, loudly */
      }
    }
    this.aliasesMade += wanted.size;
    return made;
  }

  private addProbe(probe: ProbeSpec, alias?: string): void {
    const line = buildProbeLine(this.group, probe, alias);
    const event = probe.event;
    this.writeProbeDefinition(line);
    this.installed.push(probe);
    this.undo.push({ what: `remove probe ${this.group}/${event}`, event, run: () => this.writeProbeDefinition(buildRemoveLine(this.group, event), true) });
    const eventDir = path.join(this.instanceDir, 'events', this.group, event);
    if (probe.filter) {
      this.writeControl(path.join(eventDir, 'filter'), checkFilter(event, probe.filter));
      this.undo.push({ what: `clear filter ${event}`, event, run: () => this.writeControl(path.join(eventDir, 'filter'), '0') });
    }
    const enable = path.join(eventDir, 'enable');
    this.writeControl(enable, '1');
    this.undo.push({ what: `disable ${event}`, event, run: () => this.writeControl(enable, '0') });
  }

  private enableTracepoint(tp: TracepointSpec): EnabledTracepoint | undefined {
    const dir = path.join(this.instanceDir, 'events', tp.system, tp.event);
    const format = parseTracepointFormat(safeRead(path.join(dir, 'format')));
    if (!pathExists(dir) || !format) return undefined;
    // Filter only on fields this kernel has: a filter naming a missing field is refused, and the
    // event must then be treated as unfiltered rather than silently believed filtered.
    const filtered = tp.filter !== undefined && (tp.filterNeeds ?? []).every((f) => format.fields.includes(f));
    if (filtered) {
      this.writeControl(path.join(dir, 'filter'), checkFilter(tp.event, tp.filter!));
      this.undo.push({ what: `clear filter ${tp.event}`, run: () => this.writeControl(path.join(dir, 'filter'), '0') });
    }
    this.writeControl(path.join(dir, 'enable'), '1');
    this.undo.push({ what: `disable ${tp.system}/${tp.event}`, run: () => this.writeControl(path.join(dir, 'enable'), '0') });
    return { spec: tp, format, filtered };
  }

  /**
   * Stops the kernel writing into soload's buffer while what is already there stays readable, so
   * shutdown can drain the last records before removing anything.
   */
  stopRecording(): void {
    try {
      fs.writeFileSync(path.join(this.instanceDir, 'tracing_on'), '0');
    } catch {
      /* instance already gone */
    }
  }

  /**
   * Undoes start() in reverse. Returns the steps that failed (already retried once); an empty list
   * means soload left nothing in the kernel.
   */
  shutdown(): string[] {
    const failures: string[] = [];
    while (this.undo.length > 0) {
      const step = this.undo.pop()!;
      try {
        step.run();
      } catch (err) {
        try {
          step.run();
        } catch {
          failures.push(`${step.what}: ${(err as Error).message}`);
        }
      }
    }
    this.installed = [];
    return failures;
  }

  /** Appends one definition to uprobe_events (O_APPEND: never truncates others' probes). */
  private writeProbeDefinition(line: string, removing = false): void {
    const file = path.join(this.root, 'uprobe_events');
    this.markErrorLog();
    try {
      fs.appendFileSync(file, line + '\n');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (removing && e.code === 'ENOENT') return;
      const kernelSays = this.newErrorLog();
      if (!removing && (e.code === 'EINVAL' || e.code === 'E2BIG' || e.code === 'ENOENT' || e.code === 'EEXIST')) {
        throw new SoloadError(
          ErrorCodes.PROBE_REJECTED,
          `the kernel refused probe definition "${line}": ${kernelSays || e.message}. Check the probe's fetch arguments and offset (\`soload probes\` prints the lines; \`soload check\` lists what this kernel supports).`,
          { line, errno: e.code, kernel: kernelSays },
        );
      }
      throw this.ioError(`write "${line}" to ${file}${kernelSays ? ` (kernel: ${kernelSays})` : ''}`, err);
    }
  }

  private markErrorLog(): void {
    try {
      this.errorLogOffset = fs.statSync(path.join(this.root, 'error_log')).size || safeRead(path.join(this.root, 'error_log')).length;
    } catch {
      this.errorLogOffset = 0;
    }
  }

  /** The kernel's newest error_log entry written since markErrorLog(), condensed to one line. */
  private newErrorLog(): string {
    const text = safeRead(path.join(this.root, 'error_log'));
    const fresh = text.length > this.errorLogOffset ? text.slice(this.errorLogOffset) : text;
    const entries = fresh.split(/\n(?=\[)/).filter((e) => e.trim());
    const last = entries[entries.length - 1];
    if (!last) return '';
    const m = /error:\s*(.+)/.exec(last);
    const cmd = /Command:\s*(.+)/.exec(last);
    const caret = last.split('\n').find((l) => /^\s*\^\s*$/.test(l));
    let where = '';
    if (cmd && caret) {
      const col = caret.indexOf('^') - (last.split('\n').find((l) => l.includes('Command:'))!.indexOf('Command:') + 'Command: '.length);
      if (col >= 0) where = ` (at "${cmd[1]!.slice(col, col + 24)}")`;
    }
    return m ? `${m[1]!.trim()}${where}` : last.trim();
  }

  private writeControl(file: string, value: string): void {
    try {
      fs.writeFileSync(file, value);
    } catch (err) {
      throw this.ioError(`write "${value}" to ${file}`, err);
    }
  }

  private removeInstanceDir(dir: string): void {
    try {
      fs.rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  private ioError(what: string, err: unknown): SoloadError {
    const e = err as NodeJS.ErrnoException;
    const code = e.code === 'EACCES' || e.code === 'EPERM' ? ErrorCodes.NOT_PRIVILEGED : ErrorCodes.TRACEFS_IO;
    const hint =
      code === ErrorCodes.NOT_PRIVILEGED
        ? 'run soload as root (or with CAP_SYS_ADMIN and CAP_DAC_OVERRIDE)'
        : 'another process may hold the file open; `soload check` reports the tracefs state';
    return new SoloadError(code, `cannot ${what}: ${e.message}; ${hint}`, { errno: e.code }, { cause: err });
  }
}

/**
 * Finds probe groups and instances named `<prefix>_<pid>` whose soload process is gone. `isAlive`
 * decides (tests pass a stub); only names of that exact shape are considered, so other tools'
 * probes and instances are never candidates.
 */
export function findStaleState(root: string, groupPrefix: string, instancePrefix: string, isAlive: (pid: number) => boolean): StaleState {
  const groupRe = new RegExp(`^${groupPrefix}_(\\d+)$`);
  const instRe = new RegExp(`^${instancePrefix}_(\\d+)$`);
  const groups = new Set<string>();
  for (const p of parseProbeListing(safeRead(path.join(root, 'uprobe_events')))) {
    const m = groupRe.exec(p.group);
    if (m && !isAlive(Number(m[1]))) groups.add(p.group);
  }
  let instances: string[] = [];
  try {
    instances = fs.readdirSync(path.join(root, 'instances')).filter((n) => {
      const m = instRe.exec(n);
      return m !== null && !isAlive(Number(m[1]));
    });
  } catch {
    instances = [];
  }
  return { groups: [...groups], instances };
}

/**
 * Removes stale soload state: disables the stale groups' events in every instance that enabled
 * them, deletes the instances, then the probe definitions. Returns what could not be removed.
 */
export function removeStaleState(root: string, stale: StaleState): string[] {
  const failures: string[] = [];
  const listing = parseProbeListing(safeRead(path.join(root, 'uprobe_events')));
  for (const inst of stale.instances) {
    const dir = path.join(root, 'instances', inst);
    for (const g of stale.groups) {
      const en = path.join(dir, 'events', g, 'enable');
      try {
        if (pathExists(en)) fs.writeFileSync(en, '0');
      } catch {
        /* removed below with the instance */
      }
    }
    try {
      fs.rmdirSync(dir);
    } catch (err) {
      failures.push(`instance ${inst}: ${(err as Error).message}`);
    }
  }
  for (const g of stale.groups) {
    // A stale group may be enabled in the top-level buffer or in an instance we do not own only if
    // someone enabled it by hand; disable it there too, or the kernel refuses the removal (EBUSY).
    const topEnable = path.join(root, 'events', g, 'enable');
    try {
      if (pathExists(topEnable)) fs.writeFileSync(topEnable, '0');
    } catch {
      /* best effort */
    }
    for (const p of listing.filter((l) => l.group === g)) {
      try {
        fs.appendFileSync(path.join(root, 'uprobe_events'), buildRemoveLine(g, p.event) + '\n');
      } catch (err) {
        failures.push(`probe ${g}/${p.event}: ${(err as Error).message}`);
      }
    }
  }
  return failures;
}
