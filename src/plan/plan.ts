import fs from 'node:fs';
import type { ProbeConfig } from '../config/probes';
import { ErrorCodes, SoloadError, type ErrorCode } from '../errors';
import type { ProbeSpec } from '../types';
import { selectLibraries, type LibraryFile } from './discover';

/** What the planner needs from the ELF layer: symbol → file offset. */
export interface SymbolLookup {
  resolve(file: string, symbol: string): { fileOffset: number; table: string; debugFile?: string };
  /** `@+OFFSET` value reaching `targetSymbol` from a probe on `probeSymbol` (see src/elf/offsets.ts). */
  fetchOffset?(file: string, probeSymbol: string, targetSymbol: string): number;
}

const SYMBOL_REF = /\{([A-Za-z_][\w.]*)(?:([+-])(0x[0-9a-fA-F]+|\d+))?\}/g;

/**
 * Replaces `{symbol}` / `{symbol+N}` in a fetch argument with the `0x` file offset a `@+` fetch needs
 * to reach that symbol (plus N) from this probe — data such as `_r_debug` lives in .bss, which has
 * no file bytes, so this cannot be written by hand portably.
 */
export function expandSymbolRefs(arg: string, file: string, probeSymbol: string | undefined, symbols: SymbolLookup): string {
  return arg.replace(SYMBOL_REF, (_m, sym: string, sign?: string, n?: string) => {
    if (!symbols.fetchOffset || !probeSymbol) {
      throw new SoloadError(ErrorCodes.SYMBOL_NOT_FOUND, `fetch argument "${arg}" refers to {${sym}}, which needs the probe to be placed by symbol`);
    }
    const base = symbols.fetchOffset(file, probeSymbol, sym);
    const delta = n === undefined ? 0 : Number(n) * (sign === '-' ? -1 : 1);
    return `0x${(base + delta).toString(16)}`;
  });
}

/** A probe that was not planned, and why (for `soload check` and start-up logs). */
export interface SkippedProbe {
  probe: string;
  library: string;
  reason: string;
  code: ErrorCode;
  optional: boolean;
}

/** The outcome of planning: concrete probes plus everything skipped. */
export interface ProbePlan {
  specs: ProbeSpec[];
  skipped: SkippedProbe[];
}

/**
 * Turns declarative probes into concrete uprobes (one per matching library file), resolving symbols
 * to file offsets. Pure but for the symbol lookup it is given. A selector matching several files
 * (libc in the host and in a container) yields one probe each, named `<name>`, `<name>_1`, ...
 * `eventSuffix` keeps the names of a plan made later in a running session (a new loader) unique.
 */
export function planProbes(probes: ProbeConfig[], inventory: LibraryFile[], symbols: SymbolLookup, eventSuffix = ''): ProbePlan {
  const specs: ProbeSpec[] = [];
  const skipped: SkippedProbe[] = [];
  for (const probe of probes) {
    let libs = selectLibraries(probe.library, inventory);
    if (libs.length === 0 && probe.library.startsWith('/') && fs.existsSync(probe.library)) {
      const st = fs.statSync(probe.library);
      libs = [{ path: fs.realpathSync(probe.library), aliases: [probe.library], dev: st.dev, ino: st.ino, usedBy: [] }];
    }
    if (libs.length === 0) {
      skipped.push({
        probe: probe.name,
        library: probe.library,
        code: ErrorCodes.LIBRARY_NOT_FOUND,
        optional: probe.optional ?? false,
        reason: `no library on this host matches "${probe.library}" (searched running processes' mappings and the standard library directories)`,
      });
      continue;
    }
    libs.forEach((lib, i) => {
      let offset: number;
      let source: string;
      let fetch: ProbeSpec['fetch'];
      try {
        fetch = Object.entries(probe.fetch).map(([name, arg]) => ({ name, arg: expandSymbolRefs(arg, lib.path, probe.symbol, symbols) }));
        if (probe.offset !== undefined) {
          offset = Number(probe.offset);
          source = 'config offset';
        } else {
          const r = symbols.resolve(lib.path, probe.symbol!);
          offset = r.fileOffset;
          source = r.debugFile ? `${r.table} (${r.debugFile})` : r.table;
        }
      } catch (err) {
        const e = err as SoloadError;
        skipped.push({
          probe: probe.name,
          library: lib.path,
          code: e.code ?? ErrorCodes.SYMBOL_NOT_FOUND,
          optional: probe.optional ?? false,
          reason: e.message,
        });
        return;
      }
      specs.push({
        event: (i === 0 ? probe.name : `${probe.name}_${i}`) + eventSuffix,
        kind: probe.kind,
        path: lib.path,
        offset,
        fetch,
        role: probe.role ?? 'custom',
        symbol: probe.symbol,
        symbolSource: source,
      });
    });
  }
  return { specs, skipped };
}

/** Throws when a non-optional probe was skipped or nothing at all can be probed. */
export function assertPlanUsable(plan: ProbePlan): void {
  const fatal = plan.skipped.find((s) => !s.optional);
  if (fatal) {
    throw new SoloadError(fatal.code, `probe "${fatal.probe}" (${fatal.library}): ${fatal.reason}`, { ...fatal });
  }
  if (plan.specs.length === 0) {
    throw new SoloadError(
      ErrorCodes.NOTHING_TO_PROBE,
      `no probe could be planned: ${plan.skipped.map((s) => `${s.probe}@${s.library}: ${s.reason}`).join('; ') || 'the probe list is empty'}. Run \`soload check\`.`,
    );
  }
}
