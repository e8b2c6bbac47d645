// `gptoss tool`: runs built-in tool calls exactly as the agent loop would and prints the tool
// message the model would receive, so users can debug their document collections and sandbox
// settings. Exit status 0 on success, 1 when the tool answered with an error, 2 on bad usage,
// 3 when the python code itself failed (an uncaught exception or a non-zero sys.exit).
import { UserError } from '../errors.ts';
import { renderMessage, tokensToText } from '../harmony/index.ts';
import {
  BrowserSession,
  ExaBackend,
  LocalDocsBackend,
  PythonTool,
  SandboxPool,
  YouComBackend,
  toolOutputMessage,
  type BrowserBackend,
  type Tool,
  type ToolCall,
  type ToolOutput,
} from '../tools/index.ts';
import { boolFlag, numberFlag, parseFlags, readStdin, stringFlag } from './args.ts';

const USAGE = `usage:
  gptoss tool python (--code CODE | --code - < file.py) [--timeout S] [--stateful] [--max-output N] [--memory MB]
  gptoss tool browser --docs DIR [--name NAME] (search|open|find) JSON_ARGS [(search|open|find) JSON_ARGS ...]
  gptoss tool browser --web exa|youcom [--base-url URL] (search|open|find) JSON_ARGS ...

Prints the tool message the model receives (several browser calls share one session, so
cursors and link ids carry over). Output: the message text, or --harmony (rendered tokens as
text) or --json (the harmony message JSON). Exit status: 0 done, 1 the tool answered with an
error (timeout, crash, page not found), 2 bad usage, 3 the python code raised an exception or
exited with a non-zero status (its traceback is the normal answer the model reads).`;

type Format = 'text' | 'harmony' | 'json';

export async function run(argv: string[]): Promise<number> {
  const [which, ...rest] = argv;
  if (which === undefined || which === '--help' || which === '-h') {
    console.log(USAGE);
    return which === undefined ? 2 : 0;
  }
  if (which === 'python') return runPython(rest);
  if (which === 'browser') return runBrowser(rest);
  throw new UserError('usage', `unknown tool "${which}" (expected python or browser)`);
}

const COMMON = {
  harmony: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function formatOf(p: ReturnType<typeof parseFlags>): Format {
  if (boolFlag(p, 'harmony') && boolFlag(p, 'json')) throw new UserError('usage', '--harmony and --json are exclusive');
  return boolFlag(p, 'harmony') ? 'harmony' : boolFlag(p, 'json') ? 'json' : 'text';
}

/** Exit status of `gptoss tool python` when the code raised or called sys.exit with a non-zero status. */
const CODE_FAILED_STATUS = 3;

async function callAndPrint(tool: Tool, call: ToolCall, format: Format): Promise<ToolOutput> {
  const output = await tool.run(call);
  const msg = toolOutputMessage(call, output);
  if (format === 'harmony') process.stdout.write(tokensToText(renderMessage(msg)) + '\n');
  else if (format === 'json') process.stdout.write(JSON.stringify(msg) + '\n');
  else process.stdout.write(output.content.endsWith('\n') ? output.content : output.content + '\n');
  return output;
}

async function runPython(argv: string[]): Promise<number> {
  const p = parseFlags(
    argv,
    {
      ...COMMON,
      code: { type: 'string', short: 'c' },
      timeout: { type: 'string' },
      stateful: { type: 'boolean' },
      'max-output': { type: 'string' },
      memory: { type: 'string' },
    },
    false,
  );
  if (boolFlag(p, 'help')) {
    console.log(USAGE);
    return 0;
  }
  let code = stringFlag(p, 'code');
  if (code === undefined) throw new UserError('usage', 'python needs --code CODE (or --code - to read stdin)');
  if (code === '-') code = await readStdin();
  const timeout = numberFlag(p, 'timeout', { min: 0.1, max: 3600 });
  const maxOutput = numberFlag(p, 'max-output', { min: 100, integer: true });
  const memory = numberFlag(p, 'memory', { min: 64, max: 4096, integer: true });
  // One call: no interpreter loaded ahead of time.
  const pool = new SandboxPool(memory === undefined ? {} : { memoryMb: memory }, 0);
  const tool = new PythonTool({
    stateful: boolFlag(p, 'stateful'),
    timeoutMs: timeout === undefined ? undefined : timeout * 1000,
    maxOutputChars: maxOutput,
    pool,
  });
  try {
    const output = await callAndPrint(tool, { recipient: 'python', content: code, channel: 'analysis' }, formatOf(p));
    if (output.error !== undefined) return 1;
    return output.exitStatus === undefined || output.exitStatus === 0 ? 0 : CODE_FAILED_STATUS;
  } finally {
    await tool.close();
    await pool.close();
  }
}

async function runBrowser(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    ...COMMON,
    docs: { type: 'string' },
    name: { type: 'string' },
    web: { type: 'string' },
    'base-url': { type: 'string' },
  });
  if (boolFlag(p, 'help')) {
    console.log(USAGE);
    return 0;
  }
  const docs = stringFlag(p, 'docs');
  const web = stringFlag(p, 'web');
  if ((docs === undefined) === (web === undefined)) throw new UserError('usage', 'browser needs exactly one of --docs DIR or --web exa|youcom');
  const calls: ToolCall[] = [];
  const pos = p.positionals;
  if (pos.length === 0) throw new UserError('usage', 'browser needs a call: (search|open|find) JSON_ARGS');
  for (let i = 0; i < pos.length; i += 2) {
    const fn = pos[i]!;
    const args = pos[i + 1];
    if (!['search', 'open', 'find'].includes(fn)) throw new UserError('usage', `unknown browser function "${fn}" (expected search, open or find)`);
    if (args === undefined) throw new UserError('usage', `browser ${fn} needs JSON arguments, e.g. '{"query": "..."}'`);
    try {
      JSON.parse(args);
    } catch (e) {
      throw new UserError('input', `invalid JSON arguments for ${fn}: ${(e as Error).message}`);
    }
    calls.push({ recipient: `browser.${fn}`, content: args, channel: 'analysis' });
  }
  let backend: BrowserBackend;
  let local: LocalDocsBackend | undefined;
  if (docs !== undefined) {
    const name = stringFlag(p, 'name');
    backend = local = await LocalDocsBackend.open(docs, name === undefined ? {} : { name });
  } else {
    const baseUrl = stringFlag(p, 'base-url');
    const opts = baseUrl === undefined ? {} : { baseUrl };
    if (web === 'exa') backend = new ExaBackend(opts);
    else if (web === 'youcom') backend = new YouComBackend(opts);
    else throw new UserError('usage', `unknown web backend "${web}" (expected exa or youcom)`);
  }
  const session = new BrowserSession(backend);
  const format = formatOf(p);
  let ok = true;
  for (const call of calls) ok = (await callAndPrint(session, call, format)).error === undefined && ok;
  if (local !== undefined) {
    // Say which files the collection left out, so a missing document has its reason.
    await local.indexed;
    for (const s of local.skipped) process.stderr.write(`gptoss tool: skipped ${s.path}: ${s.reason}\n`);
  }
  return ok ? 0 : 1;
}
