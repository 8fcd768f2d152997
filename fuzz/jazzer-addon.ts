// Loads jazzer.js's prebuilt libFuzzer addon on this machine's older glibc, by a patched copy when the original cannot load.
//
// @jazzer.js/fuzzer 4 ships its native addon prebuilt inside the npm package, linked on a newer distribution: it asks
// for GLIBC_2.38 (only for the C23 aliases __isoc23_strtol/__isoc23_strtoul) and GLIBCXX_3.4.32 (only for
// std::ios_base_library_init, a symbol GCC 13 references so that its libstdc++ is required; nothing calls it). Debian 12
// has glibc 2.36 and GCC 12's libstdc++, so dlopen refuses the file. Building the addon from source would need
// jazzer's fork of LLVM's compiler-rt downloaded from outside the npm registry, which this machine cannot reach.
//
// The copy made here differs from the original in three ELF dynamic-section fields, nothing else:
//  - the two __isoc23_ symbols are bound to strtol/strtoul@GLIBC_2.2.5 (the same functions, minus the C23 "0b" prefix,
//    which libFuzzer's flag parsing never sees);
//  - the version requirements the system lacks are marked VER_FLG_WEAK, so the loader no longer insists on them.
// The copy is then loaded with RTLD_NOW, so any symbol still unresolved is an error here, not a crash later.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

const SHT_DYNSYM = 11;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const VER_FLG_WEAK = 0x2;
/** C23 aliases that glibc 2.38 added for functions every glibc has under their plain names. */
const C23_ALIASES: Record<string, string> = { __isoc23_strtol: 'strtol', __isoc23_strtoul: 'strtoul', __isoc23_strtoll: 'strtoll', __isoc23_strtoull: 'strtoull' };

interface Section {
  type: number;
  offset: number;
  size: number;
  link: number;
}

interface VersionNeed {
  name: string;
  file: string;
  /** The version index symbols refer to (vna_other). */
  index: number;
  /** File offset of the Vernaux entry. */
  aux: number;
}

/** The dynamic symbol and version tables of a little-endian ELF64 shared object. */
function readElf(buf: Buffer): { sections: Section[]; str: (off: number) => string; needs: VersionNeed[] } {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error('not a little-endian ELF64 file');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const sections: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push({ type: buf.readUInt32LE(o + 4), offset: Number(buf.readBigUInt64LE(o + 0x18)), size: Number(buf.readBigUInt64LE(o + 0x20)), link: buf.readUInt32LE(o + 0x28) });
  }
  const dynsym = sections.find((s) => s.type === SHT_DYNSYM);
  if (!dynsym) throw new Error('no dynamic symbol table');
  const dynstr = sections[dynsym.link];
  const str = (off: number) => {
    const at = dynstr.offset + off;
    return buf.toString('latin1', at, buf.indexOf(0, at));
  };
  const needs: VersionNeed[] = [];
  const verneed = sections.find((s) => s.type === SHT_GNU_VERNEED);
  for (let vn = verneed ? verneed.offset : -1; vn >= 0; ) {
    const count = buf.readUInt16LE(vn + 2);
    const file = str(buf.readUInt32LE(vn + 4));
    let aux = vn + buf.readUInt32LE(vn + 8);
    for (let j = 0; j < count; j++) {
      needs.push({ name: str(buf.readUInt32LE(aux + 8)), file, index: buf.readUInt16LE(aux + 6), aux });
      const next = buf.readUInt32LE(aux + 12);
      if (!next) break;
      aux += next;
    }
    const next = buf.readUInt32LE(vn + 12);
    vn = next ? vn + next : -1;
  }
  return { sections, str, needs };
}

