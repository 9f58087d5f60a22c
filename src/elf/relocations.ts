import { type ElfImage, StringTable, invalid, readerFor, sectionData } from './image';

const SHT_RELA = 4;
const SHT_REL = 9;

/**
 * The relocation types that fill a GOT slot with the address of an imported data symbol
 * (`R_<ARCH>_GLOB_DAT`), by e_machine. A probe in one object reads another object's variable through
 * that slot: `+0(@+SLOT)` is the variable's address in the probed process, whatever the load bias.
 */
const GLOB_DAT: Readonly<Record<number, number>> = {
  62: 6, // EM_X86_64: R_X86_64_GLOB_DAT
  3: 6, // EM_386: R_386_GLOB_DAT
  183: 1025, // EM_AARCH64: R_AARCH64_GLOB_DAT
  21: 20, // EM_PPC64: R_PPC64_GLOB_DAT
  22: 10, // EM_S390: R_390_GLOB_DAT
};

/**
 * Virtual addresses of the GOT slots holding the addresses of imported symbols (e.g. libc.so.6's
 * `_rtld_global@GLIBC_PRIVATE`), by symbol name, from the dynamic relocations. Pure over the image.
 */
export function globDatSlots(image: ElfImage): Map<string, number> {
  const out = new Map<string, number>();
  const want = GLOB_DAT[image.machineId];
  if (want === undefined) return out;
  const r = readerFor(image);
  const is64 = image.class === 64;
  // Relocation sections are disjoint in a real file: their entries together fit in it. Headers that
  // name the same bytes again and again would cost headers × section size.
  let budget = image.buf.length;
  for (const sec of image.sections) {
    if (sec.type !== SHT_RELA && sec.type !== SHT_REL) continue;
    const symtab = image.sections[sec.link];
    if (!symtab || symtab.entsize === 0) continue;
    const strtab = image.sections[symtab.link];
    if (!strtab) continue;
    const strings = new StringTable(sectionData(image, strtab), image.file);
    const entsize = sec.entsize || (is64 ? (sec.type === SHT_RELA ? 24 : 16) : sec.type === SHT_RELA ? 12 : 8);
    const count = Math.floor(sec.size / entsize);
    budget -= Math.min(sec.size, image.buf.length);
    if (budget < 0) throw invalid(image.file, 'its relocation sections together are larger than the file (section headers naming the same bytes)');
    for (let i = 0; i < count; i++) {
      const at = sec.offset + i * entsize;
      const offset = is64 ? r.u64(at) : r.u32(at);
      const info = is64 ? r.u64(at + 8) : r.u32(at + 4);
      // r_info: symbol index in the high 32 (64-bit) or 24 (32-bit) bits, type in the rest.
      const type = is64 ? info % 2 ** 32 : info & 0xff;
      const index = is64 ? Math.floor(info / 2 ** 32) : info >>> 8;
      if (type !== want || index === 0) continue;
      const nameOff = r.u32(symtab.offset + index * symtab.entsize);
      const name = strings.at(nameOff);
      if (!out.has(name)) out.set(name, offset);
    }
  }
  return out;
}
