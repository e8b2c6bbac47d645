// Host side of the python sandbox: starts pyodide in a child Node process locked down by Node's
// permission model (it may read only the pyodide package and its runner script: no host files, no
// child processes, no workers, no native addons), with no environment, no code generation from
// strings, a JS heap cap and a wasm heap cap; enforces the wall-clock timeout by killing the
// process, and truncates output. A small pool keeps one interpreter loaded ahead of time.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SandboxLimits {
  /** Wall-clock limit per call; the interpreter is killed when it is exceeded. Default 120 s. */
  timeoutMs?: number;
  /** Characters of output kept (head and tail); the rest is replaced by a truncation note. Default 20000. */
  maxOutputChars?: number;
  /** Linear memory of the interpreter (wasm heap). Default 1024 MiB. */
  memoryMb?: number;
  /** V8 heap of the child (JS objects). Default 256 MiB. */
  jsHeapMb?: number;
}

// ---- boot snapshot ---------------------------------------------------------------------------
// Booting pyodide costs ~5 s of CPU; starting from a memory snapshot of a booted interpreter costs
// under 1 s. The snapshot is made once (by a child that runs no user code) into the cache folder
// ($XDG_CACHE_HOME or ~/.cache)/gptoss, keyed by the pyodide build; GPTOSS_PYODIDE_SNAPSHOT=0
// turns it off.

let snapshotState: 'unknown' | 'making' | 'ready' | 'off' = 'unknown';

function snapshotFile(): string {
  const dir = pyodideDir();
  const version = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  const wasmSize = statSync(join(dir, 'pyodide.asm.wasm')).size;
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'gptoss', `pyodide-${version}-${wasmSize}.snapshot`);
}

/** The snapshot to boot from, if there is one; starts making it in the background otherwise. */
function usableSnapshot(limits: SandboxLimits): string | undefined {
  if (snapshotState === 'off' || snapshotState === 'making') return undefined;
  if (process.env.GPTOSS_PYODIDE_SNAPSHOT === '0') {
    snapshotState = 'off';
    return undefined;
  }
  let file: string;
  try {
    file = snapshotFile();
  } catch {
    snapshotState = 'off';
    return undefined;
  }
  if (existsSync(file)) {
    snapshotState = 'ready';
    return file;
  }
  snapshotState = 'making';
  try {
    mkdirSync(dirname(file), { recursive: true });
  } catch {
    snapshotState = 'off';
    return undefined;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  const config = JSON.stringify({ pyodideDir: pyodideDir(), makeSnapshot: tmp, snapshotFile: file });
  const flags = [...sandboxNodeFlags(limits), `--allow-fs-read=${tmp}`, `--allow-fs-write=${tmp}`, `--allow-fs-write=${file}`];
  const maker = spawn(process.execPath, [...flags, RUNNER, config], { env: {}, cwd: pyodideDir(), stdio: 'ignore', detached: true });
  maker.unref();
  maker.once('exit', (code) => {
    if (code === 0 && existsSync(file)) {
      snapshotState = 'ready';
      return;
    }
    try {
      unlinkSync(tmp);
    } catch {
      /* nothing written */
    }
    snapshotState = 'off';
  });
  maker.once('error', () => {
    snapshotState = 'off';
  });
  return undefined;
}

/** A snapshot that failed to boot is not used again. */
function rejectSnapshot(file: string): void {
  snapshotState = 'off';
  try {
    unlinkSync(file);
  } catch {
    /* already gone */
  }
}

export interface RunResult {
  output: string;
  /** The call hit the wall-clock limit and the interpreter was killed. */
  timedOut: boolean;
  /** The interpreter died (memory, crash) or was killed for flooding output. */
  crashed: boolean;
  /** Characters dropped from the middle of the output. */
  droppedChars: number;
  /** The code's exit status when it ran to its end: 0, 1 for an uncaught exception, or the status given to sys.exit. */
  exitStatus?: number;
}

const BOOT_TIMEOUT_MS = 180_000;
const RUNNER = fileURLToPath(new URL('./runner.mjs', import.meta.url));

function pyodideDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('pyodide/package.json'));
}

/**
 * Node flags of the sandbox process: the permission model with read access to the pyodide
 * package and the runner only (no writes, no child processes, no workers, no addons), no
 * eval/new Function, and a JS heap cap.
 */
