// The `python` tool: the model's code runs in the pyodide sandbox (sandbox.ts). Stateless by
// default like the reference (a fresh interpreter per call, its stdout+stderr returned), or
// stateful like the Jupyter notebook the model was trained with (one interpreter per conversation,
// the value of a trailing expression shown). The namespace text is the matching official one.
import { pythonToolNamespace, type ToolNamespaceConfig } from '../../harmony/index.ts';
import type { Tool, ToolCall, ToolOutput } from '../tool.ts';
import { SandboxPool, SandboxProcess, type SandboxLimits } from './sandbox.ts';

/** The reference's answer when the code printed nothing. */
export const NO_OUTPUT_WARNING = '[WARN] No output available. Use print() to output anything to stdout to receive the output';

/** The reference's description for its stateless (container per call) backend. */
export const STATELESS_DESCRIPTION =
  'Use this tool to execute STATELESS Python code in your chain of thought. The code will not be shown to the user. This tool should be used for internal reasoning, but not for code that is intended to be visible to the user (e.g. when creating plots, tables, or files).\n' +
  'When you send a message containing python code to python, it will be executed in a stateless docker container, and the stdout of that process will be returned to you. You have to use print statements to access the output.\n\n' +
  'IMPORTANT: Your python environment is not shared between calls. You will have to pass your entire code each time.';

export interface PythonToolOptions extends SandboxLimits {
  /** One interpreter for the whole conversation (notebook semantics). Default false (stateless). */
  stateful?: boolean;
  /** Interpreters loaded ahead of time; shared between tools with the same limits. */
  pool?: SandboxPool;
}

const DEFAULT_TIMEOUT_MS = 120_000;
const DEFAULT_MAX_OUTPUT = 20_000;

/** Python's float repr for a number of seconds (120 -> "120.0"). */
function pyFloat(seconds: number): string {
  return Number.isInteger(seconds) ? `${seconds}.0` : String(seconds);
}

let sharedPool: SandboxPool | undefined;
/** The process-wide pool for default limits. */
export function defaultSandboxPool(): SandboxPool {
  sharedPool ??= new SandboxPool({});
  return sharedPool;
}

export class PythonTool implements Tool {
  readonly name = 'python';
  readonly stateful: boolean;
  private readonly timeoutMs: number;
  private readonly maxOutputChars: number;
  private readonly pool: SandboxPool;
  private readonly ownsPool: boolean;
  private session: SandboxProcess | undefined;
  /** Calls run one after another (one interpreter per conversation). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: PythonToolOptions = {}) {
    this.stateful = options.stateful ?? false;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxOutputChars = options.maxOutputChars ?? DEFAULT_MAX_OUTPUT;
    const customLimits = options.memoryMb !== undefined || options.jsHeapMb !== undefined;
    this.ownsPool = options.pool === undefined && customLimits;
    this.pool = options.pool ?? (customLimits ? new SandboxPool({ memoryMb: options.memoryMb, jsHeapMb: options.jsHeapMb }) : defaultSandboxPool());
  }

  namespace(): ToolNamespaceConfig {
    if (!this.stateful) return { name: 'python', description: STATELESS_DESCRIPTION, tools: [] };
    const ns = pythonToolNamespace();
    const description = (ns.description ?? '').replace('time out after 120.0 seconds', `time out after ${pyFloat(this.timeoutMs / 1000)} seconds`);
    return { ...ns, description };
  }

  /** Loads an interpreter in the background so the first call does not wait for it. */
  warm(): void {
    this.pool.fill();
  }

  run(call: ToolCall, signal?: AbortSignal): Promise<ToolOutput> {
    const next = this.queue.then(() => this.execute(call, signal));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async execute(call: ToolCall, signal?: AbortSignal): Promise<ToolOutput> {
    const author = 'python';
    const code = call.content;
    let proc: SandboxProcess;
    if (this.stateful) {
      if (this.session === undefined || !this.session.alive) this.session = this.pool.acquire();
      proc = this.session;
    } else proc = this.pool.acquire();
    // An interpreter that fails to boot from the snapshot is replaced by one booted normally.
    try {
      await proc.ready;
    } catch {
      if (proc.bootedFromSnapshot !== undefined) {
        proc = this.pool.acquire();
        if (this.stateful) this.session = proc;
      }
    }
    let result;
    try {
      result = await proc.run(code, { stateful: this.stateful, timeoutMs: this.timeoutMs, maxOutputChars: this.maxOutputChars, signal });
    } catch (e) {
      proc.kill();
      if (this.stateful) this.session = undefined;
      if (signal?.aborted === true) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      return { author, content: `[ERROR] the python sandbox could not start: ${msg}`, error: 'sandbox failed to start' };
    } finally {
      if (!this.stateful) proc.kill();
    }
    if (signal?.aborted === true) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
    let output = result.output;
    const lost = this.stateful ? ' The interpreter was restarted: variables, imports and files from earlier calls are lost.' : '';
    if (result.timedOut) {
      if (this.stateful) this.session = undefined;
      const note = `[ERROR] Execution timed out after ${pyFloat(this.timeoutMs / 1000)} seconds and was stopped.${lost}`;
      return { author, content: output.trim() === '' ? note : `${output.replace(/\n?$/, '\n')}${note}`, error: 'timeout' };
    }
    if (result.crashed) {
      if (this.stateful) this.session = undefined;
      const note = `[ERROR] The python process was stopped (out of memory, too much output, or a crash).${lost}`;
      return { author, content: output.trim() === '' ? note : `${output.replace(/\n?$/, '\n')}${note}`, error: 'crashed' };
    }
    if (output.trim() === '') output = NO_OUTPUT_WARNING;
    return result.exitStatus === undefined ? { author, content: output } : { author, content: output, exitStatus: result.exitStatus };
  }

  async close(): Promise<void> {
    await this.queue;
    this.session?.kill();
    this.session = undefined;
    if (this.ownsPool) await this.pool.close();
  }
}
