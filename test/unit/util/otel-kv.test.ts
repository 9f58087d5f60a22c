import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOtelKeyValueList } from '../../../src/util/otel-kv';

test('parseOtelKeyValueList skips malformed members and percent-decodes', () => {
  assert.deepEqual(parseOtelKeyValueList('a=1,=x,b,c=%ZZ,d=x%2Cy'), { a: '1', d: 'x,y' });
});

test('parseOtelKeyValueList trims keys and values, keeps "=" inside values, last member wins', () => {
  assert.deepEqual(parseOtelKeyValueList(' k = v ,x=a=b,k=w'), { k: 'w', x: 'a=b' });
  assert.deepEqual(parseOtelKeyValueList(''), {});
});
