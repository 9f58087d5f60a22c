/**
 * Byte → string decoding for trace_pipe lines.
 *
 * Linux file names (and comms, which any process can set with prctl) are arbitrary bytes, and the
 * kernel prints `ustring` fetch args and comms raw, unescaped. A line is decoded with soload's path
 * escaping (src/util/path-bytes.ts): valid UTF-8 verbatim, each byte outside a well-formed UTF-8
 * sequence as `\xhh`, and a backslash as `\x5c` only where it precedes `x` and two hex digits — so
 * {@link toRawBytes} turns any value cut from the line back into its exact bytes, unambiguously.
 * A `\n` byte is never inside a multi-byte sequence or an escape, so decoding a line and decoding
 * the record it joins into give the same text.
 */
import { escapePathBytes, unescapePathBytes } from '../util/path-bytes';

/** Decodes `buf[start, end)` with soload's path escaping. */
export function decodeLineBytes(buf: Buffer, start: number, end: number): string {
  return escapePathBytes(buf, start, end);
}

/** Inverse of {@link decodeLineBytes}: the bytes a decoded value stands for. */
export function toRawBytes(value: string): Buffer {
  return unescapePathBytes(value);
}
