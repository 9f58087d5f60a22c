import { ErrorCodes, SoloadError } from '../errors';
import { PT_LOAD, ProgramHeader } from './image';

/** What address→offset translation needs: the file's name and program headers. ElfImage and ElfInfo both fit. */
export interface SegmentLayout {
  readonly file: string;
  readonly segments: readonly ProgramHeader[];
}

/**
 * The PT_LOAD segment whose memory image contains `vaddr`. With `fileBacked` (default) only the
 * first p_filesz bytes count: the rest of p_memsz (.bss) is zero-fill with no bytes in the file.
 */
export function loadSegmentFor(layout: SegmentLayout, vaddr: number, fileBacked = true): ProgramHeader | undefined {
  return layout.segments.find(
    (s) => s.type === PT_LOAD && vaddr >= s.vaddr && vaddr < s.vaddr + (fileBacked ? s.filesz : s.memsz),
  );
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * File offset of the byte the loader maps at `vaddr`: vaddr − p_vaddr + p_offset of the PT_LOAD
 * segment containing it. This is what uprobe_events wants as `PATH:OFFSET` (the kernel keys uprobes
 * by inode and offset, not by address).
 *
 * @throws SoloadError SYMBOL_NOT_MAPPED when no PT_LOAD segment has file bytes at `vaddr`
 *   (e.g. a .bss variable, or a TLS symbol whose value is an offset into the TLS block)
 */
export function vaddrToFileOffset(layout: SegmentLayout, vaddr: number): number {
  const seg = loadSegmentFor(layout, vaddr);
  if (seg) return vaddr - seg.vaddr + seg.offset;
  const zeroFill = loadSegmentFor(layout, vaddr, false);
  const why = zeroFill
    ? `it lies in the zero-filled tail (.bss) of the PT_LOAD segment at ${hex(zeroFill.vaddr)}, which has no bytes in the file; ` +
      'to read it from a probe use a `@+OFFSET` fetch argument computed with fetchOffsetFor()'
    : 'it is not inside any PT_LOAD segment';
  throw new SoloadError(ErrorCodes.SYMBOL_NOT_MAPPED, `Address ${hex(vaddr)} in ${layout.file} has no file offset: ${why}.`, {
    file: layout.file,
    vaddr,
  });
}

/**
 * The OFFSET to write in a uprobe `@+OFFSET` fetch argument so that, for a probe placed at
 * `probeVaddr`, the kernel reads the memory at `targetVaddr` of the same object.
 *
 * Why not simply vaddrToFileOffset(target): the kernel (trace_uprobe.c, translate_user_vaddr) computes
 * the fetch address as `(probe's runtime address − probe's file offset) + OFFSET`, i.e. it assumes the
 * target has the same vaddr−offset delta as the segment holding the probe. Segments usually have
 * different deltas (the RW data segment is commonly shifted by a page relative to its file offset),
 * and a .bss target (ld.so's `_r_debug`) has no file offset at all. Solving
 * `load_bias + targetVaddr = load_bias + probeVaddr − probeFileOffset + OFFSET` gives
 * `OFFSET = targetVaddr − (p_vaddr − p_offset)` of the probe's segment.
 *
 * @throws SoloadError SYMBOL_NOT_MAPPED when `probeVaddr` is not file-backed (a uprobe needs file bytes)
 *   or the result would be negative (the `@+` syntax cannot express it)
 */
export function fetchOffsetFor(layout: SegmentLayout, probeVaddr: number, targetVaddr: number): number {
  const seg = loadSegmentFor(layout, probeVaddr);
  if (!seg) {
    // Re-raise with the standard message for the probe address.
    vaddrToFileOffset(layout, probeVaddr);
  }
  const probeSeg = seg as ProgramHeader;
  const offset = targetVaddr - (probeSeg.vaddr - probeSeg.offset);
  if (offset < 0) {
    throw new SoloadError(
      ErrorCodes.SYMBOL_NOT_MAPPED,
      `Address ${hex(targetVaddr)} in ${layout.file} cannot be expressed as a @+OFFSET fetch argument for a probe at ${hex(probeVaddr)} (offset would be ${offset}).`,
      { file: layout.file, probeVaddr, targetVaddr },
    );
  }
  return offset;
}
