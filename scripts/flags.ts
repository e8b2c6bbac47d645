// Flag parsing for the npm scripts: node's parseArgs, strict and typed, with an unknown or malformed
// flag turned into one line naming it and exit 2, as the gptoss commands do (src/cli/args.ts).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { flagErrorMessage } from '../src/cli/args.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

export function scriptFlags<const T extends Options>(script: string, options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: process.argv.slice(2), options, strict: true, allowPositionals });
  } catch (e) {
    process.stderr.write(`${script}: ${flagErrorMessage(e)}\n`);
    process.exit(2);
  }
}
