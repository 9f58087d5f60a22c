import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mappedOf } from '../../../src/capture/file-id';
import { fileIdFetch } from '../../../src/plan/list-probes';

test('l_file_id fetch arguments and their parsing', () => {
  assert.deepEqual(fileIdFetch('%di', { searchlist: 0x2d8, fileId: 968, source: 't' }), [
    { name: 'dev', arg: '+968(%di):u64' },
    { name: 'ino', arg: '+976(%di):u64' },
  ]);
  assert.deepEqual(fileIdFetch('$retval', { searchlist: 0x2d8, source: 't' }), [], 'not calibrated: nothing fetched');
  assert.deepEqual(mappedOf('65024', '9978935'), { mapped: { dev: 65024, ino: 9978935 } });
  assert.deepEqual(mappedOf(undefined, '12'), { mapped: { ino: 12 } });
  assert.deepEqual(mappedOf('1', '0'), {}, 'a zero inode (not set) is no identity');
  assert.deepEqual(mappedOf('1', null), {}, 'a faulted read is no identity');
});
