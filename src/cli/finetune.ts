// `gptoss finetune`: trains a model on a JSONL file of conversations (OpenAI chat format or
// harmony JSON) with the float64 trainer of src/train: a LoRA adapter on the attention
// projections by default (written as a PEFT folder that --adapter loads), or every weight with
// --full (written as a checkpoint, experts in MXFP4). Conversations are split into training and
// held-out sets by a seeded shuffle; the run's state is saved beside the output every few
// updates, so an interrupted run continues with --resume to the same weights bit for bit.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { seededRandom } from '../random.ts';
import { HeapStore } from '../tensor/index.ts';
import { loadCheckpoint, readCheckpointConfig } from '../checkpoint/checkpoint.ts';
import { readRegularFile } from '../files.ts';
import { resolveModel } from '../checkpoint/resolve.ts';
import { contextLength as modelContextLength } from '../model/config.ts';
import { readConversationsJsonl, type TrainingExample } from '../train/data.ts';
import { writeOriginalCheckpoint } from '../train/export.ts';
import { writeFloatCheckpoint } from '../train/float-export.ts';
import { fineTune, type Progress } from '../train/loop.ts';
import { EXPERT_TARGETS, freezeBase, LORA_TARGETS, LoraAdapters, type LoraTarget } from '../train/lora.ts';
import { checkUnusedRowsZero, liveVocabulary, nextTokenTargets, usedVocabulary } from '../train/model.ts';
import type { Sequence } from '../train/optim.ts';
import { compactVocabulary, MAX_TRAINABLE_BYTES, trainableElements, TrainableModel } from '../train/params.ts';
import { SPECIAL } from '../tokenizer/specials.ts';
import { writePeftAdapter } from '../train/peft.ts';
import { boolFlag, numberFlag, parseFlags, stringFlag } from './args.ts';

const HELP = `usage: gptoss finetune --data FILE.jsonl --out DIR [options]

Fine-tunes a model on conversations, one per line of FILE.jsonl: OpenAI chat format
({"messages": [{"role": "user", ...}, {"role": "assistant", "content", "reasoning_content"?,
"tool_calls"?}, {"role": "tool", "tool_call_id", ...}], "tools"?: [...]}) or harmony JSON. Loss
is on the assistant's tokens only. By default trains a LoRA adapter on the attention projections
and writes it to DIR as a PEFT folder (use it with --adapter DIR on chat, serve, generate and
logits, or fold it in with gptoss merge); --full trains every weight and writes a checkpoint.

  --data FILE        training conversations (JSONL)
  --out DIR          where the adapter (or, with --full, the checkpoint) is written; must not exist
  --model DIR|REPO   the base model (default: $GPTOSS_MODEL, else the embedded demo model)
  --lora-rank R      LoRA rank (default 8)
  --lora-alpha A     LoRA alpha; the update is scaled by alpha/rank (default 2 x rank)
  --lora-targets T   attn (q_proj,k_proj,v_proj,o_proj), experts (gate_up_proj,down_proj of every
                     expert, PEFT target_parameters) or a comma list of those; default attn,experts
  --token-rows R     the adapter's own rows of the embedding and unembedding (PEFT trainable
                     tokens): auto (default) trains rows for the data's tokens whose base rows
                     are zero (words the base never learned to read or write), none trains
                     none, and token ids may be added: auto,1234,5678
  --full             train every weight instead of an adapter (small models: float64 in memory)
  --tie-embeddings   with --full, train the embedding and unembedding as one table: each update
                     uses the sum of both tables' gradients; they must start equal, and the
                     checkpoint holds both, equal
  --float-out DIR    with --full, also write the float export (experts unquantised) to DIR, to
                     measure the model before and after MXFP4 quantisation
  --epochs E         passes over the training conversations (default 60 for LoRA, 3 with --full)
  --lr LR            peak learning rate, after a 5% warm-up, cosine to 10% (default 5e-3 for
                     LoRA, 3e-4 with --full)
  --batch-tokens N   tokens per update, whole turns packed up to it (default 256 for LoRA,
                     1024 with --full)
  --seed S           seed of the adapter's initialisation, the split and the order (default 0)
  --eval-split F     share of conversations held out for the eval loss (default 0.1; 0 for none)
  --eval-every N     also measure the eval loss every N updates (default: at the end only)
  --save-every N     save the run's state every N updates (default 1 for LoRA, 10 with --full)
  --stop-after N     stop after N updates in all (a time budget); --resume continues
  --resume           continue the interrupted run whose state is beside --out
  --precision P      f32 (default: the matrix products on the WebAssembly SIMD kernels, several
                     times faster, within f32 rounding) or f64 (everything in float64, the reference)
  --threads N        threads computing each step (default 2 when the machine has 2 cores or
                     more, else 1): the batch is split between them, the gradients summed in a
                     fixed order (reproducible for a given N); a run resumes with any count
  --vocabulary FILE  the used vocabulary: a JSON array of token ids covering the data (default:
                     the data's own tokens); every other row of the model's tables must be zero
  --quiet            no progress lines on stderr

Progress (step, loss, eval loss, tokens/s, ETA) goes to stderr; a JSON summary of what was
written to stdout. The run's state is DIR.finetune-state.safetensors until the run completes.`;

