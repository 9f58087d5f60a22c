import fs from 'node:fs';
import path from 'node:path';

/** Ring-buffer counters of a tracefs instance, summed over its CPUs. */
export interface RingBufferStats {
  /** Events overwritten before soload read them (overwrite mode). */
  overrun: number;
  /** Events lost because a nested write overran a commit ("commit overrun"). */
  commitOverrun: number;
  /** Events discarded because the buffer was full (non-overwrite mode). */
  droppedEvents: number;
}

export const ZERO_RING: RingBufferStats = { overrun: 0, commitOverrun: 0, droppedEvents: 0 };

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

