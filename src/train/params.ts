// The trainable form of a gpt-oss model: every weight as a plain Float64Array with a gradient of
// the same shape, named after the `original/` checkpoint's tensors (MXFP4 expert stacks become
// `block.{n}.mlp.mlp1_weight` / `mlp2_weight` as dense [E, rows, cols] floats). Built with seeded
// random weights from a ModelConfig, or from loaded ModelWeights (BF16 widened, MXFP4 dequantised
// exactly) for full training of small models. Float64 doubles the memory of f32 and quadruples
// BF16's, so this is for small models; a refusal names the size before anything is allocated.
// A model trained from scratch can hold compact vocabulary tables: only its used tokens' rows.
import { UserError } from '../errors.ts';
import { bf16ToF32, dequantMxfp4Row, type Bf16Matrix, type Mxfp4Matrices } from '../tensor/index.ts';
import type { ModelConfig } from '../model/config.ts';
import type { ModelWeights } from '../model/weights.ts';
import { seededRandom, splitmix32 } from '../random.ts';

export interface Param {
  /** The `original/` layout's tensor name, e.g. block.0.attn.qkv.weight. */
  readonly name: string;
  readonly shape: readonly number[];
  readonly value: Float64Array;
  /** Empty for a frozen model's weights (`frozen`, freezeBase): they never get a gradient. */
  grad: Float64Array;
  /** False for frozen weights (a LoRA base): the optimiser skips them and backward leaves grad at 0. */
  trainable: boolean;
}

export interface TrainableBlock {
  attn: { normScale: Param; qkvWeight: Param; qkvBias: Param; sinks: Param; outWeight: Param; outBias: Param };
  mlp: { normScale: Param; gateWeight: Param; gateBias: Param; mlp1Weight: Param; mlp1Bias: Param; mlp2Weight: Param; mlp2Bias: Param };
}

/** Above this many bytes (values, and gradients unless frozen) a model is refused: a float64 copy of gpt-oss-20b is ~340 GB. */
export const MAX_TRAINABLE_BYTES = 8 * 2 ** 30;

/** The gradient of a weight that never trains. */
export const NO_GRADIENT = new Float64Array(0);

/** How many parameters a model of `config` has. */
export function trainableElements(c: ModelConfig): number {
  return parameterShapes(c).reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
}

/**
 * Every tensor's name and shape, in a fixed order (the order of `params()`). With `rows` (a
 * compact vocabulary's size) the embedding and unembedding hold only that many rows.
 */
export function parameterShapes(c: ModelConfig, rows = c.vocabSize): [string, number[]][] {
  const H = c.hiddenSize, I = c.intermediateSize, E = c.numExperts, V = rows;
  const qWidth = c.headDim * c.numAttentionHeads;
  const qkvRows = c.headDim * (c.numAttentionHeads + 2 * c.numKeyValueHeads);
  const out: [string, number[]][] = [['embedding.weight', [V, H]]];
  for (let n = 0; n < c.numLayers; n++) {
    const p = `block.${n}`;
    out.push(
      [`${p}.attn.norm.scale`, [H]],
      [`${p}.attn.qkv.weight`, [qkvRows, H]],
      [`${p}.attn.qkv.bias`, [qkvRows]],
      [`${p}.attn.sinks`, [c.numAttentionHeads]],
      [`${p}.attn.out.weight`, [H, qWidth]],
      [`${p}.attn.out.bias`, [H]],
      [`${p}.mlp.norm.scale`, [H]],
      [`${p}.mlp.gate.weight`, [E, H]],
      [`${p}.mlp.gate.bias`, [E]],
      [`${p}.mlp.mlp1_weight`, [E, 2 * I, H]],
      [`${p}.mlp.mlp1_bias`, [E, 2 * I]],
      [`${p}.mlp.mlp2_weight`, [E, H, I]],
      [`${p}.mlp.mlp2_bias`, [E, H]],
    );
  }
  out.push(['norm.scale', [H]], ['unembedding.weight', [V, H]]);
  return out;
}

export class TrainableModel {
  readonly embedding: Param;
  readonly blocks: TrainableBlock[] = [];
  readonly norm: Param;
  readonly unembedding: Param;
  private readonly byName = new Map<string, Param>();
  /**
   * A compact vocabulary: the sorted token ids whose embedding and unembedding rows the tables
   * hold (row i is token vocabulary[i]); every other token's rows are zero and frozen, so they
   * are not stored at all (`compactVocabulary`). Null: the tables hold every token.
   */
  readonly vocabulary: Int32Array | null;
  /** Token id to its row in a compact table (-1: not held), when compact. */
  private readonly rowOfToken: Int32Array | null;

