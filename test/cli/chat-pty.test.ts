// The interactive chat through a pseudo-terminal (util-linux `script` allocates it): type a prompt
// and read the streamed answer, /effort, Ctrl-C during an answer (stops it, not the program),
// Ctrl-C at an empty prompt, /save in the harmony JSON shape, /reset, /load, /reasoning off, /quit;
// /load of a folder or a FIFO is one line, not a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { conversationFromJSONText, messageText } from '../../src/harmony/index.ts';
import { cliCommand } from './in-process.ts';

const hasScript = spawnSync('script', ['--version']).status === 0;

/** A program on a pseudo-terminal: keys in, screen text (ANSI codes stripped) out. */
class Pty {
  private readonly child: ChildProcessWithoutNullStreams;
  raw = '';
  readonly exited: Promise<number | null>;
  /** Called after every chunk of output: the pending waitFor checks. */
  private readonly onOutput = new Set<() => void>();

  constructor(command: string, env: Record<string, string>) {
    this.child = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const append = (d: Buffer) => {
      this.raw += d.toString();
      for (const check of [...this.onOutput]) check();
    };
    this.child.stdout.on('data', append);
    this.child.stderr.on('data', append);
    this.exited = new Promise((resolve) => this.child.on('close', resolve));
  }

  get screen(): string {
    // eslint-disable-next-line no-control-regex
    return this.raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
  }

  type(keys: string): void {
    this.child.stdin.write(keys);
  }

  /**
   * Resolves when the screen after `from` matches (checked on each chunk of output); returns the
   * offset after the match. The timeout is only a safety net that fails with the screen.
   */
  waitFor(pattern: RegExp, from = 0, timeoutMs = 120_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = pattern.exec(this.screen.slice(from));
        if (m === null) return false;
        finish();
        resolve(from + m.index + m[0].length);
        return true;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out waiting for ${pattern}; screen:\n${this.screen}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.onOutput.delete(check);
      };
      if (!check()) this.onOutput.add(check);
    });
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

test('interactive chat on a terminal: prompt, stream, /effort, Ctrl-C, /save, /load, /quit', { skip: hasScript ? false : 'util-linux script not available' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-pty-'));
  // Long enough (thousands of steps of 15 ms) that Ctrl-C lands mid-answer however slow the machine
  // is when the test reads the first numbers.
  const count = Array.from({ length: 3000 }, (_, i) => `n${i}`).join(' ');
  const scripted = join(dir, 'script.json');
  writeFileSync(
    scripted,
    JSON.stringify({
      delayMs: 15,
      completions: [
        '<|channel|>analysis<|message|>Greeting; answer kindly.<|end|><|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>',
        `<|channel|>final<|message|>Counting: ${count}<|return|>`,
        '<|channel|>analysis<|message|>Private musings.<|end|><|start|>assistant<|channel|>final<|message|>Still here.<|return|>',
      ],
    }),
  );
  const pty = new Pty(`${process.execPath} ${cliCommand(scripted).join(' ')} chat --show-reasoning`, { NO_COLOR: '' });
  try {
    let at = await pty.waitFor(/> /);
    pty.type('Hi there\r');
    at = await pty.waitFor(/Greeting; answer kindly\.\nHello! How can I help\?\n\(\d+ tokens, [\d.]+ tok\/s, \d+ reasoning; prompt \d+ tokens/, at);
    assert.match(pty.raw, /\x1b\[2mGreeting/, 'reasoning is dim');
    at = await pty.waitFor(/> /, at);

    pty.type('/effort high\r');
    at = await pty.waitFor(/reasoning effort: high\n/, at);
    at = await pty.waitFor(/> /, at);

    pty.type('Count to 3000\r');
    at = await pty.waitFor(/Counting: n0 n1 n2/, at);
    pty.type('\x03');
    at = await pty.waitFor(/\[stopped\]\n/, at);
    assert.ok(!pty.screen.includes('n2999'), 'the answer was cut short');
    at = await pty.waitFor(/> /, at);

    pty.type('\x03');
    at = await pty.waitFor(/\(Ctrl-C again or \/quit to exit\)/, at);

    const saved = join(dir, 'convo.json');
    pty.type(`/save ${saved}\r`);
    at = await pty.waitFor(/saved \d+ messages/, at);
    // The file is harmony's JSON shape: it reads back as the same conversation.
    const json = JSON.parse(readFileSync(saved, 'utf8')) as { messages: { role: string }[] };
    assert.deepEqual(json.messages.slice(0, 2).map((m) => m.role), ['system', 'user']);
    const convo = conversationFromJSONText(readFileSync(saved, 'utf8'));
    const sys = convo.messages[0]!.content[0]!;
    assert.equal(sys.type === 'system_content' ? sys.reasoningEffort : undefined, 'high');
    assert.equal(messageText(convo.messages[1]!), 'Hi there');
    assert.ok(convo.messages.some((m) => m.channel === 'final' && messageText(m) === 'Hello! How can I help?'));
    const partial = convo.messages.at(-1)!;
    assert.equal(partial.channel, 'final');
    assert.match(messageText(partial), /^Counting: n0 n1/);

    pty.type('/reset\r');
    at = await pty.waitFor(/new conversation\n/, at);
    pty.type(`/load ${saved}\r`);
    at = await pty.waitFor(new RegExp(`loaded ${convo.messages.length} messages .*last answer: Counting: n0`), at);

    pty.type('/reasoning off\r');
    at = await pty.waitFor(/reasoning is hidden\n/, at);
    pty.type('Are you there?\r');
    const before = at;
    at = await pty.waitFor(/Still here\.\n/, at);
    const answer = pty.screen.slice(before, at);
    assert.ok(!answer.includes('Private musings'), 'hidden reasoning is not shown');
    assert.ok(answer.includes('thinking…'), 'a thinking indicator stands in for it');
    at = await pty.waitFor(/> /, at);
    pty.type('/quit\r');
    assert.equal(await pty.exited, 0);
    assert.ok(existsSync(saved));
  } finally {
    pty.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('/load of a folder or a FIFO is one line on the prompt, and the chat goes on', { skip: hasScript && mkfifoWorks() ? false : 'util-linux script or mkfifo not available' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-pty-load-'));
  const scripted = join(dir, 'script.json');
  writeFileSync(scripted, JSON.stringify({ completions: ['<|channel|>final<|message|>Still here.<|return|>'] }));
  const fifo = join(dir, 'convo.json');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const pty = new Pty(`${process.execPath} ${cliCommand(scripted).join(' ')} chat`, { NO_COLOR: '' });
  try {
    let at = await pty.waitFor(/> /);
    pty.type(`/load ${dir}\r`);
    at = await pty.waitFor(new RegExp(`/load ${escapeRegExp(dir)}: is a folder, not a file\n`), at);
    // Reading a FIFO used to block the whole chat until a writer came.
    pty.type(`/load ${fifo}\r`);
    at = await pty.waitFor(new RegExp(`/load ${escapeRegExp(fifo)}: is a named pipe \\(FIFO\\), not a regular file\n`), at);
    pty.type('Are you there?\r');
    at = await pty.waitFor(/Still here\.\n/, at);
    await pty.waitFor(/> /, at);
    pty.type('/quit\r');
    assert.equal(await pty.exited, 0);
  } finally {
    pty.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

function mkfifoWorks(): boolean {
  return process.platform !== 'win32' && spawnSync('mkfifo', ['--version']).status === 0;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
