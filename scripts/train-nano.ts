// `npm run train:nano -- [--dir nano-run] [--seed 0] [--resume] [--stop-after N] [--epochs E]
// [--lr LR] [--batch-tokens N]`: the gpt-oss-nano recipe. Writes the seeded corpus
// (DIR/corpus, `npm run nano:corpus`), a seeded random model of NANO_CONFIG whose vocabulary
// tables are zero outside the corpus's vocabulary and which holds the copying circuit
// (src/train/nano/copying.ts; `--plain-init` leaves it out) (DIR/init), then trains every weight with
// `gptoss finetune --full` (f32 kernels, compact vocabulary, shared system prompts) into
// DIR/model: BF16 weights and MXFP4 experts. An interrupted run continues with --resume (the
// corpus and the initial model are reused; the state is DIR/model.finetune-state.safetensors).
// DIR/model-float holds the same weights before quantisation (experts in F32), so the held-out
// figures can be measured before and after MXFP4. Prints each step's loss and tokens/s, then the
// time it took. `--export OUT [--float-out DIR] [--state FILE]` writes the checkpoint of a run
// still under way (or stopped) from its last saved state (or a copy of one), to try it. `--tied`
// initialises and trains the embedding and unembedding as one table (an experiment: the shipped
// model is untied; docs/training.md, *Tied embeddings*); pass it to --resume and --export too.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scriptFlags } from './flags.ts';
import { writeOriginalCheckpoint } from '../src/train/export.ts';
import { writeFloatCheckpoint } from '../src/train/float-export.ts';
import { zeroUnusedRows } from '../src/train/model.ts';
import { NANO_CONFIG, NANO_TRAINING } from '../src/train/nano/config.ts';
import { seedCopyingCircuit } from '../src/train/nano/copying.ts';
import { CORPUS_FILES } from '../src/train/nano/corpus.ts';
import { AdamW } from '../src/train/optim.ts';
import { TrainableModel } from '../src/train/params.ts';
import { loadTrainingState } from '../src/train/state.ts';


const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function fail(message: string): never {
  process.stderr.write(`train:nano: ${message}\n`);
  process.exit(2);
}

const { values } = scriptFlags('train:nano', {
  dir: { type: 'string' }, seed: { type: 'string' }, resume: { type: 'boolean' }, 'stop-after': { type: 'string' },
  epochs: { type: 'string' }, lr: { type: 'string' }, 'batch-tokens': { type: 'string' }, export: { type: 'string' },
  'float-out': { type: 'string' }, state: { type: 'string' }, tied: { type: 'boolean' }, 'plain-init': { type: 'boolean' },
});
const dir = resolve(values.dir ?? 'nano-run');
const seed = values.seed ?? '0';
if (!/^\d+$/.test(seed)) fail(`--seed must be a whole number, got "${seed}"`);
const corpus = join(dir, 'corpus');
const init = join(dir, 'init');
const out = join(dir, 'model');
const floatOut = join(dir, 'model-float');
const statePath = values.state !== undefined ? resolve(values.state) : `${out}.finetune-state.safetensors`;

if (values.export !== undefined) {
  // The last saved state's weights, in the compact tables the run holds, written as a checkpoint.
  if (!existsSync(statePath)) fail(`--export: no saved state at ${statePath}`);
  if (existsSync(values.export)) fail(`--export: ${values.export} already exists`);
  const vocabulary = readVocabulary();
  const model = new TrainableModel(NANO_CONFIG, { vocabulary });
  // A tied run's state holds one table: the unembedding is the embedding.
  const tied = values.tied === true;
  const params = model.params().filter((p) => !(tied && p === model.unembedding));
  const optimizer = new AdamW(params);
  const meta = loadTrainingState(statePath, params, optimizer);
  if ((meta['tied_embeddings'] === 'yes') !== tied) fail(`--export: ${statePath} was saved by ${tied ? 'an untied' : 'a tied'} run; ${tied ? 'leave out' : 'add'} --tied`);
  if (tied) model.unembedding.value.set(model.embedding.value);
  writeOriginalCheckpoint(model, values.export);
  process.stderr.write(`train:nano: wrote the model after ${optimizer.steps} updates to ${values.export}\n`);
  const floatExport = values['float-out'];
  if (floatExport !== undefined) {
    if (existsSync(floatExport)) fail(`--float-out: ${floatExport} already exists`);
    writeFloatCheckpoint(model, floatExport);
    process.stderr.write(`train:nano: wrote the same weights before quantisation to ${floatExport}\n`);
  }
  process.exit(0);
}
if (existsSync(out)) fail(`${out} already exists: the run is complete`);
if (values.resume !== true && existsSync(corpus)) fail(`${dir} holds a run already: pass --resume to continue it, or choose another --dir`);
if (values.resume === true && (!existsSync(corpus) || !existsSync(init))) fail(`--resume: no run to continue in ${dir}`);

