// Structured outputs inside a harmony completion: the JSON constraint applies only to the content of
// the final answer (text.format / response_format) or of a strict function call's arguments; the
// reasoning before it stays free. When the token budget runs low before the answer began, the
// processor steers the completion into a final message (`<|end|><|start|>assistant<|channel|>final
// <|message|>`) and then the shortest completion of the JSON, so even a cut-short answer parses.
// Where the completion stands (header, channel, which tool the message is for) is read from the
// agent loop's own parse (CompletionView), not parsed again.
import type { CompletionProcessor, CompletionView } from './completion.ts';
import { JsonConstraint, tokenBytesOf, type JsonSchema, type TokenBytes } from './constrained.ts';
import type { LogitsProcessor } from './sampler.ts';
import { SPECIAL, getTokenizer, type Tokenizer } from '../tokenizer/index.ts';

export interface StructuredOptions {
  /** Schema of the final answer (json_object is `{type:'object'}`). */
  finalSchema?: JsonSchema;
  /** Schemas of strict functions, by function name. */
  functionSchemas?: ReadonlyMap<string, JsonSchema>;
  /** tool_choice "required" (or a named function): the model may not answer on the final channel. */
  forbidFinal?: boolean;
  /** Tokens the whole run may generate (max_output_tokens); enables the budget steering. */
  maxTokens?: number;
  tokenizer?: Tokenizer;
}

/** Header tokens of the final channel after the role: `<|channel|>final<|message|>`. */
function finalHeader(tok: Tokenizer): number[] {
  return [SPECIAL.channel, ...tok.encodeOrdinary('final'), SPECIAL.message];
}

export class StructuredOutput {
  private readonly tok: Tokenizer;
  private readonly vocab: TokenBytes;
  private readonly options: StructuredOptions;
  /** Tokens sampled over the whole run (all generations of the agent loop). */
  private total = 0;
  /** The completion the constraint belongs to, and the message in it. */
  private completion: CompletionView | undefined;
  private constraintMessage = -1;
  private constraint: LogitsProcessor | undefined;
  private remaining = Infinity;
  /** Bytes of the shortest valid final answer (computed on first need). */
  private shortestAnswer: number | undefined;
  private readonly headerAssistant: number[];
  private readonly headerFinal: number[];
  /** Tokens that start the word `final` after `<|channel|>`. */
  private readonly finalWord: number[];

  constructor(options: StructuredOptions) {
    this.options = options;
    this.tok = options.tokenizer ?? getTokenizer();
    this.vocab = tokenBytesOf(this.tok);
    this.headerAssistant = this.tok.encodeOrdinary('assistant');
    this.headerFinal = finalHeader(this.tok);
    this.finalWord = [...new Set([this.tok.encodeOrdinary('final')[0]!, ...this.tok.encodeOrdinary('fin').slice(0, 1), ...this.tok.encodeOrdinary('f').slice(0, 1)])];
  }

  /** Whether these options constrain anything (a processor is worth building). */
  static needed(options: StructuredOptions): boolean {
    return options.finalSchema !== undefined || (options.functionSchemas?.size ?? 0) > 0 || options.forbidFinal === true;
  }

  readonly processor: CompletionProcessor = (logits, generated, completion) => {
    // A new generation, or the message the constraint was made for has ended.
    if (completion !== this.completion || completion.state !== 'content' || completion.messageIndex !== this.constraintMessage) this.constraint = undefined;
    this.completion = completion;
    this.total++;
    const remaining = this.options.maxTokens === undefined ? Infinity : this.options.maxTokens - this.total + 1;
    this.remaining = remaining;
    if (completion.state === 'content') this.ensureConstraint(completion);
    if (this.options.forbidFinal === true && completion.state === 'header' && completion.headerTokens.at(-1) === SPECIAL.channel) {
      // A call is required: the channel cannot be `final` (the model goes on with analysis or a call).
      for (const t of this.finalWord) logits[t] = -Infinity;
    }
    if (completion.state === 'header' && this.options.finalSchema !== undefined) {
      // A completion that stops inside a header never reaches the answer the schema constrains (a
      // random-weight model did, and the reply was "completed" with no output): the header must
      // reach <|message|>.
      logits[SPECIAL.return] = -Infinity;
      logits[SPECIAL.call] = -Infinity;
      logits[SPECIAL.end] = -Infinity;
    }
    if (this.constraint !== undefined) {
      this.constraint(logits, generated);
      return;
    }
    if (this.options.finalSchema === undefined || remaining === Infinity) return;
    // Reserve room for closing the current message, the final header and the shortest JSON.
    this.shortestAnswer ??= new JsonConstraint(this.options.finalSchema, this.vocab, { stopTokens: [SPECIAL.return] }).completion().length;
    const needed = this.shortestAnswer + 1 + this.headerFinal.length + this.headerAssistant.length + 2;
    if (remaining > needed + 2) return;
    const forced = this.steer(completion);
    if (forced !== undefined) {
      logits.fill(-Infinity);
      logits[forced] = 0;
    }
  };

  /** Starts the JSON constraint when the current message is one that must be JSON. */
  private ensureConstraint(completion: CompletionView): void {
    if (this.constraint !== undefined) return;
    const target = completion.target;
    let schema: JsonSchema | undefined;
    let stop: number[] = [SPECIAL.return];
    if (target.kind === 'none' && completion.channel === 'final') schema = this.options.finalSchema;
    else if (target.kind === 'function') {
      schema = this.options.functionSchemas?.get(target.name);
      stop = [SPECIAL.call];
    }
    if (schema === undefined) return;
    // The JSON starts at the next token: the one after `<|message|>`.
    const constraint = new JsonConstraint(schema, this.vocab, { stopTokens: stop });
    this.constraint = constraint.processor({ start: completion.tokens, remaining: () => this.remaining });
    this.constraintMessage = completion.messageIndex;
  }

  /** The next token on the shortest way into a final message, from wherever the completion is. */
  private steer(completion: CompletionView): number | undefined {
    switch (completion.state) {
      case 'content':
        return SPECIAL.end;
      case 'expect-start':
        return SPECIAL.start;
      case 'header': {
        const target = completion.roleKnown ? this.headerFinal : [...this.headerAssistant, ...this.headerFinal];
        const h = completion.headerTokens;
        const isPrefix = h.length < target.length && h.every((t, i) => t === target[i]);
        return isPrefix ? target[h.length] : SPECIAL.message;
      }
    }
  }
}