export function sandboxNodeFlags(limits: SandboxLimits = {}): string[] {
  const dir = pyodideDir();
  return [
    '--experimental-permission',
    `--allow-fs-read=${dir}/*`,
    `--allow-fs-read=${RUNNER}`,
    '--disallow-code-generation-from-strings',
    `--max-old-space-size=${limits.jsHeapMb ?? 256}`,
    '--no-warnings',
  ];
}

const live = new Set<ChildProcessWithoutNullStreams>();
let exitHookInstalled = false;
function track(child: ChildProcessWithoutNullStreams): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Never leave interpreters behind when the host exits.
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/** Keeps the head and the tail of a long output. */
class OutputBuffer {
  private head = '';
  private tail = '';
  dropped = 0;
  total = 0;
  constructor(private readonly limit: number) {}
  add(s: string): void {
    this.total += s.length;
    const half = Math.floor(this.limit / 2);
    if (this.head.length < half) {
      const take = Math.min(half - this.head.length, s.length);
      this.head += s.slice(0, take);
      s = s.slice(take);
    }
    if (s === '') return;
    this.tail += s;
    const keep = this.limit - half;
    if (this.tail.length > keep * 2) {
      this.dropped += this.tail.length - keep;
      this.tail = this.tail.slice(this.tail.length - keep);
    }
  }
  text(): string {
    const keep = this.limit - Math.floor(this.limit / 2);
    let tail = this.tail;
    let dropped = this.dropped;
    if (tail.length > keep) {
      dropped += tail.length - keep;
      tail = tail.slice(tail.length - keep);
    }
    this.dropped = dropped;
    if (dropped === 0) return this.head + tail;
    return `${this.head}\n[... ${dropped} characters of output truncated ...]\n${tail}`;
  }
}

