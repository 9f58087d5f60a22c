/**
 * Minimal typing for elfy@1.0.0 (it ships none). Only the fields soload reads are declared.
 * elfy maps numeric type/flag fields to names through tables that are incomplete and collide
 * (e.g. SHT_GNU_versym decodes as 'hios'), so soload re-reads those raw from the header bytes.
 */
declare module 'elfy' {
  export interface ElfyProgram {
    type: string | undefined;
    offset: number;
    vaddr: number;
    paddr: number;
    filesz: number;
    memsz: number;
    align: number;
  }

  export interface ElfySection {
    name: string;
    type: string | number;
    addr: number;
    off: number;
    size: number;
    link: number;
    info: number;
  }

  export interface ElfyFile {
    class: '32' | '64';
    endian: 'lsb' | 'msb';
    type: string | undefined;
    machine: string | undefined;
    entry: number;
    phoff: number;
    shoff: number;
    phentsize: number;
    phnum: number;
    shentsize: number;
    shnum: number;
    shstrndx: number;
    body: { programs: ElfyProgram[]; sections: ElfySection[] };
  }

  export type ElfyHeader = Omit<ElfyFile, 'body'>;
  export type ElfyBody = ElfyFile['body'];

  /** `parse` is `new Parser().execute(buf)`; the steps are exposed so callers can skip one. */
  export class Parser {
    parseHeader(buf: Buffer): ElfyHeader;
    parseBody(buf: Buffer, header: ElfyHeader): ElfyBody;
    /** Resolves section names through e_shstrndx; throws when there are no sections. */
    resolveBody(body: ElfyBody, header: ElfyHeader): ElfyBody;
  }

  export function parse(buf: Buffer): ElfyFile;
}