/** Relaxes the requirement on `version` in place; returns the symbols that were rebound to their pre-C23 names. */
export function relaxVersion(buf: Buffer, version: string): string[] {
  const { sections, str, needs } = readElf(buf);
  const need = needs.find((n) => n.name === version);
  if (!need) throw new Error(`the addon does not require version ${version}`);
  const base = needs.find((n) => n.file === need.file && n.name === 'GLIBC_2.2.5');
  const dynsym = sections.find((s) => s.type === SHT_DYNSYM)!;
  const versym = sections.find((s) => s.type === SHT_GNU_VERSYM);
  const rebound: string[] = [];
  if (versym) {
    for (let i = 0; i < dynsym.size / 24; i++) {
      const o = dynsym.offset + i * 24;
      if ((buf.readUInt16LE(versym.offset + i * 2) & 0x7fff) !== need.index) continue;
      const name = str(buf.readUInt32LE(o));
      const plain = C23_ALIASES[name];
      if (!plain || !base) continue;
      // The plain name is the tail of the C23 one in the string table ("__isoc23_" + name): point at it.
      buf.writeUInt32LE(buf.readUInt32LE(o) + name.length - plain.length, o);
      buf.writeUInt16LE(base.index, versym.offset + i * 2);
      rebound.push(`${name} -> ${plain}@${base.name}`);
    }
  }
  buf.writeUInt16LE(buf.readUInt16LE(need.aux + 4) | VER_FLG_WEAK, need.aux + 4);
  return rebound;
}

type Exports = Record<string, unknown>;

function dlopenNow(path: string): Exports {
  const m = { exports: {} as Exports };
  process.dlopen(m, path, constants.dlopen.RTLD_NOW);
  return m.exports;
}

/** The version named in the loader's "version `GLIBC_2.38' not found" refusal, if that is what it was. */
function missingVersion(e: unknown): string | undefined {
  return /version `([^']+)' not found/.exec(String((e as Error)?.message ?? e))?.[1];
}

/** A copy of the addon that loads here, made once per original (cached by its hash) under node_modules/.cache. */
function compatibleCopy(original: string): { path: string; exports: Exports; notes: string[] } {
  const bytes = readFileSync(original);
  const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const cacheDir = join(dirname(require.resolve('@jazzer.js/fuzzer/package.json')), '..', '..', '.cache', 'trustplane-fuzz');
  const path = join(cacheDir, `fuzzer-${process.platform}-${process.arch}-${digest}.node`);
  const notes: string[] = [];
  if (existsSync(path)) return { path, exports: dlopenNow(path), notes };
  const patched = Buffer.from(bytes);
  mkdirSync(cacheDir, { recursive: true });
  for (let attempt = 0; attempt < 8; attempt++) {
    const candidate = `${path}.${process.pid}.tmp`;
    writeFileSync(candidate, patched);
    try {
      const exports = dlopenNow(candidate);
      renameSync(candidate, path);
      return { path, exports, notes };
    } catch (e) {
      const version = missingVersion(e);
      if (!version) throw new Error(`jazzer's addon does not load even after relaxing ${notes.length} version requirement(s): ${(e as Error).message}`);
      const rebound = relaxVersion(patched, version);
      notes.push(`${version} relaxed${rebound.length ? ` (${rebound.join(', ')})` : ''}`);
    }
  }
  throw new Error(`jazzer's addon still asks for missing versions after 8 relaxations: ${notes.join('; ')}`);
}

let installed = false;

/**
 * Makes `require('@jazzer.js/fuzzer')` work on this machine: a no-op when the prebuilt addon loads as shipped;
 * otherwise the glibc-compatible copy answers the addon's require. Call before loading @jazzer.js/core.
 */
export function installJazzerAddon(log: (line: string) => void = () => undefined): void {
  if (installed) return;
  installed = true;
  const original = join(dirname(require.resolve('@jazzer.js/fuzzer/package.json')), 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
  try {
    require(original);
    return;
  } catch (e) {
    if (!missingVersion(e)) throw e;
  }
  const copy = compatibleCopy(original);
  for (const n of copy.notes) log(`fuzz: jazzer addon: ${n}`);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const Module = require('node:module') as any;
  const load = Module._extensions['.node'];
  Module._extensions['.node'] = (m: { exports: Exports }, filename: string) => {
    if (filename === original) {
      m.exports = copy.exports;
      return;
    }
    return load(m, filename);
  };
}
