import assert from 'node:assert/strict';
import { test } from 'node:test';
import { traceFields, FEATURE_PROBES } from '../../kernels/features';
import { parseResultLines, RESULT_PREFIX } from '../../kernels/guest';

test('traceFields: values of a uprobe trace line, quoted strings and (fault)', () => {
  const line = '           fault-142     [001] d....    61.1: fault_take: (0x55d1be0a8179) s="string-in-an-untouched-page" step=1';
  assert.deepEqual(traceFields(line), { s: 'string-in-an-untouched-page', step: '1' });
  assert.deepEqual(traceFields('fault-1 [000] .... 1.0: fault_take: (0x1) s=(fault) step=1'), { s: '(fault)', step: '1' });
});

test('FEATURE_PROBES: unique ids, each line names its event and probe point', () => {
  const ids = FEATURE_PROBES.map((f) => f.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const f of FEATURE_PROBES) assert.match(f.line, /^[pr]:\{E\} \{P\}/);
});

test('parseResultLines: base64 JSON lines among console noise, CR line ends, a cut last line', () => {
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64');
  const text = `[ 1.0] boot noise\r\n${RESULT_PREFIX} kernel ${enc({ release: '6.1.0' })}\r\n${RESULT_PREFIX} check ${enc({ exitCode: 0 })}\n${RESULT_PREFIX} recall ${enc({ x: 1 }).slice(0, 5)}`;
  const m = parseResultLines(text);
  assert.deepEqual(m.get('kernel'), { release: '6.1.0' });
  assert.deepEqual(m.get('check'), { exitCode: 0 });
  assert.equal(m.has('recall'), false);
});
