/**
 * The crash soak's short form (`npm run test:soak` runs 100 cycles in .ci/run): SIGKILL at random
 * moments of start-up, steady state and shutdown; every next start removes and names what the
 * killed one left, the final clean stop leaves nothing, the foreign tracing state is unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireLiveKernel } from '../helpers/soload';
import { runCrashSoak, soakSummary } from '../soak/crash-soak';

test('SIGKILL at random moments, 6 cycles (seed 3): nothing of soload left, foreign state byte-for-byte unchanged', async (t) => {
  requireLiveKernel();
  const r = await runCrashSoak({ cycles: 6, seed: 3 });
  t.diagnostic(soakSummary(r));
  assert.deepEqual(r.failures, []);
  assert.equal(r.cycles.length, 6);
  // The seed is chosen so that kills leave state: otherwise the cleanup is not exercised.
  assert.ok(r.leftBehind >= 2, `only ${r.leftBehind} cycles left state to clean:\n${soakSummary(r)}`);
});
