// Training throughput: tokens/s of full training steps (forward, backward, AdamW) on seeded
// random models of nano-candidate shapes, in float64 and in f32 with the WebAssembly kernels.
// Reports whole steps' tokens/s and forward+backward alone (the rest is the optimiser, clipping and
// zeroing, which scale with the parameter count, the full vocabulary's tables included).
// Usage: node --import tsx bench/train.ts [--hidden 128] [--layers 4] [--experts 4] [--topk 2]
//   [--vocab 2000 (used)] [--vocabsize 201088] [--seq 256] [--steps 3] [--precision f64|f32]
import { AdamW, trainStep } from '../src/train/optim.ts';
import { lossAndGradients, nextTokenTargets } from '../src/train/model.ts';
import { TrainableModel } from '../src/train/params.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { seededRandom } from '../src/random.ts';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}
const hidden = Number(flag('hidden', '128'));
const layers = Number(flag('layers', '4'));
const experts = Number(flag('experts', '4'));
const topK = Number(flag('topk', '2'));
const used = Number(flag('vocab', '2000'));
const seq = Number(flag('seq', '256'));
const steps = Number(flag('steps', '3'));
const precision = flag('precision', 'f64') as 'f64' | 'f32';

const config: ModelConfig = {
  numLayers: layers, numExperts: experts, expertsPerToken: topK, vocabSize: Number(flag('vocabsize', '201088')), hiddenSize: hidden,
  intermediateSize: hidden, swigluLimit: 7, headDim: 64, numAttentionHeads: hidden / 32, numKeyValueHeads: Math.max(1, hidden / 128),
  slidingWindow: 128, initialContextLength: 4096, ropeTheta: 150000, ropeScalingFactor: 32, ropeNtkAlpha: 1, ropeNtkBeta: 32,
};
const random = seededRandom(1);
const vocabulary = Int32Array.from({ length: used }, (_, i) => (i * 37) % config.vocabSize);
const tokens = Array.from({ length: seq }, () => vocabulary[Math.floor(random() * used)]!);
const model = TrainableModel.random(config, 1);
// zero every unused unembedding row, as the used-vocabulary option requires
const keep = new Set(vocabulary);
for (let id = 0; id < config.vocabSize; id++) if (!keep.has(id)) model.unembedding.value.fill(0, id * hidden, (id + 1) * hidden);
const optimizer = new AdamW(model.params());
const batch = [{ tokens, targets: nextTokenTargets(tokens) }];
const options = { vocabulary, precision };
trainStep(model, optimizer, batch, 1e-4, 1, options); // warm-up
const start = performance.now();
let loss = 0;
for (let s = 0; s < steps; s++) loss = trainStep(model, optimizer, batch, 1e-4, 1, options).loss;
const seconds = (performance.now() - start) / 1000;
const gradStart = performance.now();
for (let s = 0; s < steps; s++) lossAndGradients(model, tokens, batch[0]!.targets, options);
const gradSeconds = (performance.now() - gradStart) / 1000;
console.log(JSON.stringify({
  precision, hidden, layers, experts, topK, used, vocabSize: config.vocabSize, seq, steps,
  tokensPerSecond: Math.round((steps * seq) / seconds), forwardBackwardTokensPerSecond: Math.round((steps * seq) / gradSeconds), loss: Number(loss.toFixed(4)),
}));
