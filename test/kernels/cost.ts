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
import { baselineCondition, measureConditions, type Condition } from '../../bench/baselines';
import { soloadCondition, type SoloadUsage } from '../../bench/soload-conditions';
import { prepareWorkloads, type Measurement } from '../../bench/workloads';

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
  const usage: SoloadUsage = { cpuMs: 0, loads: 0, mechanisms: '' };
  // The bench's cost-section soload condition without a forced mechanism: soload picks, as on a user's host.
  const soload = soloadCondition({ name: SOLOAD_CONDITION, config: { otel: { exporters: ['none'] }, capture: { snapshot: false }, debuginfod: { enabled: false } } }, usage);
  const startMs: number[] = [];
  const timed: Condition = {
    name: soload.name,
    async start() {
      const t = Date.now();
      await soload.start();
      startMs.push(Date.now() - t);
    },
    stop: () => soload.stop(),
  };
  const measurements = await measureConditions(workloads, [baselineCondition(), timed], plan.rounds);
  return { rounds: plan.rounds, workloads: workloads.map((w) => ({ name: w.name, iterations: w.iterations, description: w.description })), measurements, mechanisms: usage.mechanisms, startMs };
}