/** One sandboxed interpreter process. Runs one call at a time. */
export class SandboxProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  readonly ready: Promise<void>;
  private buffer = '';
  private nextId = 1;
  private current: { id: number; onChunk: (s: string) => void; onDone: (fatal: boolean, status: number | undefined) => void } | null = null;
  private exited = false;
  private stderr = '';
  private readonly exitWaiters: (() => void)[] = [];
  private started = false;
  private killed = false;
  /** The snapshot this interpreter booted from, if any. */
  readonly bootedFromSnapshot: string | undefined;

  constructor(limits: SandboxLimits = {}) {
    const dir = pyodideDir();
    const memoryMb = limits.memoryMb ?? 1024;
    const snapshot = usableSnapshot(limits);
    const config = JSON.stringify({ pyodideDir: dir, maxWasmBytes: memoryMb * 1024 * 1024, snapshot });
    const args = [...sandboxNodeFlags(limits), ...(snapshot === undefined ? [] : [`--allow-fs-read=${snapshot}`]), RUNNER, config];
    this.bootedFromSnapshot = snapshot;
    this.child = spawn(process.execPath, args, { env: {}, cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    track(this.child);
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d: string) => {
      if (this.stderr.length < 4000) this.stderr += d;
    });
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise<void>((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    // A pooled process may never be used: keep rejections of `ready` from being unhandled.
    this.ready.catch(() => {});
    // An interpreter that cannot boot within BOOT_TIMEOUT_MS (a starved machine) is given up.
    const bootTimer = setTimeout(() => this.kill(), BOOT_TIMEOUT_MS);
    bootTimer.unref();
    this.ready.then(() => clearTimeout(bootTimer), () => clearTimeout(bootTimer));
    this.child.stdout.on('data', (d: string) => {
      this.buffer += d;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        let msg: { type?: string; id?: number; chunk?: string; done?: boolean; fatal?: boolean; status?: unknown };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          continue;
        }
        if (msg.type === 'ready') {
          this.started = true;
          readyResolve();
        }
        else if (this.current !== null && msg.id === this.current.id) {
          if (typeof msg.chunk === 'string') this.current.onChunk(msg.chunk);
          if (msg.done === true) this.current.onDone(msg.fatal === true, typeof msg.status === 'number' ? msg.status : undefined);
        }
      }
    });
    this.child.once('exit', () => {
      this.exited = true;
      if (!this.started && this.bootedFromSnapshot !== undefined && !this.killed) rejectSnapshot(this.bootedFromSnapshot);
      readyReject(new Error(`python sandbox exited during startup${this.stderr ? ': ' + this.stderr.trim().split('\n').slice(-1)[0] : ''}`));
      for (const w of this.exitWaiters.splice(0)) w();
    });
    this.child.once('error', (e) => readyReject(e));
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Detaches the process from the event loop (a warm pool member must not keep the host alive). */
  unref(): void {
    this.child.unref();
    (this.child.stdout as unknown as { unref?: () => void }).unref?.();
    (this.child.stderr as unknown as { unref?: () => void }).unref?.();
    (this.child.stdin as unknown as { unref?: () => void }).unref?.();
  }

  ref(): void {
    this.child.ref();
    (this.child.stdout as unknown as { ref?: () => void }).ref?.();
    (this.child.stderr as unknown as { ref?: () => void }).ref?.();
    (this.child.stdin as unknown as { ref?: () => void }).ref?.();
  }

  async run(code: string, opts: { stateful: boolean; timeoutMs: number; maxOutputChars: number; signal?: AbortSignal }): Promise<RunResult> {
    if (opts.signal !== undefined) {
      const signal = opts.signal;
      await new Promise<void>((res, rej) => {
        const onAbort = (): void => {
          this.kill();
          rej(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        this.ready.then(
          () => {
            signal.removeEventListener('abort', onAbort);
            res();
          },
          (e: unknown) => {
            signal.removeEventListener('abort', onAbort);
            rej(e instanceof Error ? e : new Error(String(e)));
          },
        );
      });
    } else await this.ready;
    if (this.exited) return { output: '', timedOut: false, crashed: true, droppedChars: 0 };
    const out = new OutputBuffer(opts.maxOutputChars);
    const id = this.nextId++;
    return new Promise<RunResult>((resolvePromise) => {
      let settled = false;
      const finish = (r: Omit<RunResult, 'output' | 'droppedChars'>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        this.current = null;
        const output = out.text();
        resolvePromise({ ...r, output, droppedChars: out.dropped });
      };
      const timer = setTimeout(() => {
        this.kill();
        finish({ timedOut: true, crashed: false });
      }, opts.timeoutMs);
      const onAbort = (): void => {
        this.kill();
        finish({ timedOut: false, crashed: true });
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.exitWaiters.push(() => finish({ timedOut: false, crashed: true }));
      this.current = {
        id,
        onChunk: (s) => {
          out.add(s);
          // A flood of output (print in an endless loop) is stopped long before the timeout.
          if (out.total > opts.maxOutputChars * 50 + 1_000_000) {
            this.kill();
            finish({ timedOut: false, crashed: true });
          }
        },
        onDone: (fatal, status) => finish(fatal || status === undefined ? { timedOut: false, crashed: fatal } : { timedOut: false, crashed: false, exitStatus: status }),
      };
      this.child.stdin.write(JSON.stringify({ id, code, stateful: opts.stateful }) + '\n');
    });
  }

  kill(): void {
    this.killed = true;
    if (!this.exited) this.child.kill('SIGKILL');
  }

  /** Resolves once the process has exited. */
  exitedPromise(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((r) => this.exitWaiters.push(r));
  }
}

/** Keeps `size` interpreters loaded ahead of time; each acquired one belongs to the caller. */
export class SandboxPool {
  private readonly warm: SandboxProcess[] = [];
  private closed = false;
  constructor(
    private readonly limits: SandboxLimits = {},
    private readonly size = 1,
  ) {}

  acquire(): SandboxProcess {
    if (this.closed) throw new Error('sandbox pool is closed');
    let p = this.warm.shift();
    while (p !== undefined && !p.alive) p = this.warm.shift();
    const proc = p ?? new SandboxProcess(this.limits);
    proc.ref();
    this.fill();
    return proc;
  }

  /** Starts the warm interpreters now (e.g. when a chat session enables python). */
  fill(): void {
    while (!this.closed && this.warm.length < this.size) {
      const p = new SandboxProcess(this.limits);
      p.unref();
      this.warm.push(p);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = this.warm.splice(0);
    for (const p of all) p.kill();
    await Promise.all(all.map((p) => p.exitedPromise()));
  }
}

export const SANDBOX_RUNNER_PATH = resolve(RUNNER);
