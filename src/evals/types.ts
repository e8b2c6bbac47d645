// Shared shapes of the evaluation harness: chat messages, the sampler seam (anything that answers
// a conversation: an OpenAI-compatible endpoint, our own engine), per-case results and the run's
// summary (shared by the runner that computes it and the report that renders it).
import type { MetricSummary } from './stats.ts';

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
  /** Why the endpoint stopped (`stop`, or `length` when the answer hit the token cap). */
  finishReason?: string;
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

/** What a report says about a run besides its results: its name, who answered, who graded, and how. */
export interface RunLabels {
  name: string;
  /** Labels of the model and grader. */
  modelLabel: string;
  graderLabel?: string;
  /** Settings shown in the report and summary.json (effort, max_tokens, timeout_s, subset, seed ...). */
  settings: Record<string, string | number>;
}

export interface RunSummary {
  name: string;
  metrics: Record<string, MetricSummary>;
  headline: MetricSummary;
  cases: number;
  /** Cases that could not be run or graded (retried by the next run with the same folder). */
  failed: { id: string; error: string }[];
  seconds: number;
  usage: { inputTokens: number; outputTokens: number };
  resumed: number;
  /** Answers cut off by the token cap (finish reason `length`). */
  truncated: number;
}
