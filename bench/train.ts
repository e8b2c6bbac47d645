// Training throughput: tokens/s of full training steps (forward, backward, clipping, AdamW) and of
// forward+backward alone, on seeded random models of gpt-oss-nano candidate shapes, in float64 and
// with the matrix products in f32 on the WebAssembly kernels. The difference between the two
// rates is the optimiser, clipping and zeroing, which scale with the parameter count (the full
// vocabulary's tables included) rather than with the tokens.
// One measurement: node --import tsx bench/train.ts [--hidden 128] [--layers 4] [--experts 4]
//   [--topk 2] [--vocab 2000 (used)] [--vocabsize 201088] [--seq 512] [--steps 2] [--precision f64|f32]
// The BENCHMARKS.md section (each shape and precision in its own process): runTrainingBench(),
// or `npm run bench -- --sections training`, or this file with --section (--write puts it in the
// page between its markers, bench/document.ts).
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ModelConfig } from '../src/model/config.ts';
import { seededRandom } from '../src/random.ts';
import { lossAndGradients, nextTokenTargets } from '../src/train/model.ts';
import { AdamW, trainStep } from '../src/train/optim.ts';
import { TrainableModel } from '../src/train/params.ts';
import { writeSections } from './document.ts';

interface Shape {
  hidden: number;
  layers: number;
  experts: number;
  topK: number;
  /** Tokens the corpus uses (the used-vocabulary shortcut's rows). */
  used: number;
  vocabSize: number;
  seq: number;
  steps: number;
}

interface Measurement extends Shape {
  precision: 'f64' | 'f32';
  tokensPerSecond: number;
  forwardBackwardTokensPerSecond: number;
  loss: number;
}

function measure(shape: Shape, precision: 'f64' | 'f32'): Measurement {
  const { hidden, layers, experts, topK, used, vocabSize, seq, steps } = shape;
  const config: ModelConfig = {
    numLayers: layers, numExperts: experts, expertsPerToken: topK, vocabSize, hiddenSize: hidden,
    intermediateSize: hidden, swigluLimit: 7, headDim: 64, numAttentionHeads: hidden / 32, numKeyValueHeads: Math.max(1, hidden / 128),
    slidingWindow: 128, initialContextLength: 4096, ropeTheta: 150000, ropeScalingFactor: 32, ropeNtkAlpha: 1, ropeNtkBeta: 32,
  };
  const random = seededRandom(1);
  const vocabulary = Int32Array.from({ length: used }, (_, i) => Math.floor((i * vocabSize) / used));
  const tokens = Array.from({ length: seq }, () => vocabulary[Math.floor(random() * used)]!);
  const model = TrainableModel.random(config, 1);
  // Every unused unembedding row zero, as the used-vocabulary shortcut requires.
  const keep = new Set(vocabulary);
  for (let id = 0; id < vocabSize; id++) if (!keep.has(id)) model.unembedding.value.fill(0, id * hidden, (id + 1) * hidden);
  const optimizer = new AdamW(model.params());
  const targets = nextTokenTargets(tokens);
  const batch = [{ tokens, targets }];
  const options = { vocabulary, precision };
  trainStep(model, optimizer, batch, 1e-4, 1, options); // warm-up: compilation, first allocations
  const start = performance.now();
  let loss = 0;
  for (let s = 0; s < steps; s++) loss = trainStep(model, optimizer, batch, 1e-4, 1, options).loss;
  const seconds = (performance.now() - start) / 1000;
  const gradStart = performance.now();
  for (let s = 0; s < steps; s++) lossAndGradients(model, tokens, targets, options);
  const gradSeconds = (performance.now() - gradStart) / 1000;
  return {
    ...shape, precision, tokensPerSecond: Math.round((steps * seq) / seconds),
    forwardBackwardTokensPerSecond: Math.round((steps * seq) / gradSeconds), loss: Number(loss.toFixed(4)),
  };
}