/** Weight of the router's load-balancing loss with --full (the Switch Transformer's). */
const ROUTER_BALANCE = 0.01;

export interface FinetuneSettings {
  data: string;
  out: string;
  model: string | undefined;
  full: boolean;
  /** With --full: the embedding and unembedding trained as one table. */
  tieEmbeddings: boolean;
  /** With --full: where the float export (experts before MXFP4 quantisation) goes. */
  floatOut: string | undefined;
  rank: number;
  alpha: number;
  targets: LoraTarget[];
  /** Token rows: the data's tokens with zero base rows (auto) and/or these ids; null: none. */
  tokenRows: { auto: boolean; ids: number[] } | null;
  epochs: number;
  lr: number;
  batchTokens: number;
  seed: number;
  evalSplit: number;
  evalEvery: number | undefined;
  saveEvery: number;
  stopAfter: number | undefined;
  resume: boolean;
  quiet: boolean;
  vocabulary: string | undefined;
  precision: 'f64' | 'f32';
  /** Threads computing each step (FineTuneOptions.threads). */
  threads: number;
}

/** The adapters `gptoss finetune` trains without --lora-targets. */
const DEFAULT_TARGETS: readonly LoraTarget[] = [...LORA_TARGETS, ...EXPERT_TARGETS];

function targetsFlag(raw: string | undefined): LoraTarget[] {
  if (raw === undefined) return [...DEFAULT_TARGETS];
  const names = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new UserError('usage', '--lora-targets is empty');
  const all: readonly string[] = [...LORA_TARGETS, ...EXPERT_TARGETS];
  const targets = names.flatMap((n): LoraTarget[] => {
    if (n === 'attn') return [...LORA_TARGETS];
    if (n === 'experts' || n === 'mlp') return [...EXPERT_TARGETS];
    const full = all.includes(n) ? n : `${n}_proj`;
    if (!all.includes(full)) throw new UserError('usage', `--lora-targets: unknown module "${n}" (expected attn, experts, or a comma list of ${all.join(', ')})`);
    return [full as LoraTarget];
  });
  return [...new Set(targets)];
}

function tokenRowsFlag(raw: string | undefined): FinetuneSettings['tokenRows'] {
  if (raw === undefined) return { auto: true, ids: [] };
  if (raw.trim() === 'none') return null;
  const items = raw.split(',').map((s) => s.trim());
  const ids: number[] = [];
  let auto = false;
  for (const item of items) {
    if (item === 'auto') auto = true;
    else if (/^\d+$/.test(item)) ids.push(Number(item));
    else throw new UserError('usage', `--token-rows: "${item}" is not auto, none or a token id (expected e.g. auto,1234)`);
  }
  return { auto, ids: [...new Set(ids)] };
}

/** The ids of `vocabulary` whose row of `table` is all zero. */
function zeroRows(table: Float64Array, hidden: number, vocabulary: Int32Array): number[] {
  return [...vocabulary].filter((id) => {
    for (let c = 0; c < hidden; c++) if (table[id * hidden + c] !== 0) return false;
    return true;
  });
}

