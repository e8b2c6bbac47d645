// `gptoss` on a scripted engine, as a process, for tests whose subject is the process boundary
// (a real terminal, signals, exit status):
//   node --import tsx test/cli/scripted-gptoss.ts SCRIPT.json chat --show-reasoning
// SCRIPT.json is a Script (test/cli/scripted.ts); the engine reaches the command through main()'s
// CommandContext, as in-process tests pass it.
import { main } from '../../src/cli/main.ts';
import { scriptedEngineFromFile } from './scripted.ts';

const [script, ...args] = process.argv.slice(2);
if (script === undefined) throw new Error('usage: scripted-gptoss.ts SCRIPT.json COMMAND [ARGS...]');
process.exitCode = await main(args, { engine: scriptedEngineFromFile(script) });
