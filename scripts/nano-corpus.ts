// `npm run nano:corpus -- --out DIR [--seed S] [--train N] [--heldout N]`: writes the gpt-oss-nano
// corpus (src/train/nano/corpus.ts) with the real tools' namespaces and a real browser session
// over examples/nano-docs.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scriptFlags } from './flags.ts';
import { BrowserSession, LocalDocsBackend, PythonTool } from '../src/tools/index.ts';
import { coverage, generateCorpus, writeCorpus } from '../src/train/nano/corpus.ts';

const NANO_DOCS = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'nano-docs');

function count(v: string | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`nano:corpus: --${name} must be a whole number >= 0, got "${v}"\n`);
    process.exit(2);
  }
  return n;
}

const { values } = scriptFlags('nano:corpus', { out: { type: 'string' }, seed: { type: 'string' }, train: { type: 'string' }, heldout: { type: 'string' } });
if (values.out === undefined) {
  process.stderr.write('nano:corpus: --out DIR is required\n');
  process.exit(2);
}
if (existsSync(values.out)) {
  process.stderr.write(`nano:corpus: ${values.out} already exists\n`);
  process.exit(2);
}
const seed = count(values.seed, 0, 'seed');
const backend = await LocalDocsBackend.open(NANO_DOCS);
await backend.indexed;
const started = performance.now();
const corpus = await generateCorpus({
  seed,
  train: count(values.train, 8000, 'train'),
  heldout: count(values.heldout, 400, 'heldout'),
  tools: { browser: new BrowserSession(backend).namespace(), python: new PythonTool().namespace() },
  browser: () => new BrowserSession(backend),
});
writeCorpus(values.out, corpus, seed);
process.stderr.write(`wrote ${corpus.train.length} + ${corpus.heldout.length} conversations to ${values.out} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
process.stdout.write(JSON.stringify(coverage(corpus)) + '\n');
