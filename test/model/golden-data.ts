// Reads the golden cases (test/fixtures/golden/*, and fullvocab-h32-l2 from ../shared/golden when
// present): golden.json plus its raw little-endian arrays.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ArrayRef { file: string; dtype: string; shape: number[]; positions?: number[] }
export interface GoldenSequence {
  name: string;
  tokens: number[];
  length: number;
  logits: { fp32: ArrayRef; bf16: ArrayRef };
  logits_columns?: { columns: number[]; fp32: ArrayRef; bf16: ArrayRef };
  argmax_fp32: number[];
  activations_fp32?: Record<string, ArrayRef>;
  routing_fp32?: { layer: number; gate_logits: ArrayRef; expert_indices: number[][]; expert_weights: ArrayRef }[];
}
export interface Golden {
  case: string;
  sequences: GoldenSequence[];
  greedy_fp32: { prompt: number[]; max_new_tokens: number; generated: number[]; logprobs: number[] };
  mxfp4_dequant: { blocks: string; scales: string; expert: number; values: ArrayRef }[];
  rope: { concentration: number; inv_freq: number[]; cos: ArrayRef; sin: ArrayRef };
  tolerances: { fp32: { max_abs: number }; fp32_activations: { max_abs: number }; bf16: { max_abs: number; mean_abs: number } };
}

export interface GoldenCase { name: string; dir: string; golden: Golden }

const FIXTURES = new URL('../fixtures/golden/', import.meta.url).pathname;
export const FULLVOCAB_DIR = new URL('../../../shared/golden/fullvocab-h32-l2', import.meta.url).pathname;

export function goldenCase(dir: string): GoldenCase {
  const golden = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8')) as Golden;
  return { name: golden.case, dir, golden };
}

/** The three small cases always; the fullvocab case when ../shared/golden holds it. */
export function goldenCases(): GoldenCase[] {
  const cases = ['gqa4-l2-e8k4', 'mqa-l4-e6k3', 'hd64-l2-e32k4'].map((n) => goldenCase(join(FIXTURES, n)));
  if (existsSync(join(FULLVOCAB_DIR, 'golden.json'))) cases.push(goldenCase(FULLVOCAB_DIR));
  return cases;
}

export function hasFullvocab(): boolean {
  return existsSync(join(FULLVOCAB_DIR, 'golden.json'));
}

export function readF32(c: GoldenCase, ref: ArrayRef): Float32Array {
  if (ref.dtype !== 'float32') throw new Error(`unexpected dtype ${ref.dtype}`);
  const buf = readFileSync(join(c.dir, ref.file));
  const out = new Float32Array(buf.byteLength / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

export function argmaxRow(x: Float32Array, row: number, width: number): number {
  let best = 0;
  for (let i = 1; i < width; i++) if (x[row * width + i]! > x[row * width + best]!) best = i;
  return best;
}

/** What the engine-level golden checks need of an engine (LocalEngine has it). */
export interface GoldenEngine {
  createSequence(): { readonly id: number };
  release(sequence: { readonly id: number }): void;
  stepAll(sequence: { readonly id: number }, tokens: readonly number[]): Promise<Float32Array>;
  step(batch: readonly { sequence: { readonly id: number }; tokens: readonly number[] }[]): Promise<Float32Array[]>;
}

/** Feeds `s` whole through a fresh sequence: every position's logits, and those at the golden positions packed. */
export async function goldenLogits(engine: GoldenEngine, s: GoldenSequence, vocab: number): Promise<{ all: Float32Array; atPositions: Float32Array }> {
  const seq = engine.createSequence();
  const all = await engine.stepAll(seq, s.tokens);
  engine.release(seq);
  const positions = s.logits.fp32.positions!;
  const atPositions = new Float32Array(positions.length * vocab);
  positions.forEach((p, r) => atPositions.set(all.subarray(p * vocab, (p + 1) * vocab), r * vocab));
  return { all, atPositions };
}

/** The greedy continuation of the case's prompt, one token at a time through the KV cache. */
export async function greedyContinuation(engine: GoldenEngine, golden: Golden, vocab: number): Promise<number[]> {
  const { prompt, max_new_tokens: n } = golden.greedy_fp32;
  const seq = engine.createSequence();
  let [logits] = await engine.step([{ sequence: seq, tokens: prompt }]);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = argmaxRow(logits!, 0, vocab);
    out.push(id);
    [logits] = await engine.step([{ sequence: seq, tokens: [id] }]);
  }
  engine.release(seq);
  return out;
}
