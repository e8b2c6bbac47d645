// `gptoss synth`: writes a checkpoint with random weights in the real layout and dtypes, so a setup
// can be checked (load, generate, bench, convert) before a 13 GB download.
import { parseFlags, stringFlag, numberFlag, boolFlag } from './args.ts';
import { UserError } from '../errors.ts';
import { resolveShape, synthesize, tensorBytes, originalRecipes } from '../checkpoint/synth.ts';
import { createProgress, formatBytes } from './progress.ts';

const HELP = `usage: gptoss synth --shape tiny|20b|120b|CONFIG.json --out DIR [options]

Writes a gpt-oss checkpoint with RANDOM weights in the real layout and dtypes (BF16 attention,
embedding and unembedding; MXFP4 experts), deterministic for a given seed.

  --shape S        tiny (real vocabulary, ~52 MB), 20b (13 GB), 120b (65 GB), or a config.json
  --layers N       override the number of layers (e.g. --shape 20b --layers 4)
  --seed S         PRNG seed (default 0)
  --layout L       original (default: config.json + model.safetensors, the reference's names)
                   or hf (Hugging Face: model-0000i-of-0000n.safetensors + index)
  --out DIR        output folder (created)
  --quiet          no progress on stderr`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    shape: { type: 'string' },
    layers: { type: 'string' },
    seed: { type: 'string' },
    layout: { type: 'string' },
    out: { type: 'string' },
    quiet: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, false);
  if (boolFlag(p, 'help')) {
    console.log(HELP);
    return 0;
  }
  const shape = stringFlag(p, 'shape');
  const out = stringFlag(p, 'out');
  if (shape === undefined || out === undefined) throw new UserError('usage', '--shape and --out are required (see gptoss synth --help)');
  const layout = stringFlag(p, 'layout') ?? 'original';
  if (layout !== 'original' && layout !== 'hf') throw new UserError('usage', `--layout must be original or hf, got "${layout}"`);
  const config = resolveShape(shape);
  const layers = numberFlag(p, 'layers', { min: 1, max: 1000, integer: true });
  if (layers !== undefined) config.numLayers = layers;
  const seed = numberFlag(p, 'seed', { min: 0, max: 2 ** 32 - 1, integer: true }) ?? 0;

  const total = originalRecipes(config).reduce((s, r) => s + tensorBytes(r), 0);
  const progress = createProgress({ quiet: boolFlag(p, 'quiet') });
  progress.start(`synth ${shape}${layers !== undefined ? ` (${layers} layers)` : ''} -> ${out}`, total);
  const started = Date.now();
  const result = synthesize(config, out, { seed, layout, onBytes: (bytes) => progress.advance(bytes) });
  progress.done('done');
  const secs = (Date.now() - started) / 1000;
  console.log(JSON.stringify({ dir: result.dir, layout, files: result.files, bytes: result.bytes, seconds: Number(secs.toFixed(1)), random_weights: true }));
  if (!boolFlag(p, 'quiet')) process.stderr.write(`wrote ${formatBytes(result.bytes)} in ${secs.toFixed(1)} s (random weights)\n`);
  return 0;
}
