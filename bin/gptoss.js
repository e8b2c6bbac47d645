#!/usr/bin/env node
// Entry point of the `gptoss` command. The installed package runs the compiled JavaScript in
// dist/. A source checkout (src/ beside this folder and the tsx loader among the installed
// devDependencies) runs the TypeScript source instead, so an edit takes effect without a build
// and a stale dist/ is never what runs.
import { existsSync } from 'node:fs';

// A reader that stops early (`gptoss logits ... | head`) closes the pipe: stop quietly, as Unix
// tools do, instead of an unhandled EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

/** The tsx loader's API when this is a checkout with devDependencies installed, else undefined. */
async function sourceLoader() {
  if (!existsSync(new URL('../src/cli/main.ts', import.meta.url))) return undefined;
  try {
    return await import('tsx/esm/api');
  } catch {
    return undefined;
  }
}

const tsx = await sourceLoader();
let main;
if (tsx !== undefined) {
  tsx.register();
  ({ main } = await import('../src/cli/main.ts'));
} else if (existsSync(new URL('../dist/cli/main.js', import.meta.url))) {
  ({ main } = await import('../dist/cli/main.js'));
} else {
  process.stderr.write('gptoss: dist/ is missing; build it with `npm run build` (or install the devDependencies to run from source)\n');
  process.exit(2);
}
process.exitCode = await main(process.argv.slice(2));