export function parseSettings(argv: string[]): FinetuneSettings | 'help' {
  const p = parseFlags(argv, {
    data: { type: 'string' }, out: { type: 'string' }, model: { type: 'string' },
    'lora-rank': { type: 'string' }, 'lora-alpha': { type: 'string' }, 'lora-targets': { type: 'string' }, 'token-rows': { type: 'string' }, full: { type: 'boolean' }, 'tie-embeddings': { type: 'boolean' }, 'float-out': { type: 'string' },
    epochs: { type: 'string' }, lr: { type: 'string' }, 'batch-tokens': { type: 'string' }, seed: { type: 'string' },
    'eval-split': { type: 'string' }, 'eval-every': { type: 'string' }, 'save-every': { type: 'string' }, 'stop-after': { type: 'string' }, resume: { type: 'boolean' },
    quiet: { type: 'boolean' }, precision: { type: 'string' }, threads: { type: 'string' }, vocabulary: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  }, false);
  if (boolFlag(p, 'help')) return 'help';
  const data = stringFlag(p, 'data');
  const out = stringFlag(p, 'out');
  if (data === undefined || data === '' || out === undefined || out === '') throw new UserError('usage', '--data FILE.jsonl and --out DIR are required (see gptoss finetune --help)');
  const full = boolFlag(p, 'full');
  if (full && ['lora-rank', 'lora-alpha', 'lora-targets', 'token-rows'].some((f) => p.values[f] !== undefined)) {
    throw new UserError('usage', '--full trains every weight; --lora-rank, --lora-alpha, --lora-targets and --token-rows are for adapters');
  }
  const tieEmbeddings = boolFlag(p, 'tie-embeddings');
  if (tieEmbeddings && !full) throw new UserError('usage', '--tie-embeddings goes with --full (an adapter leaves both tables frozen)');
  const floatOut = stringFlag(p, 'float-out');
  if (floatOut !== undefined && (!full || floatOut === '')) throw new UserError('usage', '--float-out DIR goes with --full (an adapter has no experts to quantise)');
  const rank = numberFlag(p, 'lora-rank', { min: 1, max: 4096, integer: true }) ?? 8;
  const precision = stringFlag(p, 'precision') ?? 'f32';
  if (precision !== 'f64' && precision !== 'f32') throw new UserError('usage', `--precision ${precision}: expected f64 or f32`);
  return {
    data, out, model: stringFlag(p, 'model'), full, tieEmbeddings, floatOut, rank,
    alpha: numberFlag(p, 'lora-alpha', { min: Number.MIN_VALUE }) ?? 2 * rank,
    targets: targetsFlag(stringFlag(p, 'lora-targets')),
    tokenRows: tokenRowsFlag(stringFlag(p, 'token-rows')),
    // LoRA's defaults teach a small file of facts (examples/finetune/facts.jsonl) to gpt-oss-nano
    // in about ten minutes here: many passes of small batches at a high rate (docs/training.md).
    epochs: numberFlag(p, 'epochs', { min: 1, max: 100000, integer: true }) ?? (full ? 3 : 60),
    lr: numberFlag(p, 'lr', { min: Number.MIN_VALUE, max: 10 }) ?? (full ? 3e-4 : 5e-3),
    batchTokens: numberFlag(p, 'batch-tokens', { min: 1, integer: true }) ?? (full ? 1024 : 256),
    seed: numberFlag(p, 'seed', { min: 0, max: 2 ** 32 - 1, integer: true }) ?? 0,
    evalSplit: numberFlag(p, 'eval-split', { min: 0, max: 0.9 }) ?? 0.1,
    evalEvery: numberFlag(p, 'eval-every', { min: 1, integer: true }),
    saveEvery: numberFlag(p, 'save-every', { min: 1, integer: true }) ?? (full ? 10 : 1),
    stopAfter: numberFlag(p, 'stop-after', { min: 1, integer: true }),
    resume: boolFlag(p, 'resume'),
    quiet: boolFlag(p, 'quiet'),
    vocabulary: stringFlag(p, 'vocabulary'),
    precision,
    threads: numberFlag(p, 'threads', { min: 1, max: 256, integer: true }) ?? (availableParallelism() >= 2 ? 2 : 1),
  };
}

/**
 * A vocabulary file (a JSON array of token ids, e.g. a corpus's vocabulary.json, which adds tokens
 * the held-out data needs), sorted; it must hold every token of the data.
 */