  /**
   * Zero-valued parameters for `config` (use `random` or `fromWeights` to fill them). `frozen`
   * (a LoRA base) allocates no gradients, halving the memory: every weight starts frozen.
   * `vocabulary` makes the vocabulary tables compact (only those tokens' rows). `storage` gives
   * each tensor's values array instead of a new one (a training thread's model viewing weights
   * the main thread shares, train/parallel.ts).
   */
  constructor(readonly config: ModelConfig, options: { frozen?: boolean; vocabulary?: Int32Array; storage?: (name: string, size: number) => Float64Array } = {}) {
    const frozen = options.frozen === true;
    const vocabulary = options.vocabulary ?? null;
    if (vocabulary !== null && vocabulary.some((id, i) => !Number.isInteger(id) || id < 0 || id >= config.vocabSize || (i > 0 && id <= vocabulary[i - 1]!))) {
      throw new Error('a compact vocabulary must be ascending distinct token ids of the model');
    }
    this.vocabulary = vocabulary;
    this.rowOfToken = vocabulary === null ? null : new Int32Array(config.vocabSize).fill(-1);
    vocabulary?.forEach((id, i) => { this.rowOfToken![id] = i; });
    const shapes = parameterShapes(config, vocabulary?.length ?? config.vocabSize);
    const elements = shapes.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
    const perParameter = frozen ? 8 : 16;
    if (elements * perParameter > MAX_TRAINABLE_BYTES) {
      throw new UserError('memory', `training in float64 needs ${(elements * perParameter / 2 ** 30).toFixed(1)} GiB for ${elements} parameters${frozen ? '' : ' and their gradients'}; at most ${MAX_TRAINABLE_BYTES / 2 ** 30} GiB is allowed (training here is for small models)`);
    }
    for (const [name, shape] of shapes) {
      const size = shape.reduce((a, b) => a * b, 1);
      const value = options.storage?.(name, size) ?? new Float64Array(size);
      if (value.length !== size) throw new Error(`storage for ${name} holds ${value.length} values, not ${size}`);
      this.byName.set(name, { name, shape, value, grad: frozen ? NO_GRADIENT : new Float64Array(size), trainable: !frozen });
    }
    const get = (name: string): Param => this.param(name);
    this.embedding = get('embedding.weight');
    for (let n = 0; n < config.numLayers; n++) {
      const p = `block.${n}`;
      this.blocks.push({
        attn: {
          normScale: get(`${p}.attn.norm.scale`), qkvWeight: get(`${p}.attn.qkv.weight`), qkvBias: get(`${p}.attn.qkv.bias`),
          sinks: get(`${p}.attn.sinks`), outWeight: get(`${p}.attn.out.weight`), outBias: get(`${p}.attn.out.bias`),
        },
        mlp: {
          normScale: get(`${p}.mlp.norm.scale`), gateWeight: get(`${p}.mlp.gate.weight`), gateBias: get(`${p}.mlp.gate.bias`),
          mlp1Weight: get(`${p}.mlp.mlp1_weight`), mlp1Bias: get(`${p}.mlp.mlp1_bias`),
          mlp2Weight: get(`${p}.mlp.mlp2_weight`), mlp2Bias: get(`${p}.mlp.mlp2_bias`),
        },
      });
    }
    this.norm = get('norm.scale');
    this.unembedding = get('unembedding.weight');
  }

  /**
   * Seeded random weights: matrices uniform with standard deviation 1/sqrt(fan_in) (the output
   * projections of each residual branch shrunk by 1/sqrt(2 * layers) so the stream's scale holds
   * at depth), norm scales 1, biases and sinks 0. Each tensor draws from its own stream derived
   * from (seed, name), so a tensor's values do not depend on the others.
   */
  static random(config: ModelConfig, seed: number): TrainableModel {
    const model = new TrainableModel(config);
    const depth = 1 / Math.sqrt(2 * config.numLayers);
    for (const p of model.params()) {
      const last = p.shape[p.shape.length - 1]!;
      let std = 0;
      if (p.name.endsWith('norm.scale')) {
        p.value.fill(1);
        continue;
      }
      if (p.name === 'embedding.weight') std = 1;
      else if (p.name.endsWith('.weight') || p.name.endsWith('_weight')) std = 1 / Math.sqrt(last);
      if (p.name.endsWith('attn.out.weight') || p.name.endsWith('mlp2_weight')) std *= depth;
      if (std === 0) continue;
      const random = seededRandom(splitmix32(seed ^ hashName(p.name))());
      const spread = std * Math.sqrt(3); // uniform on [-a, a] has std a/sqrt(3)
      for (let i = 0; i < p.value.length; i++) p.value[i] = (2 * random() - 1) * spread;
    }
    return model;
  }

  /**
   * Ties a freshly initialised model's vocabulary tables (for `tiedEmbeddings` training): the
   * unembedding becomes a copy of the embedding, and the final norm's scale 1/sqrt(hidden) keeps
   * the first logits near unit spread, as the untied 1/sqrt(fan_in) unembedding does.
   */
  tieVocabularyTables(): void {
    this.unembedding.value.set(this.embedding.value);
    this.norm.value.fill(1 / Math.sqrt(this.config.hiddenSize));
  }

