// The `gptoss` command: dispatches to one module per subcommand (loaded lazily, so `gptoss tokenize`
// never pays for the engine) and turns user errors into one line on stderr and exit status 2.
import { isUserError } from '../errors.ts';
import type { CommandContext } from './context.ts';

export type { CommandContext } from './context.ts';

/** A subcommand: receives its own argv (without the command name), returns the exit status. */
export type Command = (argv: string[], context?: CommandContext) => Promise<number>;

const commands: Record<string, { summary: string; load: () => Promise<{ run: Command }> }> = {
  tokenize: { summary: 'text on stdin -> token ids', load: () => import('./tokenize.ts') },
  detokenize: { summary: 'token ids -> text', load: () => import('./detokenize.ts') },
  render: { summary: 'conversation JSON -> harmony prompt', load: () => import('./render.ts') },
  parse: { summary: 'completion ids or text -> messages JSON', load: () => import('./parse.ts') },
  synth: { summary: 'write a checkpoint with random weights in the real layout', load: () => import('./synth.ts') },
  pull: { summary: 'download a gpt-oss checkpoint into the hub cache', load: () => import('./pull.ts') },
  convert: { summary: 'convert a checkpoint (e.g. --to gguf)', load: () => import('./convert.ts') },
  finetune: { summary: 'fine-tune a model on conversations (LoRA adapter or full)', load: () => import('./finetune.ts') },
  merge: { summary: 'fold a LoRA adapter into a checkpoint', load: () => import('./merge.ts') },
  logits: { summary: 'print the logits of a token sequence', load: () => import('./logits.ts') },
  generate: { summary: 'continue a prompt', load: () => import('./generate.ts') },
  bench: { summary: 'measure load, prefill and decode speed', load: () => import('./bench.ts') },
  chat: { summary: 'interactive chat in the terminal', load: () => import('./chat.ts') },
  tool: { summary: 'run one tool call (python, browser) as the agent loop would', load: () => import('./tool.ts') },
  serve: { summary: 'OpenAI-compatible HTTP server', load: () => import('./serve.ts') },
  classify: { summary: 'label texts against a written policy (gpt-oss-safeguard)', load: () => import('./classify.ts') },
  eval: { summary: 'evaluations (healthbench, mcq, exact, classify)', load: () => import('./eval.ts') },
};

function usage(): string {
  const lines = ['usage: gptoss <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(11)} ${c.summary}`);
  lines.push('', 'Run `gptoss <command> --help` for the options of one command.');
  return lines.join('\n');
}

export async function main(argv: string[], context: CommandContext = {}): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    console.error(`gptoss: unknown command "${name}"; the commands are ${Object.keys(commands).join(', ')} (gptoss --help describes them)`);
    return 2;
  }
  try {
    const { run } = await command.load();
    return await run(rest, context);
  } catch (e) {
    if (isUserError(e)) {
      console.error(`gptoss ${name}: ${e.message}`);
      return 2;
    }
    throw e;
  }
}
