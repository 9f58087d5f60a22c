import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTracepointFormat } from '../../../src/tracefs/format';
import { schemasFor } from '../../../src/agent';
import { parseTraceLine } from '../../../src/pipe';

const HEADER = `	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;
`;
/** sched_process_exit as 6.18 describes it, and as 6.1 does (no group_dead). */
const EXIT_618 = `name: sched_process_exit\nID: 369\nformat:\n${HEADER}\n	field:char comm[16];	offset:8;	size:16;	signed:0;\n	field:pid_t pid;	offset:24;	size:4;	signed:1;\n	field:int prio;	offset:28;	size:4;	signed:1;\n	field:bool group_dead;	offset:32;	size:1;	signed:0;\n\nprint fmt: "comm=%s pid=%d prio=%d group_dead=%s", REC->comm, REC->pid, REC->prio, REC->group_dead ? "true" : "false"\n`;
const EXIT_61 = `name: sched_process_exit\nID: 310\nformat:\n${HEADER}\n	field:char comm[16];	offset:8;	size:16;	signed:0;\n	field:pid_t pid;	offset:24;	size:4;	signed:1;\n	field:int prio;	offset:28;	size:4;	signed:1;\n\nprint fmt: "comm=%s pid=%d prio=%d", REC->comm, REC->pid, REC->prio\n`;
const EXEC = `name: sched_process_exec\nID: 370\nformat:\n${HEADER}\n	field:__data_loc char[] filename;	offset:8;	size:4;	signed:0;\n	field:pid_t pid;	offset:12;	size:4;	signed:1;\n	field:pid_t old_pid;	offset:16;	size:4;	signed:1;\n\nprint fmt: "filename=%s pid=%d old_pid=%d", __get_str(filename), REC->pid, REC->old_pid\n`;

test('format files: fields without common_*, printed keys in print order', () => {
  assert.deepEqual(parseTracepointFormat(EXIT_618), { name: 'sched_process_exit', fields: ['comm', 'pid', 'prio', 'group_dead'], printed: ['comm', 'pid', 'prio', 'group_dead'] });
  assert.deepEqual(parseTracepointFormat(EXIT_61)?.fields, ['comm', 'pid', 'prio']);
  assert.deepEqual(parseTracepointFormat(EXEC)?.printed, ['filename', 'pid', 'old_pid']);
  assert.equal(parseTracepointFormat('not a format'), undefined);
});

test('defect 1: a kernel without group_dead parses exit lines with the schema its format declares', () => {
  const line = '           <...>-4242    [001] ..... 12345.678901: sched_process_exit: comm=worker pid=4243 prio=120';
  const spec = { system: 'sched', event: 'sched_process_exit', filter: 'group_dead == 1', filterNeeds: ['group_dead'] };
  const fromFormat = schemasFor([], [{ spec, format: parseTracepointFormat(EXIT_61)!, filtered: false }]);
  const r = parseTraceLine(line, fromFormat);
  assert.equal(r.ok, true);
  assert.deepEqual(r.ok && r.record.fields, { comm: 'worker', pid: '4243', prio: '120' });
  // The hard-coded 6.16+ field list (what soload used before) does not match these lines.
  const hardCoded = schemasFor([], [{ spec, format: parseTracepointFormat(EXIT_618)!, filtered: true }]);
  assert.equal(parseTraceLine(line, hardCoded).ok, false);
});