  /** The loaded weights in float64: BF16 widened and MXFP4 experts dequantised, both exactly. */
  static fromWeights(weights: ModelWeights, options: { frozen?: boolean } = {}): TrainableModel {
    const c = weights.config;
    const model = new TrainableModel(c, options);
    const row = new Float32Array(c.hiddenSize);
    for (let id = 0; id < c.vocabSize; id++) {
      weights.embedding.weight.readRow(id, row);
      model.embedding.value.set(row, id * c.hiddenSize);
    }
    weights.blocks.forEach((b, n) => {
      const t = model.blocks[n]!;
      t.attn.normScale.value.set(b.attn.norm.scale);
      widenBf16(b.attn.qkv.weight, t.attn.qkvWeight.value);
      t.attn.qkvBias.value.set(b.attn.qkv.bias);
      t.attn.sinks.value.set(b.attn.sinks);
      widenBf16(b.attn.out.weight, t.attn.outWeight.value);
      t.attn.outBias.value.set(b.attn.out.bias);
      t.mlp.normScale.value.set(b.mlp.norm.scale);
      widenBf16(b.mlp.gate.weight, t.mlp.gateWeight.value);
      t.mlp.gateBias.value.set(b.mlp.gate.bias);
      dequantise(b.mlp.mlp1Weight, t.mlp.mlp1Weight.value);
      t.mlp.mlp1Bias.value.set(b.mlp.mlp1Bias);
      dequantise(b.mlp.mlp2Weight, t.mlp.mlp2Weight.value);
      t.mlp.mlp2Bias.value.set(b.mlp.mlp2Bias);
    });
    model.norm.value.set(weights.norm.scale);
    widenBf16(weights.unembedding.weight, model.unembedding.value);
    return model;
  }

  /**
   * The row of token `id` in the embedding and unembedding tables: the id itself, or with a
   * compact vocabulary its index there (-1 when the token's rows are not held: they are zero).
   */
  tableRow(id: number): number {
    return this.rowOfToken === null ? id : this.rowOfToken[id] ?? -1;
  }

  /** A vocabulary table (embedding or unembedding) with every token's row, [vocabSize, hidden]: zeros where a compact table holds none. */
  fullTable(p: Param): Float64Array {
    if (this.vocabulary === null) return p.value;
    const H = this.config.hiddenSize;
    const out = new Float64Array(this.config.vocabSize * H);
    this.vocabulary.forEach((id, i) => out.set(p.value.subarray(i * H, (i + 1) * H), id * H));
    return out;
  }

  /** Every parameter, in `parameterShapes` order. */
  params(): Param[] {
    return [...this.byName.values()];
  }

  param(name: string): Param {
    const p = this.byName.get(name);
    if (p === undefined) throw new Error(`no parameter named ${name}`);
    return p;
  }

  zeroGrad(): void {
    for (const p of this.byName.values()) p.grad.fill(0);
  }

  /** Number of parameters (trainable or not). */
  size(): number {
    let n = 0;
    for (const p of this.byName.values()) n += p.value.length;
    return n;
  }
}

/**
 * The model with compact vocabulary tables: only `vocabulary`'s rows of the embedding and
 * unembedding, every other tensor copied. Exact when every other row of both tables is zero (a
 * model trained from scratch on that vocabulary): those rows' logits are 0 (the loss counts
 * them in closed form), they get no gradient and no decay, so they would stay zero; this makes
 * the optimiser, clipping and zeroing skip them too. Throws when such a row is not zero.
 */
export function compactVocabulary(model: TrainableModel, vocabulary: Int32Array): TrainableModel {
  if (model.vocabulary !== null) throw new Error('the model is already compact');
  const c = model.config;
  const H = c.hiddenSize;
  const held = new Set(vocabulary);
  for (const table of [model.embedding, model.unembedding]) {
    for (let id = 0; id < c.vocabSize; id++) {
      if (held.has(id)) continue;
      for (let i = 0; i < H; i++) if (table.value[id * H + i] !== 0) throw new Error(`${table.name} row ${id} is outside the compact vocabulary but is not zero`);
    }
  }
  const frozen = !model.params().some((p) => p.trainable);
  const compact = new TrainableModel(c, { vocabulary, frozen });
  for (const p of compact.params()) {
    const source = model.param(p.name);
    if (p === compact.embedding || p === compact.unembedding) {
      vocabulary.forEach((id, i) => p.value.set(source.value.subarray(id * H, (id + 1) * H), i * H));
    } else {
      p.value.set(source.value);
    }
    p.trainable = source.trainable;
    if (!p.trainable) p.grad = NO_GRADIENT;
  }
  return compact;
}

function widenBf16(m: Bf16Matrix, out: Float64Array): void {
  const row = new Float32Array(m.cols);
  for (let r = 0; r < m.rows; r++) {
    bf16ToF32(m.data, r * m.cols, m.cols, row);
    out.set(row, r * m.cols);
  }
}

function dequantise(m: Mxfp4Matrices, out: Float64Array): void {
  const row = new Float32Array(m.cols);
  for (let e = 0; e < m.count; e++) {
    for (let r = 0; r < m.rows; r++) {
      dequantMxfp4Row(m, e, r, row);
      out.set(row, (e * m.rows + r) * m.cols);
    }
  }
}

/** FNV-1a of a tensor name: the per-tensor part of its random stream's seed. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
