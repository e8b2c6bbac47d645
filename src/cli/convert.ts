// `gptoss convert --to gguf`: writes a checkpoint (either layout) as a GGUF file that llama.cpp,
// Ollama and node-llama-cpp load as the `gpt-oss` architecture, MXFP4 experts kept as MXFP4.
import { parseFlags, stringFlag, boolFlag } from './args.ts';
import { UserError } from '../errors.ts';
import { convertToGguf } from '../checkpoint/gguf-convert.ts';
import { createProgress, formatBytes } from './progress.ts';

const HELP = `usage: gptoss convert --to gguf --model DIR --out FILE.gguf [options]

Converts a gpt-oss checkpoint (original/ or Hugging Face layout) into GGUF v3 for llama.cpp,
Ollama and node-llama-cpp: architecture gpt-oss, BF16 attention and embeddings, F32 norms,
biases, sinks and router, MXFP4 experts (ggml type 39), the o200k_harmony vocabulary.
Streams tensor by tensor: a 20b checkpoint needs ~14 GB of disk, not of memory.

  --to gguf        output format (only gguf)
  --model DIR      checkpoint folder
  --out FILE       output file
  --name NAME      general.name in the file (default: the folder's name)
  --quiet          no progress on stderr`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    to: { type: 'string' },
    model: { type: 'string' },
    out: { type: 'string' },
    name: { type: 'string' },
    quiet: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, false);
  if (boolFlag(p, 'help')) {
    console.log(HELP);
    return 0;
  }
  const to = stringFlag(p, 'to');
  const model = stringFlag(p, 'model');
  const out = stringFlag(p, 'out');
  if (to === undefined || model === undefined || out === undefined) throw new UserError('usage', '--to, --model and --out are required (see gptoss convert --help)');
  if (to !== 'gguf') throw new UserError('usage', `--to ${to}: only gguf is supported`);
  const progress = createProgress({ quiet: boolFlag(p, 'quiet') });
  const started = Date.now();
  const name = stringFlag(p, 'name');
  const result = await convertToGguf(model, out, {
    ...(name !== undefined ? { name } : {}),
    onStart: (total) => progress.start(`convert -> ${out}`, total),
    onBytes: (n) => progress.advance(n),
  });
  progress.done('done');
  const secs = (Date.now() - started) / 1000;
  console.log(JSON.stringify({ path: result.path, bytes: result.bytes, tensors: result.tensors, seconds: Number(secs.toFixed(1)) }));
  if (!boolFlag(p, 'quiet')) process.stderr.write(`wrote ${formatBytes(result.bytes)} in ${secs.toFixed(1)} s\n`);
  return 0;
}