/** The corpus's vocabulary (sorted): the rows the model holds. */
function readVocabulary(): Int32Array {
  return Int32Array.from(JSON.parse(readFileSync(join(corpus, CORPUS_FILES.vocabulary), 'utf8')) as number[]).sort();
}

const started = performance.now();
const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(0)} s`;

function run(args: string[]): void {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail(`${args.slice(0, 4).join(' ')} … failed (exit ${r.status ?? r.signal})`);
}

if (!existsSync(corpus)) {
  process.stderr.write(`train:nano: writing the corpus (seed ${seed}) to ${corpus}\n`);
  run(['--import', 'tsx', 'scripts/nano-corpus.ts', '--out', corpus, '--seed', seed]);
}
if (!existsSync(init)) {
  const vocabulary = readVocabulary();
  const model = TrainableModel.random(NANO_CONFIG, Number(seed));
  // Rows of tokens the corpus never uses stay zero (and are not even held while training).
  zeroUnusedRows(model, vocabulary, 'both');
  // Tied tables are trained as one (--tie-embeddings). The copying circuit
  // (src/train/nano/copying.ts) sets the unembedding apart from the embedding, so a tied run
  // starts without it, as does --plain-init (the recipe before it, to compare against).
  let circuit = 'no copying circuit';
  if (values.tied === true) model.tieVocabularyTables();
  else if (values['plain-init'] !== true) {
    const report = seedCopyingCircuit(model);
    const share = (x: number): string => `${(100 * x).toFixed(1)}%`;
    circuit = `the copying circuit: codes of ${report.codeDims} dims, positional heads ${share(report.previousTokenShare)} and ${share(report.secondPreviousTokenShare)} on their offsets`;
  }
  writeOriginalCheckpoint(model, init);
  process.stderr.write(`train:nano: wrote the initial model (${model.size()} parameters with the full vocabulary tables, ${vocabulary.length} rows in use; ${circuit}) to ${init}\n`);
}

const flag = (name: 'epochs' | 'lr' | 'batch-tokens', fallback: number): string[] => [`--${name}`, values[name] ?? String(fallback)];
run([
  'bin/gptoss.js', 'finetune', '--full', '--model', init, '--data', join(corpus, CORPUS_FILES.train), '--out', out, '--float-out', floatOut,
  '--vocabulary', join(corpus, CORPUS_FILES.vocabulary), '--precision', 'f32', '--seed', seed, ...(values.tied === true ? ['--tie-embeddings'] : []),
  ...flag('epochs', NANO_TRAINING.epochs), ...flag('lr', NANO_TRAINING.lr), ...flag('batch-tokens', NANO_TRAINING.batchTokens),
  '--eval-split', String(NANO_TRAINING.evalSplit), '--eval-every', String(NANO_TRAINING.evalEvery), '--save-every', String(NANO_TRAINING.saveEvery),
  ...(values['stop-after'] !== undefined ? ['--stop-after', values['stop-after']] : []),
  // Killed before its first save, a run has no state yet: it starts over.
  ...(values.resume === true && existsSync(statePath) ? ['--resume'] : []),
]);
process.stderr.write(`train:nano: ${existsSync(out) ? `done: ${out}` : 'stopped (continue with --resume)'} after ${elapsed()}\n`);