const SHAPES: (Shape & { label: string })[] = [
  { label: '4 layers, hidden 128, 8 experts top-2, vocabulary 2,048 (all used), 128-token sequences', hidden: 128, layers: 4, experts: 8, topK: 2, used: 2048, vocabSize: 2048, seq: 128, steps: 4 },
  { label: '4 layers, hidden 128, 4 experts top-2, full vocabulary, 2,000 used, 512-token sequences', hidden: 128, layers: 4, experts: 4, topK: 2, used: 2000, vocabSize: 201088, seq: 512, steps: 2 },
  { label: '4 layers, hidden 256, 8 experts top-2, full vocabulary, 5,000 used, 512-token sequences', hidden: 256, layers: 4, experts: 8, topK: 2, used: 5000, vocabSize: 201088, seq: 512, steps: 2 },
];

function shapeArgs(s: Shape): string[] {
  return ['--hidden', s.hidden, '--layers', s.layers, '--experts', s.experts, '--topk', s.topK, '--vocab', s.used, '--vocabsize', s.vocabSize, '--seq', s.seq, '--steps', s.steps].map(String);
}

/** The BENCHMARKS.md training section: every shape in both precisions, each in a fresh process. */
export async function runTrainingBench(): Promise<string> {
  const self = fileURLToPath(import.meta.url);
  const loadBefore = loadavg()[0]!;
  const rows: string[] = [];
  for (const shape of SHAPES) {
    const got: Partial<Record<'f64' | 'f32', Measurement>> = {};
    for (const precision of ['f64', 'f32'] as const) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', self, ...shapeArgs(shape), '--precision', precision], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`bench/train.ts ${precision} failed: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
      got[precision] = JSON.parse(r.stdout) as Measurement;
    }
    const [a, b] = [got.f64!, got.f32!];
    rows.push(`| ${shape.label} | ${a.tokensPerSecond} | ${b.tokensPerSecond} | ${(b.tokensPerSecond / a.tokensPerSecond).toFixed(1)}× | ${a.forwardBackwardTokensPerSecond} | ${b.forwardBackwardTokensPerSecond} | ${(b.forwardBackwardTokensPerSecond / a.forwardBackwardTokensPerSecond).toFixed(1)}× |`);
  }
  return [
    '## Training (`gptoss finetune --precision`, float64 vs f32 WebAssembly SIMD)',
    '',
    `Seeded random models (head size 64, 32 per attention head of hidden, intermediate = hidden, one sequence per step), one thread. Step = forward, backward, clipping and AdamW over every parameter; forward+backward alone shows the matrix products' share. ${new Date().toISOString().slice(0, 10)}, load average ${loadBefore.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end (a shared machine: compare the ratios).`,
    '',
    '| model | f64 step tokens/s | f32 step tokens/s | step speed-up | f64 fwd+bwd tokens/s | f32 fwd+bwd tokens/s | fwd+bwd speed-up |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    'With the full 201,088-token vocabulary most of an f32 step is the optimiser walking the embedding and unembedding tables, whose unused rows never change.',
    '',
    'Alone: `node --import tsx bench/train.ts --section [--write]` (`--write` replaces this section of docs/BENCHMARKS.md; or one shape: `bench/train.ts --hidden 256 --experts 8 --precision f32`).',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values: f } = parseArgs({
    options: {
      hidden: { type: 'string' }, layers: { type: 'string' }, experts: { type: 'string' }, topk: { type: 'string' }, vocab: { type: 'string' },
      vocabsize: { type: 'string' }, seq: { type: 'string' }, steps: { type: 'string' }, precision: { type: 'string' }, section: { type: 'boolean' },
      write: { type: 'boolean' },
    },
  });
  if (f.section === true) {
    const section = await runTrainingBench();
    // --write: into the page between the training section's markers, the rest of the page kept.
    if (f.write === true) writeSections(fileURLToPath(new URL('../docs/BENCHMARKS.md', import.meta.url)), new Map([['training', section]]));
    else console.log(section);
  } else {
    const precision = f.precision ?? 'f64';
    if (precision !== 'f64' && precision !== 'f32') throw new Error(`--precision ${precision}: expected f64 or f32`);
    const n = (v: string | undefined, d: number): number => (v === undefined ? d : Number(v));
    console.log(JSON.stringify(measure({
      hidden: n(f.hidden, 128), layers: n(f.layers, 4), experts: n(f.experts, 4), topK: n(f.topk, 2), used: n(f.vocab, 2000),
      vocabSize: n(f.vocabsize, 201088), seq: n(f.seq, 512), steps: n(f.steps, 2),
    }, precision)));
  }
}
