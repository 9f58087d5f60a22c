/**
 * trace_pipe text stream → TraceRecords: byte splitting/decoding ({@link LineSplitter}), the pure line
 * parser ({@link parseTraceLine}), bytes → records without I/O ({@link TraceStreamParser}) and the
 * non-blocking reader ({@link TracePipeReader}).
 */
export { LineSplitter, LineSplitterStream, DEFAULT_MAX_LINE_LENGTH } from './line-splitter';
export type { LineSplitterOptions, LineHandler } from './line-splitter';
export { parseTraceLine } from './parse';
export type { ParseResult, ProbeSchema, ProbeSchemaField, ProbeSchemaMap } from './parse';
export { TracePipeReader, TraceStreamParser } from './reader';
export type { PipeStats, TracePipeReaderOptions, TraceStreamParserOptions } from './reader';
export { decodeLineBytes, toRawBytes } from './decode';
