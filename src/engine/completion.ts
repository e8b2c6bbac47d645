// One completion as it streams: each sampled token goes once through the lenient harmony parser,
// and the parse becomes the loop's message events, each message classified once by its recipient
// (recipient.ts). Final-channel text that may be the start of a stop string is held back. The same
// parse serves the harmony-aware logits processors (structured outputs) through CompletionView,
// so nothing parses the completion a second time.
import { StreamParser, messageText, type Message, type ParserState, type Role } from '../harmony/index.ts';
import type { GeneratedToken } from './generate.ts';
import type { RecipientClassifier, RecipientTarget } from './recipient.ts';
import { StopStringMatcher } from './generate.ts';

/** The events of one message as the completion streams. */
export type CompletionEvent =
  | { type: 'message_start'; role: Role; channel?: string; recipient?: string; contentType?: string; target: RecipientTarget }
  | { type: 'delta'; channel: string | undefined; recipient: string | undefined; target: RecipientTarget; text: string }
  | { type: 'message_done'; message: Message; target: RecipientTarget }
  | { type: 'token'; token: GeneratedToken; channel: string | undefined };

/** Where the completion stands, for logits processors that depend on the harmony structure. */
export interface CompletionView {
  readonly state: ParserState;
  readonly channel: string | undefined;
  /** The current message's target (meaningful while `state` is 'content'). */
  readonly target: RecipientTarget;
  /** Tokens of this completion parsed so far (the processors' `generated.length`). */
  readonly tokens: number;
  /** Messages begun so far; changes when a new message's content begins. */
  readonly messageIndex: number;
  /** Header tokens after the role since the current header began. */
  readonly headerTokens: readonly number[];
  /** Whether the current header's role is already known (the first header follows `<|start|>assistant`). */
  readonly roleKnown: boolean;
}

/**
 * A logits processor that also sees the parse of the completion so far. Plain LogitsProcessors
 * (logit bias, penalties) fit this type too.
 */
export type CompletionProcessor = (logits: Float32Array, generated: readonly number[], completion: CompletionView) => void;

export class CompletionStream implements CompletionView {
  private readonly parser = new StreamParser({ role: 'assistant', strict: false });
  private readonly emit: (e: CompletionEvent) => void;
  private readonly classifier: RecipientClassifier;
  private readonly stops: readonly string[];
  private matcher: StopStringMatcher | undefined;
  private shown = 0;
  private inContent = false;
  private emittedMessages = 0;
  /** The final text before the stop string, once one was hit. */
  private cutText: string | undefined;
  stopString: string | undefined;
  target: RecipientTarget = { kind: 'none' };
  /** The target of each message begun, in order. */
  private readonly targets: { recipient: string | undefined; target: RecipientTarget }[] = [];
  tokens = 0;
  messageIndex = 0;
  headerTokens: number[] = [];
  roleKnown = true;

  constructor(emit: (e: CompletionEvent) => void, classifier: RecipientClassifier, stopStrings: readonly string[] | undefined) {
    this.emit = emit;
    this.classifier = classifier;
    this.stops = (stopStrings ?? []).filter((s) => s !== '');
  }

  get state(): ParserState {
    return this.parser.state;
  }

  get channel(): string | undefined {
    return this.parser.currentChannel;
  }

  /** Processes one token; returns true when a stop string ended the answer. */
  push(token: number): boolean {
    const before = this.parser.state;
    const event = this.parser.process(token);
    this.tokens++;
    if (this.parser.state === 'header') {
      if (before !== 'header') {
        this.headerTokens = [];
        this.roleKnown = false;
      } else this.headerTokens.push(token);
    }
    if (!this.inContent && this.parser.state === 'content') this.startMessage();
    if (event.delta !== undefined && this.inContent) this.delta(event.delta);
    if (event.completed !== undefined) this.completeMessages();
    if (this.parser.state !== 'content') this.inContent = false;
    // A message that ended and a new one that began within this token (lenient recovery).
    if (!this.inContent && this.parser.state === 'content') this.startMessage();
    return this.stopString !== undefined;
  }

  /** Ends the completion: a message in progress (cut by a limit or a stop string) is closed as it stands. */
  end(): { message: Message; target: RecipientTarget }[] {
    this.parser.processEos();
    this.completeMessages();
    const messages = [...this.parser.messages];
    if (this.cutText !== undefined) {
      // The final message ends where the stop string began.
      const last = messages[messages.length - 1];
      if (last !== undefined) messages[messages.length - 1] = { ...last, content: [{ type: 'text', text: this.cutText }] };
    }
    return messages.map((message, i) => ({ message, target: this.targetOf(i, message) }));
  }

  /** The target worked out when message `i` began (a message is classified once). */
  private targetOf(i: number, m: Message): RecipientTarget {
    const known = this.targets[i];
    return known !== undefined && known.recipient === m.recipient ? known.target : this.classifier.classify(m.recipient);
  }

  private startMessage(): void {
    this.inContent = true;
    this.shown = 0;
    this.messageIndex++;
    const channel = this.parser.currentChannel;
    const recipient = this.parser.currentRecipient;
    this.target = this.classifier.classify(recipient);
    this.targets.push({ recipient, target: this.target });
    this.matcher = channel === 'final' && this.stops.length > 0 && recipient === undefined ? new StopStringMatcher(this.stops) : undefined;
    const e: CompletionEvent = { type: 'message_start', role: this.parser.currentRole ?? 'assistant', target: this.target };
    if (channel !== undefined) e.channel = channel;
    if (recipient !== undefined) e.recipient = recipient;
    const contentType = this.parser.currentContentType;
    if (contentType !== undefined) e.contentType = contentType;
    this.emit(e);
  }

  private delta(text: string): void {
    const channel = this.parser.currentChannel;
    const recipient = this.parser.currentRecipient;
    const target = this.target;
    if (this.matcher === undefined) {
      this.emit({ type: 'delta', channel, recipient, target, text });
      return;
    }
    const hit = this.matcher.push(text);
    const content = this.parser.currentContent;
    const safe = this.matcher.safeLength();
    if (safe > this.shown) {
      this.emit({ type: 'delta', channel, recipient, target, text: content.slice(this.shown, safe) });
      this.shown = safe;
    }
    if (hit !== undefined) {
      this.stopString = hit.stop;
      this.cutText = hit.textBefore;
    }
  }

  private completeMessages(): void {
    const msgs = this.parser.messages;
    for (; this.emittedMessages < msgs.length; this.emittedMessages++) {
      const m = msgs[this.emittedMessages]!;
      const target = this.targetOf(this.emittedMessages, m);
      // Text held back for a stop string that never came.
      if (this.matcher !== undefined && this.stopString === undefined && this.emittedMessages === msgs.length - 1) {
        const full = messageText(m);
        if (full.length > this.shown) this.emit({ type: 'delta', channel: m.channel, recipient: m.recipient, target, text: full.slice(this.shown) });
        this.matcher = undefined;
      }
      if (this.stopString !== undefined && this.emittedMessages === msgs.length - 1 && this.cutText !== undefined) {
        this.emit({ type: 'message_done', message: { ...m, content: [{ type: 'text', text: this.cutText }] }, target });
      } else {
        this.emit({ type: 'message_done', message: m, target });
      }
    }
  }
}
