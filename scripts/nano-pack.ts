// `npm run nano:pack -- --from DIR [--out models/gpt-oss-nano] [--random-weights]`: writes the
// shipped gpt-oss-nano (src/checkpoint/nano.ts: the non-zero vocabulary rows, every other tensor as
// it is, a manifest with checksums) from an original-layout checkpoint folder, such as the one
// `npm run train:nano` exports. --random-weights marks a stand-in whose weights are untrained.
import { join } from 'node:path';
import { scriptFlags } from './flags.ts';
import { isUserError } from '../src/errors.ts';
import { packNano, shippedNanoDir } from '../src/checkpoint/nano.ts';

const { values } = scriptFlags('nano:pack', { from: { type: 'string' }, out: { type: 'string' }, 'random-weights': { type: 'boolean' }, description: { type: 'string' } });
if (values.from === undefined) {
  process.stderr.write('nano:pack: --from DIR (a trained checkpoint folder) is required\n');
  process.exit(2);
}
const out = values.out ?? shippedNanoDir();
try {
  const { rows, bytes } = packNano(values.from, out, {
    randomWeights: values['random-weights'] === true,
    ...(values.description !== undefined ? { description: values.description } : {}),
  });
  process.stderr.write(`wrote ${join(out, 'model.safetensors')}: ${rows} token rows, ${(bytes / 2 ** 20).toFixed(2)} MiB\n`);
} catch (e) {
  if (!isUserError(e)) throw e;
  process.stderr.write(`nano:pack: ${e.message}\n`);
  process.exit(2);
}
