import type { RingBufferStats } from '../tracefs/ring-stats';

/**
 * soload's health at one instant: what the capture side knows about itself. Counters are monotonic
 * since start. Built by the agent (which owns the reader, correlator and tracefs session) and read by
 * the self-telemetry code, which never reaches into the agent.
 */
export interface HealthSnapshot {
  loads: {
    /** so.load records handed to the exporters. */
    emitted: number;
    /** Loads dropped by the configured filters (by design, not a loss). */
    filtered: number;
    /** soload.probe records (custom probes). */
    custom: number;
  };
  trace: {
    /** Records parsed from trace_pipe. */
    records: number;
    /** Sum of the `LOST n EVENTS` markers trace_pipe printed. */
    lostEvents: number;
    /** Lines that did not parse. */
    malformed: number;
    /** Kernel ring buffer of soload's instance, summed over CPUs (per_cpu/cpuN/stats). */
    ring: RingBufferStats;
  };
  /** How file names were made the kernel's (see enrich/paths.ts), counted per record. */
  paths: {
    /** The loader's string differed from the kernel's name (symlink, `..`, merged /usr, memfd). */
    renamed: number;
    /** The mapped file no longer existed under its name. */
    deleted: number;
    memfd: number;
    /** Another file had taken the name since the load. */
    replaced: number;
    /** The process had moved to a namespace soload could not pin in time: the name is a guess. */
    namespaceGuessed: number;
    /** `/proc/self/fd/N` that could not be named (file.path left out). */
    fdUnresolved: number;
  };
  /** Files soload tried to read as ELF objects at run time and could not, by reason (see ElfInvalidReason). */
  elf?: { invalid: Readonly<Record<string, number>> };
  faults: {
    /** Requested name unreadable at dlopen entry ("(fault)"), recovered at return. */
    avoided: number;
    /** Requested name unreadable and not recoverable. */
    nameUnresolved: number;
    /** Loaded path unreadable. */
    pathUnresolved: number;
  };
}

/** A function returning the current snapshot; cheap enough to call every few seconds. */
export type HealthSource = () => HealthSnapshot;

/** The counters the agent already keeps, as plain read-only views. */
export interface HealthInputs {
  agent: { loadsEmitted: number; loadsFiltered: number; customEmitted: number };
  dlopen: { nameRecovered: number; nameUnresolved: number; pathUnresolved: number };
  /** trace_pipe reader stats (undefined before the reader exists). */
  pipe: () => { records: number; lostEvents: number; malformed: number } | undefined;
  /** Ring-buffer counters of soload's tracefs instance (undefined once it is gone). */
  ring: () => RingBufferStats | undefined;
  /** Failed ELF reads of the agent's resolver, by reason (absent: none counted). */
  elfInvalid?: () => Readonly<Record<string, number>>;
  /** Path-resolution counters (absent: all zero). */
  paths?: { changed: number; deleted: number; memfd: number; replaced: number; viewLost: number; fdUnresolved: number };
}

/**
 * A HealthSource over the agent's counters. The ring-buffer stats keep their last readable value once
 * the instance is removed at shutdown, so the final report still carries them.
 */
export function healthSource(inputs: HealthInputs): HealthSource {
  let ring: RingBufferStats = { overrun: 0, commitOverrun: 0, droppedEvents: 0 };
  let pipeLast = { records: 0, lostEvents: 0, malformed: 0 };
  return () => {
    ring = inputs.ring() ?? ring;
    const p = inputs.pipe();
    if (p) pipeLast = { records: p.records, lostEvents: p.lostEvents, malformed: p.malformed };
    return {
      loads: { emitted: inputs.agent.loadsEmitted, filtered: inputs.agent.loadsFiltered, custom: inputs.agent.customEmitted },
      trace: { ...pipeLast, ring: { ...ring } },
      paths: {
        renamed: inputs.paths?.changed ?? 0,
        deleted: inputs.paths?.deleted ?? 0,
        memfd: inputs.paths?.memfd ?? 0,
        replaced: inputs.paths?.replaced ?? 0,
        namespaceGuessed: inputs.paths?.viewLost ?? 0,
        fdUnresolved: inputs.paths?.fdUnresolved ?? 0,
      },
      elf: { invalid: inputs.elfInvalid?.() ?? {} },
      faults: { avoided: inputs.dlopen.nameRecovered, nameUnresolved: inputs.dlopen.nameUnresolved, pathUnresolved: inputs.dlopen.pathUnresolved },
    };
  };
}
