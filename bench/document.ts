// docs/BENCHMARKS.md as the benches see it: a hand-written document in which each bench owns the
// sections between its marker comments (`<!-- bench:NAME -->` … `<!-- /bench:NAME -->`). A run
// replaces only the sections it measured; every other byte (notes, extra runs, analyses written
// by hand) stays as it was.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** The document a first run starts from. */
export const BENCHMARKS_HEADER = [
  '# Benchmarks',
  '',
  'The sections between `<!-- bench:NAME -->` markers are written by `npm run bench` (bench/run.ts; `--sections NAME,...` reruns some) from one run on the machine described; everything outside them is written by hand and kept by every run.',
  '',
].join('\n');

// A marker is a line of its own: one quoted in prose (as the page's introduction does) is text.
const MARKER = /^<!-- (\/?)bench:([A-Za-z0-9_-]+) -->$/gm;

const startMarker = (name: string): string => `<!-- bench:${name} -->`;
const endMarker = (name: string): string => `<!-- /bench:${name} -->`;

/** Where each owned section's body lies (between the end of its start marker and its end marker); throws on malformed markers. */
function ownedSections(document: string): Map<string, { from: number; to: number }> {
  const found = new Map<string, { from: number; to: number }>();
  let open: { name: string; from: number } | undefined;
  for (const m of document.matchAll(MARKER)) {
    const [text, slash, name] = [m[0], m[1]!, m[2]!];
    if (slash === '') {
      if (open !== undefined) throw new Error(`bench section "${name}" starts inside section "${open.name}" (a missing ${endMarker(open.name)})`);
      if (found.has(name)) throw new Error(`bench section "${name}" appears twice in the document`);
      open = { name, from: m.index + text.length };
    } else {
      if (open === undefined || open.name !== name) throw new Error(`${text} closes a bench section that is not open`);
      found.set(name, { from: open.from, to: m.index });
      open = undefined;
    }
  }
  if (open !== undefined) throw new Error(`bench section "${open.name}" is never closed (no ${endMarker(open.name)})`);
  return found;
}

/**
 * `document` with each section of `sections` (name → markdown) put between its markers: an
 * existing section's body is replaced, a new one is appended at the end. Text outside the named
 * sections is returned unchanged.
 */
export function replaceSections(document: string, sections: ReadonlyMap<string, string>): string {
  for (const name of sections.keys()) {
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`bench section name "${name}": letters, digits, _ and - only`);
  }
  const owned = ownedSections(document);
  // Replace from the end backwards so earlier offsets stay valid.
  const present = [...sections].filter(([name]) => owned.has(name)).sort(([a], [b]) => owned.get(b)!.from - owned.get(a)!.from);
  let out = document;
  for (const [name, body] of present) {
    const { from, to } = owned.get(name)!;
    out = `${out.slice(0, from)}\n${body.trim()}\n${out.slice(to)}`;
  }
  for (const [name, body] of sections) {
    if (owned.has(name)) continue;
    out = `${out.trimEnd()}\n\n${startMarker(name)}\n${body.trim()}\n${endMarker(name)}\n`;
  }
  return out;
}

/** Writes `sections` into the document at `path` (made from BENCHMARKS_HEADER when absent). */
export function writeSections(path: string, sections: ReadonlyMap<string, string>): void {
  const document = existsSync(path) ? readFileSync(path, 'utf8') : BENCHMARKS_HEADER;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, replaceSections(document, sections));
}
