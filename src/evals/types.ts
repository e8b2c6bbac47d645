// Shared shapes of the evaluation harness: chat messages, the sampler seam (anything that answers
// a conversation: an OpenAI-compatible endpoint, our own engine), and per-case results.

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string;
}

export interface SamplerResponse {
  /** The final answer (the `final` channel). */
  text: string;
  /** Chain-of-thought, when the endpoint returns it (our server and vLLM do, as `reasoning`). */
  reasoning?: string;
  usage?: { inputTokens: number; outputTokens: number };
}

export interface SampleOptions {
  effort?: 'low' | 'medium' | 'high';
  temperature?: number;
  maxTokens?: number;
  signal?: AbortSignal;
}

/** Something that answers a conversation. */
export interface Sampler {
  /** Human-readable name for reports (a URL and model name, or a folder). */
  readonly label: string;
  complete(messages: readonly ChatMessage[], options?: SampleOptions): Promise<SamplerResponse>;
  close?(): Promise<void>;
}

/** One finished case, as appended to results.jsonl (one JSON object per line). */
export interface CaseResult {
  id: string;
  /** The case's score in [..]; for HealthBench it may be negative before clipping. */
  score: number;
  /** Named metrics of this case (HealthBench: overall_score plus one per tag). */
  metrics: Record<string, number>;
  prompt: ChatMessage[];
  response: SamplerResponse;
  /** Eval-specific details (rubric verdicts, the extracted answer, ...). */
  details: Record<string, unknown>;
  seconds: number;
}
