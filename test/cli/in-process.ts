// Runs the `gptoss` CLI's main() inside the test process, with stdin fed from a string and what the
// command writes to stdout/stderr collected. Tests use it where the subject is a command's output,
// not the process boundary: a child process costs a second of startup, main() costs microseconds.
// Calls are queued (stdin and the output streams are process-wide), so Promise.all stays correct.
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main, type CommandContext } from '../../src/cli/main.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

let queue: Promise<unknown> = Promise.resolve();

/**
 * `gptoss ...args` in-process: exit status and output, as a child process would give them. `env`
 * entries are set for the call ('' included) and restored after it; `context` gives the model
 * commands an engine (a scripted one) instead of loading a checkpoint.
 */
export function runCli(args: string[], stdin: string | Uint8Array = '', env: Record<string, string> = {}, context: CommandContext = {}): Promise<CliResult> {
  const result = queue.then(() => runNow(args, stdin, env, context));
  queue = result.catch(() => undefined);
  return result;
}

type Write = typeof process.stdout.write;

async function runNow(args: string[], stdin: string | Uint8Array, env: Record<string, string>, context: CommandContext): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const outWrite = process.stdout.write;
  const errWrite = process.stderr.write;
  // The commands write strings; the test runner reports through stdout in Buffers, which must
  // still reach it (they can arrive while a command runs).
  const capture = (original: Write, append: (s: string) => void): Write =>
    function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
      if (typeof chunk === 'string') {
        append(chunk);
        const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
        callback?.();
        return true;
      }
      return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as Write;
  process.stdout.write = capture(outWrite, (s) => (stdout += s));
  process.stderr.write = capture(errWrite, (s) => (stderr += s));
  const stdinDescriptor = Object.getOwnPropertyDescriptor(process, 'stdin');
  Object.defineProperty(process, 'stdin', { value: Readable.from([Buffer.from(stdin)]), configurable: true, writable: true });
  const savedEnv = Object.keys(env).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, env);
  try {
    const code = await main(args, context);
    return { code, stdout, stderr };
  } finally {
    for (const [k, v] of savedEnv) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    process.stdout.write = outWrite;
    process.stderr.write = errWrite;
    if (stdinDescriptor !== undefined) Object.defineProperty(process, 'stdin', stdinDescriptor);
  }
}

const BIN = fileURLToPath(new URL('../../bin/gptoss.js', import.meta.url));
const SCRIPTED_BIN = fileURLToPath(new URL('./scripted-gptoss.ts', import.meta.url));

/** The command line of `gptoss` as a process: bin/gptoss.js, or with a script file, gptoss on that scripted engine. */
export function cliCommand(script?: string): string[] {
  return script === undefined ? [BIN] : ['--import', 'tsx', SCRIPTED_BIN, script];
}

/**
 * `gptoss ...args` in a child process through bin/gptoss.js, for tests whose subject is the process
 * boundary (exit status, real stdin/stdout). `env` is added to this process's environment. With
 * `script` (a Script file, test/cli/scripted.ts), the model commands run on that scripted engine.
 */
export function runCliProcess(args: string[], stdin: string | Uint8Array = '', env: Record<string, string> = {}, script?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...cliCommand(script), ...args], { env: { ...process.env, ...env } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    child.stdin.end(stdin);
  });
}
