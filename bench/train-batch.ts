// Training throughput on gpt-oss-nano-shaped batches: B conversations of `seq` tokens that share
// their first `prefix` tokens (the system message), the loss on a share of the rest, a used
// vocabulary of `vocab` tokens of the full 201,088. Three ways to run the same step: the full
// vocabulary tables with the used-vocabulary shortcut; compact tables (only the used rows held);
// compact tables plus the shared prefix run once per batch. Tokens/s counts the batch's tokens,
// per wall-clock second and per CPU second of this process, worker threads included (the machine
// is shared). --threads N splits each step over N threads (train/parallel.ts).
// node --import tsx bench/train-batch.ts [--hidden 192] [--layers 4] [--experts 8] [--topk 2]
//   [--heads 4] [--kv 1] [--headdim 48] [--vocab 2900] [--seq 860] [--prefix 650] [--batch 8]
//   [--steps 2] [--precision f32] [--mode full|compact|shared] [--threads 1]
import { parseArgs } from 'node:util';
import type { ModelConfig } from '../src/model/config.ts';
import { seededRandom } from '../src/random.ts';
import { nextTokenTargets, zeroUnusedRows } from '../src/train/model.ts';
import { AdamW, trainStep, type StepResult } from '../src/train/optim.ts';
import { TrainingThreads } from '../src/train/parallel.ts';
import { compactVocabulary, TrainableModel } from '../src/train/params.ts';

const { values: f } = parseArgs({
  options: Object.fromEntries(['hidden', 'layers', 'experts', 'topk', 'heads', 'kv', 'headdim', 'intermediate', 'vocab', 'seq', 'prefix', 'batch', 'steps', 'precision', 'mode', 'threads']
    .map((k) => [k, { type: 'string' as const }])),
});
const n = (v: string | undefined, d: number): number => (v === undefined ? d : Number(v));
const hidden = n(f.hidden, 192);
const config: ModelConfig = {
  numLayers: n(f.layers, 4), numExperts: n(f.experts, 8), expertsPerToken: n(f.topk, 2), vocabSize: 201088, hiddenSize: hidden,
  intermediateSize: n(f.intermediate, hidden), swigluLimit: 7, headDim: n(f.headdim, 48), numAttentionHeads: n(f.heads, 4), numKeyValueHeads: n(f.kv, 1),
  slidingWindow: 128, initialContextLength: 4096, ropeTheta: 150000, ropeScalingFactor: 32, ropeNtkAlpha: 1, ropeNtkBeta: 32,
};
const [used, seq, prefix, batchSize, steps] = [n(f.vocab, 2900), n(f.seq, 860), n(f.prefix, 650), n(f.batch, 8), n(f.steps, 2)];
const precision = f.precision === 'f64' ? 'f64' : 'f32';
const mode = f.mode ?? 'shared';
if (!['full', 'compact', 'shared'].includes(mode)) throw new Error(`--mode ${mode}: expected full, compact or shared`);

const random = seededRandom(1);
const vocabulary = Int32Array.from({ length: used }, (_, i) => Math.floor((i * config.vocabSize) / used));
const draw = (): number => vocabulary[Math.floor(random() * used)]!;
const shared = Array.from({ length: prefix }, draw);
const batch = Array.from({ length: batchSize }, () => {
  const tokens = [...shared, ...Array.from({ length: seq - prefix }, draw)];
  // The loss on the conversation's last half after the prefix (the assistant's turns).
  return { tokens, targets: nextTokenTargets(tokens, tokens.map((_, i) => i >= prefix + (seq - prefix) / 2)) };
});

let model = TrainableModel.random(config, 1);
zeroUnusedRows(model, vocabulary, 'both');
if (mode !== 'full') model = compactVocabulary(model, vocabulary);
const optimizer = new AdamW(model.params());
const options = { vocabulary, precision } as const;
const share = mode === 'shared';
const threads = n(f.threads, 1);
const pool = threads > 1 ? await TrainingThreads.start(model, threads, options) : undefined;
const step = async (): Promise<StepResult> =>
  pool === undefined ? trainStep(model, optimizer, batch, 1e-4, 1, options, share) : await pool.step(optimizer, batch, 1e-4, 1, options, share);
await step(); // warm-up: compilation, first allocations
const start = performance.now();
const cpuStart = process.cpuUsage();
let loss = 0;
for (let s = 0; s < steps; s++) loss = (await step()).loss;
const seconds = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuStart);
// On a shared machine the wall clock counts other people's work: CPU time is this process's alone.
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
await pool?.close();
console.log(JSON.stringify({
  mode, precision, threads, hidden, layers: config.numLayers, experts: config.numExperts, parameters: model.size(), used, seq, prefix, batch: batchSize,
  secondsPerStep: Number((seconds / steps).toFixed(2)), tokensPerSecond: Math.round((steps * seq * batchSize) / seconds),
  cpuSecondsPerStep: Number((cpuSeconds / steps).toFixed(2)), tokensPerCpuSecond: Math.round((steps * seq * batchSize) / cpuSeconds), loss: Number(loss.toFixed(4)),
}));
