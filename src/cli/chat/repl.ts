// The interactive side of `gptoss chat`: a readline prompt, slash commands, and Ctrl-C that stops
// the answer being generated (at an empty prompt, a second Ctrl-C exits).
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { isUserError } from '../../errors.ts';
import { readRegularFile } from '../../files.ts';
import { conversationFromJSONText, conversationToJSON, messageText } from '../../harmony/index.ts';
import type { CitationSource } from '../../tools/index.ts';
import { parseEffort } from '../args.ts';
import { AnswerPrinter } from './printer.ts';
import type { ChatSession } from './session.ts';

export interface ReplSettings {
  showReasoning: boolean;
  raw: boolean;
  maxTokens: number | undefined;
  color: boolean;
  citations: CitationSource | undefined;
  /** Names of the enabled tools, for the banner. */
  tools: string[];
}

const HELP = `commands:
  /effort [low|medium|high]   show or set the reasoning effort
  /reasoning [on|off]         show or hide the chain of thought
  /reset                      start a new conversation
  /save FILE.json             save the conversation (harmony JSON)
  /load FILE.json             load a conversation saved with /save (or by the harmony library)
  /help                       this list
  /quit                       exit (also Ctrl-D, or Ctrl-C twice at an empty prompt)
Ctrl-C while the model answers stops the answer.`;

export async function runRepl(session: ChatSession, settings: ReplSettings): Promise<number> {
  const out = process.stdout;
  const paint = (code: string, s: string): string => (settings.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const info = session.engine.info;
  out.write(
    `gptoss chat: ${info.name}, context ${info.contextLength} tokens, reasoning ${session.reasoningEffort}` +
      `${settings.tools.length > 0 ? `, tools: ${settings.tools.join(', ')}` : ''}\n` +
      'Type a message, /help for commands. Ctrl-C stops an answer; Ctrl-D exits.\n',
  );

  const rl = createInterface({ input: process.stdin, output: out, terminal: true, historySize: 500, prompt: paint('1', '> ') });
  let answering: AbortController | undefined;
  let exitArmed = false;
  let closed = false;
  const queue: string[] = [];
  let pumping = false;

  rl.on('SIGINT', () => {
    if (answering !== undefined) {
      answering.abort();
      return;
    }
    if (rl.line.length > 0) {
      rl.write(null, { ctrl: true, name: 'e' });
      rl.write(null, { ctrl: true, name: 'u' });
      exitArmed = false;
      return;
    }
    if (exitArmed) {
      out.write('\n');
      rl.close();
      return;
    }
    exitArmed = true;
    out.write(`\n${paint('2', '(Ctrl-C again or /quit to exit)')}\n`);
    rl.prompt();
  });

  const say = (s: string): void => void out.write(`${s}\n`);
  const fail = (s: string): void => void out.write(`${paint('31', s)}\n`);

  /** Runs one line; returns true to quit. */
  const handle = async (line: string): Promise<boolean> => {
    const text = line.trim();
    if (text === '') return false;
    if (text.startsWith('/')) return command(text);
    const controller = new AbortController();
    answering = controller;
    const printer = new AnswerPrinter({
      out,
      side: out,
      showReasoning: settings.showReasoning,
      color: settings.color,
      thinkingIndicator: !settings.raw,
      stats: true,
      raw: settings.raw,
      ...(settings.citations !== undefined ? { citations: settings.citations } : {}),
    });
    try {
      await session.send(text, {
        signal: controller.signal,
        onEvent: (e) => printer.handle(e),
        ...(settings.maxTokens !== undefined ? { maxTokens: settings.maxTokens } : {}),
      });
    } catch (e) {
      if (!isUserError(e)) throw e;
      // The user message that could not be answered (e.g. the window is full) is taken back.
      const last = session.conversation.messages[session.conversation.messages.length - 1];
      if (last?.author.role === 'user') session.conversation.messages.pop();
      out.write('\n');
      fail(`error: ${e.message}${e.kind === 'context' ? ' (/reset starts a new conversation)' : ''}`);
    } finally {
      answering = undefined;
    }
    return false;
  };

  const command = async (text: string): Promise<boolean> => {
    const [name, ...rest] = text.split(/\s+/);
    const arg = rest.join(' ');
    switch (name) {
      case '/quit':
      case '/exit':
        return true;
      case '/help':
        say(HELP);
        return false;
      case '/effort':
        if (arg === '') say(`reasoning effort: ${session.reasoningEffort}`);
        else {
          try {
            session.setReasoningEffort(parseEffort(arg, '/effort'));
            say(`reasoning effort: ${session.reasoningEffort}`);
          } catch (e) {
            fail((e as Error).message);
          }
        }
        return false;
      case '/reasoning':
        if (arg === 'on' || arg === 'off') settings.showReasoning = arg === 'on';
        else if (arg !== '') {
          fail('/reasoning expects on or off');
          return false;
        }
        say(`reasoning is ${settings.showReasoning ? 'shown' : 'hidden'}`);
        return false;
      case '/reset':
        session.reset();
        say('new conversation');
        return false;
      case '/save':
        if (arg === '') fail('/save needs a file name');
        else {
          try {
            writeFileSync(arg, `${JSON.stringify(conversationToJSON(session.conversation), null, 2)}\n`);
            say(`saved ${session.conversation.messages.length} messages to ${arg}`);
          } catch (e) {
            fail(`/save ${arg}: ${(e as Error).message}`);
          }
        }
        return false;
      case '/load': {
        if (arg === '') {
          fail('/load needs a file name');
          return false;
        }
        let text: string;
        try {
          // Regular files only: reading a FIFO would block the whole chat until a writer came.
          text = readRegularFile(arg, 'input');
        } catch (e) {
          fail(`/load ${(e as Error).message}`);
          return false;
        }
        try {
          const convo = conversationFromJSONText(text, arg);
          session.load(convo);
          const lastAnswer = [...convo.messages].reverse().find((m) => m.author.role === 'assistant' && m.channel === 'final');
          say(`loaded ${convo.messages.length} messages from ${arg}${lastAnswer !== undefined ? `; last answer: ${messageText(lastAnswer).slice(0, 200)}` : ''}`);
        } catch (e) {
          fail(isUserError(e) ? `/load: ${e.message}` : `/load ${arg}: ${(e as Error).message}`);
        }
        return false;
      }
      default:
        fail(`unknown command ${name}; /help lists the commands`);
        return false;
    }
  };

  return new Promise<number>((resolve, reject) => {
    const pump = async (): Promise<void> => {
      if (pumping) return;
      pumping = true;
      try {
        while (queue.length > 0 && !closed) {
          exitArmed = false;
          if (await handle(queue.shift()!)) rl.close();
        }
      } catch (e) {
        pumping = false;
        rl.close();
        reject(e);
        return;
      }
      pumping = false;
      if (closed) resolve(0);
      else rl.prompt();
    };
    rl.on('line', (line) => {
      queue.push(line);
      void pump();
    });
    rl.on('close', () => {
      closed = true;
      answering?.abort();
      if (!pumping) resolve(0);
    });
    rl.prompt();
  });
}