function readVocabulary(path: string, examples: readonly TrainingExample[], vocabSize: number): Int32Array {
  let ids: unknown;
  try {
    ids = JSON.parse(readRegularFile(path, 'input'));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError('input', `${path}: not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(ids) || ids.some((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize)) {
    throw new UserError('input', `${path}: expected a JSON array of token ids below ${vocabSize}`);
  }
  const vocabulary = Int32Array.from(new Set(ids as number[])).sort();
  const held = new Set(vocabulary);
  for (const e of examples) {
    const missing = e.tokens.find((id) => !held.has(id));
    if (missing !== undefined) throw new UserError('input', `${path}: token ${missing} of ${e.source} is not in the vocabulary`);
  }
  return vocabulary;
}

/**
 * The tokens up to the end of the first message (the system message): conversations with the
 * same are batched together and that prefix runs once per batch (FineTuneOptions.prefixGroups).
 */
function systemMessageKey(tokens: readonly number[]): string {
  const end = tokens.indexOf(SPECIAL.end);
  return tokens.slice(0, end < 0 ? tokens.length : end + 1).join(',');
}

/** Conversation indices held out: a seeded shuffle's first floor(count * share). */
export function heldOutConversations(count: number, share: number, seed: number): Set<number> {
  const order = Array.from({ length: count }, (_, i) => i);
  const random = seededRandom((seed ^ 0x9e3779b9) >>> 0);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return new Set(order.slice(0, Math.floor(count * share)));
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}

export async function runFinetune(s: FinetuneSettings): Promise<Record<string, unknown>> {
  const log = (line: string): void => {
    if (!s.quiet) process.stderr.write(line + '\n');
  };
  const out = resolve(s.out);
  const statePath = `${out}.finetune-state.safetensors`;
  // The run's state is saved beside --out from the first update: its folder must exist.
  mkdirSync(dirname(out), { recursive: true });
  if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length > 0)) {
    throw new UserError('usage', `--out ${s.out} already exists; choose a new folder (or delete it)`);
  }
  if (s.resume && !existsSync(statePath)) throw new UserError('usage', `--resume: no interrupted run to continue (no ${statePath})`);
  if (!s.resume && existsSync(statePath)) throw new UserError('usage', `an interrupted run's state is at ${statePath}: pass --resume to continue it, or delete it to start over`);

  // The data first: a bad line fails before the model is loaded.
  const dataText = readRegularFile(s.data, 'input');
  const examples = readConversationsJsonl(dataText, s.data);
  // Without --model (or $GPTOSS_MODEL): the embedded model, never a cached gpt-oss-20b that the
  // memory check below would refuse.
  const resolved = await resolveModel(s.model, { hubDefault: false });
  const { config } = await readCheckpointConfig(resolved.dir);
  // Checked before gigabytes are read: float64 values, and gradients for what trains.
  const elements = trainableElements(config);
  const bytes = elements * (s.full ? 16 : 8);
  if (bytes > MAX_TRAINABLE_BYTES) {
    throw new UserError('memory', `${resolved.description}: ${s.full ? 'full training' : 'a LoRA base'} in float64 needs ${(bytes / 2 ** 30).toFixed(1)} GiB for its ${elements} parameters; at most ${MAX_TRAINABLE_BYTES / 2 ** 30} GiB is allowed (fine-tuning here is for small models)`);
  }
  const context = modelContextLength(config);
  for (const e of examples) {
    const outside = e.tokens.find((id) => id >= config.vocabSize);
    if (outside !== undefined) throw new UserError('input', `${e.source}: token ${outside} is outside the vocabulary of ${resolved.description} (${config.vocabSize} tokens)`);
    if (e.tokens.length > context) throw new UserError('input', `${e.source}: ${e.tokens.length} tokens do not fit the model's context of ${context}`);
  }

  let vocabulary = s.vocabulary === undefined ? usedVocabulary(examples.map((e) => e.tokens)) : readVocabulary(s.vocabulary, examples, config.vocabSize);
  const dataTokens = usedVocabulary(examples.map((e) => e.tokens));
  const extra = s.tokenRows?.ids.find((id) => id >= config.vocabSize);
  if (extra !== undefined) throw new UserError('usage', `--token-rows: token ${extra} is outside the vocabulary of ${resolved.description} (${config.vocabSize} tokens)`);

  log(`loading ${resolved.description}…`);
  const loaded = await loadCheckpoint(resolved.dir, new HeapStore());
  let model: TrainableModel;
  try {
    model = TrainableModel.fromWeights(loaded.weights, { frozen: !s.full });
  } finally {
    loaded.weights.embedding.weight.close();
  }

  const conversations = new Set(examples.map((e) => e.conversation ?? 0)).size;
  const held = heldOutConversations(conversations, s.evalSplit, s.seed);
  const sequence = (e: TrainingExample): Sequence => ({ tokens: e.tokens, targets: nextTokenTargets(e.tokens, e.trained) });
  const train = examples.filter((e) => !held.has(e.conversation ?? 0)).map(sequence);
  const evalSet = examples.filter((e) => held.has(e.conversation ?? 0)).map(sequence);
  if (s.evalSplit > 0 && held.size === 0) log(`note: ${conversations} conversations are too few to hold out ${s.evalSplit * 100}% of them; no eval loss`);

  // An adapter on a model trained here (gpt-oss-nano) computes the rows its base uses plus the
  // data's: every other row is zero, so the shortcut below stays exact at the cost of those rows.
  if (!s.full && s.vocabulary === undefined) {
    const live = liveVocabulary(model);
    if (live.length < config.vocabSize / 2) vocabulary = Int32Array.from(new Set([...live, ...vocabulary])).sort();
  }
  // Token rows: the data's tokens the base cannot read (zero embedding row) or write (zero
  // unembedding row), plus any named; their logits must be computed, so they join the vocabulary.
  const tokenRows = s.full || s.tokenRows === null ? undefined : {
    embedding: [...new Set([...(s.tokenRows.auto ? zeroRows(model.embedding.value, config.hiddenSize, dataTokens) : []), ...s.tokenRows.ids])].sort((a, b) => a - b),
    unembedding: [...new Set([...(s.tokenRows.auto ? zeroRows(model.unembedding.value, config.hiddenSize, dataTokens) : []), ...s.tokenRows.ids])].sort((a, b) => a - b),
  };
  if (tokenRows !== undefined) vocabulary = Int32Array.from(new Set([...vocabulary, ...tokenRows.unembedding])).sort();
  // The used-vocabulary shortcut is exact when every other unembedding row is zero (models
  // trained from scratch here keep them so); otherwise the whole vocabulary is computed.
  let shortcut = true;
  try {
    checkUnusedRowsZero(model, vocabulary);
  } catch {
    shortcut = false;
  }

  // Trained from scratch here, both tables' other rows are zero: hold only the used rows, so the
  // optimiser, clipping and zeroing skip the rest (exact: those rows would stay zero).
  let compact = false;
  if (s.full && shortcut) {
    try {
      model = compactVocabulary(model, vocabulary);
      compact = true;
    } catch {
      // Some embedding row outside the vocabulary is live (a released model's): keep the full tables.
    }
  }

  let lora: LoraAdapters | undefined;
  if (!s.full) {
    freezeBase(model);
    lora = new LoraAdapters(config, { rank: s.rank, alpha: s.alpha, targets: s.targets, seed: s.seed, ...(tokenRows !== undefined ? { tokens: tokenRows } : {}) });
    lora.initTokenRows(model);
  }
  const trainedParams = lora !== undefined ? lora.params().reduce((n, p) => n + p.value.length, 0) : model.size();
  const tokenNote = tokenRows === undefined || tokenRows.embedding.length + tokenRows.unembedding.length === 0 ? '' : ` + token rows for ${tokenRows.embedding.length} embedding and ${tokenRows.unembedding.length} unembedding tokens`;
  log(`${s.full ? 'full fine-tuning' : `LoRA r=${s.rank} alpha=${s.alpha} on ${s.targets.join(',')}${tokenNote}`}: ${trainedParams} trained parameters; ` +
    `${train.length} training turns, ${evalSet.length} held out (${held.size} of ${conversations} conversations)` +
    (shortcut ? `; ${vocabulary.length} vocabulary rows in use${compact ? ' (only those held)' : ''}` : ''));

  const started = performance.now();
  let firstStep: number | undefined;
  const onProgress = (p: Progress): void => {
    firstStep ??= p.step - 1;
    const elapsed = (performance.now() - started) / 1000;
    const done = p.step - firstStep;
    rate.tokens += p.inputTokens;
    rate.computed += p.computedTokens;
    const perStep = elapsed / done;
    log(`step ${p.step}/${p.totalSteps}  loss ${p.loss.toFixed(4)}` + (p.evalLoss !== undefined ? `  eval ${p.evalLoss.toFixed(4)}` : '') +
      `  lr ${p.lr.toExponential(2)}  ${(rate.tokens / elapsed).toFixed(0)} tokens/s (${(rate.computed / elapsed).toFixed(0)} computed)  ETA ${duration(perStep * (p.totalSteps - p.step))}`);
  };
  const rate = { tokens: 0, computed: 0 };
  const result = await fineTune(model, train, {
    epochs: s.epochs, lr: s.lr, batchTokens: s.batchTokens, seed: s.seed,
    ...(lora !== undefined ? { lora } : { routerBalance: ROUTER_BALANCE }),
    ...(s.tieEmbeddings ? { tiedEmbeddings: true } : {}),
    ...(shortcut ? { vocabulary } : {}),
    prefixGroups: train.map((e) => systemMessageKey(e.tokens)),
    ...(evalSet.length > 0 ? { evalExamples: evalSet, ...(s.evalEvery !== undefined ? { evalEvery: s.evalEvery } : {}) } : {}),
    statePath, saveEvery: s.saveEvery, precision: s.precision, threads: s.threads,
    // Everything else that shapes the run, so a resume with other data or settings is refused.
    stateMetadata: {
      data_sha256: createHash('sha256').update(dataText).digest('hex'),
      model: resolved.dir,
      mode: s.full ? 'full' : `lora r=${s.rank} alpha=${s.alpha} targets=${s.targets.join(',')}` +
        (tokenRows === undefined ? '' : ` token_rows=${tokenRows.embedding.join(',')}/${tokenRows.unembedding.join(',')}`),
      ...(s.tieEmbeddings ? { tied_embeddings: 'yes' } : {}),
      precision: s.precision, lr: String(s.lr), batch_tokens: String(s.batchTokens), epochs: String(s.epochs), eval_split: String(s.evalSplit),
    },
    ...(s.stopAfter !== undefined ? { stopAfter: s.stopAfter } : {}),
    onProgress,
  });
  const seconds = (performance.now() - started) / 1000;
  const summary: Record<string, unknown> = {
    steps: result.steps, total_steps: result.totalSteps, resumed_from: result.resumedFrom,
    loss: result.loss, ...(result.evalLoss !== undefined ? { eval_loss: result.evalLoss } : {}),
    train_turns: train.length, eval_turns: evalSet.length, seconds: Number(seconds.toFixed(1)),
  };
  if (result.steps < result.totalSteps) {
    log(`stopped after ${result.steps} of ${result.totalSteps} updates; nothing written to ${s.out} yet. The run's state is in ${statePath}: continue with the same command and --resume`);
    return { ...summary, wrote: null, state: statePath };
  }
  if (lora !== undefined) {
    writePeftAdapter(lora, out, resolved.repo ?? resolved.dir);
    log(`wrote a LoRA adapter (PEFT folder: adapter_config.json + adapter_model.safetensors) to ${s.out}; use it with --adapter ${s.out} on chat, serve, generate or logits (base model: ${resolved.description}), or fold it in with gptoss merge`);
  } else {
    writeOriginalCheckpoint(model, out);
    log(`wrote a full checkpoint (config.json + model.safetensors: BF16 attention and embeddings, MXFP4 experts) to ${s.out}; use it with --model ${s.out}`);
    if (s.floatOut !== undefined) {
      writeFloatCheckpoint(model, s.floatOut);
      log(`wrote its float export (the experts before MXFP4 quantisation) to ${s.floatOut}`);
    }
  }
  rmSync(statePath, { force: true });
  return { ...summary, wrote: lora !== undefined ? 'lora-adapter' : 'checkpoint', dir: s.out, base_model: resolved.repo ?? resolved.dir };
}

export async function run(argv: string[]): Promise<number> {
  const settings = parseSettings(argv);
  if (settings === 'help') {
    console.log(HELP);
    return 0;
  }
  console.log(JSON.stringify(await runFinetune(settings)));
  return 0;
}
