/**
 * Self time per function and per file of a V8 .cpuprofile (`node --cpu-prof`): each sample is
 * charged to the node it landed in, weighted by its time delta, so the sums are CPU time rather than
 * sample counts (the sampling interval drifts under load).
 */
import fs from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  totalMs: number;
  functions: Array<{ name: string; ms: number }>;
  files: Array<{ name: string; ms: number }>;
}

const fileName = (url: string): string => {
  if (!url) return '(native)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length);
  const dist = u.lastIndexOf('/dist/');
  return dist >= 0 ? u.slice(dist + '/dist/'.length) : path.basename(u);
};

/** `window`: only samples taken in [fromUs, toUs] of the monotonic clock (V8 stamps samples with it). */
export function summarizeCpuProfile(p: CpuProfile, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  let total = 0;
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    // a sample's delta is the time since the previous one: charge it to this sample's node
    const us = p.timeDeltas[i] ?? 0;
    at += us;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    const n = byId.get(p.samples[i]!);
    if (!n) continue;
    const cf = n.callFrame;
    if (cf.functionName === '(idle)') continue;
    total += us;
    const f = fileName(cf.url);
    const key = `${cf.functionName || '(anonymous)'} ${f}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    file.set(f, (file.get(f) ?? 0) + us);
  }
  const sorted = (m: Map<string, number>) => [...m].map(([name, us]) => ({ name, ms: us / 1000 })).sort((a, b) => b.ms - a.ms);
  return { totalMs: total / 1000, functions: sorted(fn), files: sorted(file) };
}

export function formatProfileSummary(s: ProfileSummary, top = 25): string {
  const pct = (ms: number) => `${((100 * ms) / s.totalMs).toFixed(1).padStart(5)}%`;
  const out = [`busy ${s.totalMs.toFixed(0)} ms (idle excluded)`, 'top self time, functions:'];
  for (const f of s.functions.slice(0, top)) out.push(`  ${f.ms.toFixed(1).padStart(8)} ms ${pct(f.ms)}  ${f.name}`);
  out.push('top self time, files:');
  for (const f of s.files.slice(0, Math.min(top, 20))) out.push(`  ${f.ms.toFixed(1).padStart(8)} ms ${pct(f.ms)}  ${f.name}`);
  return out.join('\n');
}

if (require.main === module) {
  // node dist/bench/cpuprofile.js FILE.cpuprofile [top]
  const [file, top] = process.argv.slice(2);
  if (!file) throw new Error('usage: cpuprofile.js FILE.cpuprofile [top]');
  console.log(formatProfileSummary(summarizeCpuProfile(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile), Number(top ?? 40)));
}
