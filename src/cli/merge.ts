// `gptoss merge`: folds a PEFT LoRA adapter into a checkpoint and writes the merged model as an
// `original/`-layout checkpoint. The adapted attention matrices become bf16(W + (alpha/r) B A),
// adapted expert stacks are re-quantised to MXFP4 (the error reported); the rest is copied as stored.
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { HeapStore } from '../tensor/index.ts';
import { loadCheckpoint, MARKER_FILE, readCheckpointConfig } from '../checkpoint/checkpoint.ts';
import { resolveModel } from '../checkpoint/resolve.ts';
import { mergeLoraIntoWeights, requantiseExperts, writeWeightsCheckpoint } from '../train/merge.ts';
import { readPeftAdapter } from '../train/peft.ts';
import { boolFlag, parseFlags, stringFlag } from './args.ts';

const HELP = `usage: gptoss merge --adapter DIR --out DIR [--model DIR|REPO]

Folds a LoRA adapter (a PEFT folder, e.g. from gptoss finetune) into its base model and writes
the merged checkpoint (config.json + model.safetensors) to --out. Each adapted attention matrix
becomes bf16(W + alpha/r * B A): one rounding to BF16, at most half a BF16 step per entry. An
adapter on the experts is added to their dequantised values and the stack re-quantised to MXFP4
(the summary gives that error against the update's size; --adapter keeps them unquantised). The
router, norms, embeddings and unadapted experts are copied unchanged.

  --model DIR|REPO   the base model the adapter was trained on (default: as chat and serve choose it)
  --adapter DIR      the adapter folder
  --out DIR          the merged checkpoint's folder (must not exist)
  --quiet            no summary on stderr`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    model: { type: 'string' }, adapter: { type: 'string' }, out: { type: 'string' },
    quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  }, false);
  if (boolFlag(p, 'help')) {
    console.log(HELP);
    return 0;
  }
  const adapterDir = stringFlag(p, 'adapter');
  const outFlag = stringFlag(p, 'out');
  if (adapterDir === undefined || adapterDir === '' || outFlag === undefined || outFlag === '') throw new UserError('usage', '--adapter DIR and --out DIR are required (see gptoss merge --help)');
  const out = resolve(outFlag);
  if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length > 0)) throw new UserError('usage', `--out ${outFlag} already exists; choose a new folder (or delete it)`);
  const resolved = await resolveModel(stringFlag(p, 'model'));
  const { config } = await readCheckpointConfig(resolved.dir);
  const adapter = readPeftAdapter(adapterDir, config);
  const loaded = await loadCheckpoint(resolved.dir, new HeapStore());
  try {
    const report = mergeLoraIntoWeights(loaded.weights, adapter);
    // The checkpoint stores experts as MXFP4: adapted stacks are packed again, and what that loses is measured.
    const packed = requantiseExperts(loaded.weights);
    writeWeightsCheckpoint(loaded.weights, out);
    // An adapter does not make random weights meaningful: the merged model keeps the warning.
    if (loaded.randomWeights) writeFileSync(join(out, MARKER_FILE), JSON.stringify({ random_weights: true, description: `${resolved.description} merged with the adapter ${adapterDir}: RANDOM base weights` }, null, 2) + '\n');
    console.log(JSON.stringify({
      dir: outFlag, base_model: resolved.repo ?? resolved.dir, adapter: adapterDir, modules: report.modules,
      entries: report.entries, changed: report.changed, max_rounding_error: report.maxError, rms_rounding_error: report.rmsError, rms_update: report.rmsDelta,
      expert_stacks: report.expertStacks, expert_rms_update: report.expertRmsDelta,
      embedding_token_rows: report.embeddingRows, unembedding_token_rows: report.unembeddingRows,
      expert_max_quantisation_error: packed.maxError, expert_rms_quantisation_error: packed.rmsError, expert_rms_value: packed.rmsValue,
    }));
    if (!boolFlag(p, 'quiet')) {
      process.stderr.write(`merged ${report.modules} adapted projections (r=${adapter.rank}, alpha=${adapter.alpha}) into ${resolved.description} and wrote ${outFlag}: ` +
        `attention matrices rounded to BF16 once (largest error ${report.maxError.toExponential(2)}, rms ${report.rmsError.toExponential(2)} against an update of rms ${report.rmsDelta.toExponential(2)}; ` +
        `${report.changed} of ${report.entries} entries changed); ` +
        (report.embeddingRows + report.unembeddingRows > 0 ? `token rows put in place (rounded to BF16): ${report.embeddingRows} of the embedding, ${report.unembeddingRows} of the unembedding; ` : '') +
        (report.expertStacks === 0
          ? 'MXFP4 experts, router, norms and embeddings copied unchanged\n'
          : `${report.expertStacks} adapted expert stacks re-quantised to MXFP4 (error rms ${packed.rmsError.toExponential(2)}, largest ${packed.maxError.toExponential(2)}, against an update of rms ${report.expertRmsDelta.toExponential(2)} on weights of rms ${packed.rmsValue.toExponential(2)}); other experts, router, norms and embeddings copied unchanged\n`));
    }
  } finally {
    loaded.weights.embedding.weight.close();
  }
  return 0;
}
