/**
 * The kernel matrix's cost step: what a traced process pays under soload on this kernel, as the
 * ratio of the workload's wall time with soload running to the same workload with nothing
 * installed, measured in the same guest and interleaved (bench/workloads.ts `measure`). The
 * workloads are `npm run bench -- --quick`'s C drivers (spawn, dlopen, needed40; python is left
 * out for time under emulation), compiled on the host (guests have no gcc) and run here from the
 * same absolute path. soload runs with the mechanism it picks on this kernel, export off, as in the
 * bench's cost section.
 *
 * Under TCG every instruction is emulated, the breakpoint trap included, so a ratio says how much
 * of the emulated work the probes add, not what the same CPU would pay natively; the host row runs
 * the same step natively, which is the comparable number for real hardware.
 */
import { BASELINE, measure, prepareWorkloads, type Measurement } from '../../bench/workloads';
import { startSoload, type SoloadProcess } from '../helpers/soload';

/** What the runner asks for. */
export interface CostPlan {
  /** Built by prepareWorkloads(dir, { quick: true, only: COST_WORKLOADS }) on the host. */
  dir: string;
  rounds: number;
}

/** The bench's quick workloads the matrix measures. */
export const COST_WORKLOADS = ['spawn', 'dlopen', 'needed40'] as const;

export const SOLOAD_CONDITION = 'soload (its mechanism on this kernel)';

/** The cost result of one kernel. */
export interface CostResult {
  rounds: number;
  workloads: Array<{ name: string; iterations: number; description: string }>;
  measurements: Measurement[];
  /** soload's start-up line: the mechanism per loader set. */
  mechanisms: string;
  /** Start to ready of each soload round (ms). */
  startMs: number[];
}

export async function measureCost(plan: CostPlan): Promise<CostResult> {
  const workloads = await prepareWorkloads(plan.dir, { quick: true, only: COST_WORKLOADS, prebuilt: true });
  let running: SoloadProcess | undefined;
  let mechanisms = '';
  const startMs: number[] = [];
  const config = { otel: { exporters: ['none'] }, capture: { snapshot: false }, debuginfod: { enabled: false } };
  const measurements = await measure(
    workloads,
    [BASELINE, SOLOAD_CONDITION],
    async (c) => {
      if (c === BASELINE) return;
      const t = Date.now();
      running = await startSoload(config, { readyTimeoutMs: 300_000 });
      startMs.push(Date.now() - t);
      mechanisms = /tracing \d+ probes in group \S+ \(instance \S+\); (.*)/.exec(running.stderr())?.[1] ?? '';
    },
    async (c) => {
      if (c === BASELINE || !running) return;
      const s = running;
      running = undefined;
      const code = await s.stop('SIGINT', 120_000);
      if (code !== 130) throw new Error(`soload exited ${code}:\n${s.stderr().slice(-2000)}`);
    },
    plan.rounds,
  );
  return { rounds: plan.rounds, workloads: workloads.map((w) => ({ name: w.name, iterations: w.iterations, description: w.description })), measurements, mechanisms, startMs };
}
