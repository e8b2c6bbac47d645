// `npm run nano:standin -- --out DIR [--seed S]`: a stand-in for the trained gpt-oss-nano: a
// checkpoint of the nano shape with seeded random weights, made by the training code
// (TrainableModel.random, unused vocabulary rows zeroed, writeOriginalCheckpoint: BF16 + MXFP4
// experts), so the shipped format, the default-model plumbing and `nano:eval` are exercised
// before the real model exists. The used vocabulary is the corpus generator's (seed 0).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scriptFlags } from './flags.ts';
import { BrowserSession, LocalDocsBackend, PythonTool } from '../src/tools/index.ts';
import { corpusVocabulary, generateCorpus } from '../src/train/nano/corpus.ts';
import { NANO_CONFIG } from '../src/train/nano/config.ts';
import { TrainableModel } from '../src/train/params.ts';
import { zeroUnusedRows } from '../src/train/model.ts';
import { writeOriginalCheckpoint } from '../src/train/export.ts';


const { values } = scriptFlags('nano:standin', { out: { type: 'string' }, seed: { type: 'string' } });
if (values.out === undefined) {
  process.stderr.write('nano:standin: --out DIR is required\n');
  process.exit(2);
}
const docs = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'nano-docs');
const backend = await LocalDocsBackend.open(docs);
await backend.indexed;
const corpus = await generateCorpus({
  seed: 0, train: 4000, heldout: 400,
  tools: { browser: new BrowserSession(backend).namespace(), python: new PythonTool().namespace() },
  browser: () => new BrowserSession(backend),
});
const vocabulary = Int32Array.from(corpusVocabulary(corpus));
const model = TrainableModel.random(NANO_CONFIG, Number(values.seed ?? 14));
zeroUnusedRows(model, vocabulary);
// The embedding's unused rows are never read by a model trained on the corpus; zero them too, as training from scratch leaves them.
const used = new Set(vocabulary);
const H = NANO_CONFIG.hiddenSize;
for (let id = 0; id < NANO_CONFIG.vocabSize; id++) if (!used.has(id)) model.embedding.value.fill(0, id * H, (id + 1) * H);
writeOriginalCheckpoint(model, values.out);
process.stderr.write(`wrote the stand-in (${vocabulary.length} used tokens) to ${values.out}\n`);
