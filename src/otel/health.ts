import fs from 'node:fs';
import path from 'node:path';

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

/** Ring-buffer counters of a tracefs instance, summed over its CPUs. */
export interface RingBufferStats {
  /** Events overwritten before soload read them (overwrite mode). */
  overrun: number;
  /** Events lost because a nested write overran a commit ("commit overrun"). */
  commitOverrun: number;
  /** Events discarded because the buffer was full (non-overwrite mode). */
  droppedEvents: number;
}

const ZERO_RING: RingBufferStats = { overrun: 0, commitOverrun: 0, droppedEvents: 0 };

/** Parses one per_cpu/cpuN/stats file ("overrun: 3", "dropped events: 0", …). */
export function parseCpuStats(text: string): RingBufferStats {
  const num = (label: string) => {
    const m = new RegExp(`^${label}:\\s*(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  return { overrun: num('overrun'), commitOverrun: num('commit overrun'), droppedEvents: num('dropped events') };
}

/** Sums per_cpu/cpuN/stats of a tracefs instance; undefined when the directory cannot be read. */
export function readRingBufferStats(instanceDir: string): RingBufferStats | undefined {
  const perCpu = path.join(instanceDir, 'per_cpu');
  let cpus: string[];
  try {
    cpus = fs.readdirSync(perCpu).filter((d) => /^cpu\d+$/.test(d));
  } catch {
    return undefined;
  }
  const sum: RingBufferStats = { ...ZERO_RING };
  for (const cpu of cpus) {
    let text: string;
    try {
      text = fs.readFileSync(path.join(perCpu, cpu, 'stats'), 'utf8');
    } catch {
      continue;
    }
    const s = parseCpuStats(text);
    sum.overrun += s.overrun;
    sum.commitOverrun += s.commitOverrun;
    sum.droppedEvents += s.droppedEvents;
  }
  return sum;
}

/** The counters the agent already keeps, as plain read-only views. */
export interface HealthInputs {
  agent: { loadsEmitted: number; loadsFiltered: number; customEmitted: number };
  dlopen: { nameRecovered: number; nameUnresolved: number; pathUnresolved: number };
  /** trace_pipe reader stats (undefined before the reader exists). */
  pipe: () => { records: number; lostEvents: number; malformed: number } | undefined;
  /** The tracefs instance directory (its per_cpu stats are read on every snapshot). */
  instanceDir: string;
}

/**
 * A HealthSource over the agent's counters. The ring-buffer stats keep their last readable value once
 * the instance is removed at shutdown, so the final report still carries them.
 */
export function healthSource(inputs: HealthInputs): HealthSource {
  let ring: RingBufferStats = { ...ZERO_RING };
  let pipeLast = { records: 0, lostEvents: 0, malformed: 0 };
  return () => {
    ring = readRingBufferStats(inputs.instanceDir) ?? ring;
    const p = inputs.pipe();
    if (p) pipeLast = { records: p.records, lostEvents: p.lostEvents, malformed: p.malformed };
    return {
      loads: { emitted: inputs.agent.loadsEmitted, filtered: inputs.agent.loadsFiltered, custom: inputs.agent.customEmitted },
      trace: { ...pipeLast, ring: { ...ring } },
      faults: { avoided: inputs.dlopen.nameRecovered, nameUnresolved: inputs.dlopen.nameUnresolved, pathUnresolved: inputs.dlopen.pathUnresolved },
    };
  };
}
