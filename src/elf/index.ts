/**
 * ELF reading for soload: symbol → file offset for uprobes, plus the metadata (DT_SONAME, DT_NEEDED,
 * PT_INTERP, build ID) later stages need. Headers are parsed with elfy; everything elfy does not
 * decode (symbols, versions, notes, dynamic entries) is decoded here by pure functions over a Buffer.
 */
export {
  type ElfClass,
  type ElfImage,
  type Endian,
  type ProgramHeader,
  type SectionHeader,
  parseElf,
  sectionData,
  segmentData,
  findSection,
  PT_LOAD,
  PT_DYNAMIC,
  PT_INTERP,
  PT_NOTE,
  ELF_INVALID_REASONS,
  type ElfInvalidReason,
} from './image';
export {
  type ElfSymbol,
  type SymbolBind,
  type SymbolIndex,
  type SymbolMatch,
  type SymbolQuery,
  type SymbolType,
  type SymbolVersions,
  decodeSymbolVersions,
  decodeSymbols,
  findSymbol,
  formatSymbol,
  indexSymbols,
  parseSymbolQuery,
} from './symbols';
export {
  type DebugLink,
  type DynamicInfo,
  type ElfNote,
  crc32,
  decodeBuildId,
  decodeDebugLink,
  decodeDynamic,
  decodeInterpreter,
  decodeNotes,
} from './metadata';
export { type SegmentLayout, fetchOffsetFor, loadSegmentFor, vaddrToFileOffset } from './offsets';
export {
  type ElfInfo,
  ElfSymbolResolver,
  type ElfSymbolResolverOptions,
  type LocatedSymbol,
  type ResolvedSymbol,
  type ResolverStats,
  type SymbolSource,
} from './resolver';
