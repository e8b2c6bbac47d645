// LoRA adapters on the attention projections and on the experts: for a projection y = x W^T + b,
// the adapted one is y = x W^T + b + (alpha / r) * (x A^T) B^T with A [r, in] and B [out, r] trained and W frozen.
// Adapters follow the Hugging Face GptOss model's modules, where q, k and v are separate
// projections (our checkpoint fuses them as the rows of qkv: q, then k, then v), so each of
// q_proj/k_proj/v_proj has its own A and B acting on its own rows of qkv, and o_proj adapts out.
//
// Tensor names are the ones PEFT writes to adapter_model.safetensors for that model, so an adapter
// round-trips with PEFT unchanged: `base_model.model.model.layers.{n}.self_attn.{q,k,v,o}_proj.lora_A.weight`
// ([r, in]) and `...lora_B.weight` ([out, r]) — PEFT's own prefix `base_model.model.`, then the
// transformers module path `model.layers.{n}.self_attn.q_proj`, with the adapter's name ("default")
// left out of saved keys. The scale is lora_alpha / r (PEFT's use_rslora would make it
// lora_alpha / sqrt(r); not supported here). PEFT initialises A uniformly (Kaiming with a = sqrt(5):
// bound 1/sqrt(in)) and B at zero, so training starts from the base model exactly; we do the same.
//
// The experts are 3-D parameters in transformers (GptOssExperts: gate_up_proj [E, hidden, 2I] with
// gate and up interleaved as our mlp1 rows are, down_proj [E, I, hidden]), which PEFT adapts through
// `target_parameters` (its ParamWrapper): lora_A is [E*r, in] (expert e's A is rows e*r..e*r+r-1) and
// lora_B is [out, r*E] with column j*E + e holding expert e's rank-j column, so expert e's update is
// delta_e[i, o] = scale * sum_j B[o, j*E + e] A[e*r + j, i]. Both parameters live on one module
// (model.layers.{n}.mlp.experts); PEFT wraps it once per parameter in the module's parameter order,
// so with both targeted down_proj's wrapper is outermost (`...mlp.experts.lora_A.weight`) and
// gate_up_proj's sits inside it (`...mlp.experts.base_layer.lora_A.weight`); alone, either is the
// outer one. The base experts stay frozen: the adapter adds its low-rank term beside them.
//
// Token rows are PEFT's trainable tokens (LoraConfig's `trainable_token_indices`, a map from the
// module name, embed_tokens or lm_head, to token ids): the adapter holds new rows of the embedding
// or the unembedding for those ids, which replace the base rows (PEFT stores the rows themselves,
// not a difference, initialised from the base's), saved as
// `base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta` and
// `base_model.model.lm_head.token_adapter.trainable_tokens_delta`, [ids, hidden] in the ids' order.
// A base trained on a narrow corpus has zero rows for every token it never saw; low-rank updates
// cannot reach those rows, token rows can.
import type { ModelConfig } from '../model/config.ts';
import { seededRandom, splitmix32 } from '../random.ts';
import type { ExpertAdapter } from './ops.ts';
import { NO_GRADIENT, type Param, type TrainableModel } from './params.ts';

export type AttentionTarget = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj';
export type ExpertTarget = 'gate_up_proj' | 'down_proj';
export type LoraTarget = AttentionTarget | ExpertTarget;
export const LORA_TARGETS: readonly AttentionTarget[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
export const EXPERT_TARGETS: readonly ExpertTarget[] = ['gate_up_proj', 'down_proj'];

export interface LoraModule {
  layer: number;
  target: AttentionTarget;
  /** The transformers module path, e.g. model.layers.0.self_attn.q_proj. */
  path: string;
  inFeatures: number;
  outFeatures: number;
  /** First row of the projection's output this module adapts (q/k/v within the fused qkv). */
  rowOffset: number;
  A: Param; // [r, in]
  B: Param; // [out, r]
}

/** An adapter on one layer's stack of experts (gate_up_proj: mlp1, down_proj: mlp2), PEFT's layout. */
export interface ExpertLoraModule {
  layer: number;
  target: ExpertTarget;
  /** The transformers module path, model.layers.{n}.mlp.experts. */
  path: string;
  experts: number;
  inFeatures: number;
  outFeatures: number;
  A: Param; // [E*r, in]
  B: Param; // [out, r*E]
}

/** What an adapted projection's backward needs: u = x A^T [T, r] for each module applied. */
export interface LoraSaved {
  modules: LoraModule[];
  u: Float64Array[];
}

/** Which vocabulary table token rows replace rows of, and PEFT's module name for it. */
export type TokenTable = 'embedding' | 'unembedding';
export const TOKEN_MODULES: Record<TokenTable, string> = { embedding: 'embed_tokens', unembedding: 'lm_head' };
const TOKEN_PATHS: Record<TokenTable, string> = { embedding: 'model.embed_tokens', unembedding: 'lm_head' };

/** An adapter's rows for some tokens of one vocabulary table, in place of the base's. */
export interface TokenRows {
  table: TokenTable;
  /** Token ids, in the order of the rows (PEFT's order). */
  ids: Int32Array;
  rows: Param; // [ids, hidden]
  /** Token id to its row in `rows`. */
  index: Map<number, number>;
}

/** The PEFT key of a table's trainable token rows. */
export function tokenRowsKey(table: TokenTable): string {
  return `base_model.model.${TOKEN_PATHS[table]}.token_adapter.trainable_tokens_delta`;
}

export interface LoraOptions {
  rank: number;
  alpha: number;
  targets?: readonly LoraTarget[]; // default: all four
  /** The layers adapted (PEFT's layers_to_transform); default: all. */
  layers?: readonly number[];
  seed?: number;
  /** Token ids whose embedding or unembedding rows the adapter holds (zero until initTokenRows or a read). */
  tokens?: Partial<Record<TokenTable, readonly number[]>>;
}

/** The PEFT key prefix of a transformers module: PEFT wraps the causal LM as base_model.model. */
export function peftKey(path: string, matrix: 'lora_A' | 'lora_B'): string {
  return `base_model.model.${path}.${matrix}.weight`;
}

export class LoraAdapters {
  readonly rank: number;
  readonly alpha: number;
  /** alpha / rank: the factor on B A. */
  readonly scale: number;
  readonly modules: LoraModule[] = [];
  readonly expertModules: ExpertLoraModule[] = [];
  /** Token rows per table (absent: the base's rows are used). */
  readonly tokens: Partial<Record<TokenTable, TokenRows>> = {};
  private readonly byLayer: { qkv: LoraModule[]; out: LoraModule[] }[] = [];

  constructor(readonly config: ModelConfig, options: LoraOptions) {
    const { rank, alpha } = options;
    if (!Number.isInteger(rank) || rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${rank}`);
    if (!(alpha > 0)) throw new Error(`LoRA alpha must be positive, got ${alpha}`);
    this.rank = rank;
    this.alpha = alpha;
    this.scale = alpha / rank;
    const targets = new Set<LoraTarget>(options.targets ?? LORA_TARGETS);
    const layers = new Set(options.layers ?? Array.from({ length: config.numLayers }, (_, n) => n));
    for (const n of layers) if (!Number.isInteger(n) || n < 0 || n >= config.numLayers) throw new Error(`LoRA layer ${n} does not exist (the model has ${config.numLayers})`);
    const seed = options.seed ?? 0;
    const H = config.hiddenSize;
    const qWidth = config.headDim * config.numAttentionHeads;
    const kvWidth = config.headDim * config.numKeyValueHeads;
    const shapes: Record<AttentionTarget, [inFeatures: number, outFeatures: number, rowOffset: number]> = {
      q_proj: [H, qWidth, 0],
      k_proj: [H, kvWidth, qWidth],
      v_proj: [H, kvWidth, qWidth + kvWidth],
      o_proj: [qWidth, H, 0],
    };
    for (let n = 0; n < config.numLayers; n++) {
      const layer = { qkv: [] as LoraModule[], out: [] as LoraModule[] };
      for (const target of LORA_TARGETS) {
        if (!targets.has(target) || !layers.has(n)) continue;
        const [inFeatures, outFeatures, rowOffset] = shapes[target];
        const path = `model.layers.${n}.self_attn.${target}`;
        const param = (matrix: 'lora_A' | 'lora_B', shape: number[]): Param => {
          const size = shape[0]! * shape[1]!;
          return { name: peftKey(path, matrix), shape, value: new Float64Array(size), grad: new Float64Array(size), trainable: true };
        };
        const module: LoraModule = { layer: n, target, path, inFeatures, outFeatures, rowOffset, A: param('lora_A', [rank, inFeatures]), B: param('lora_B', [outFeatures, rank]) };
        const random = seededRandom(splitmix32(seed ^ (n * 4 + LORA_TARGETS.indexOf(target)))());
        const bound = 1 / Math.sqrt(inFeatures);
        for (let i = 0; i < module.A.value.length; i++) module.A.value[i] = (2 * random() - 1) * bound;
        this.modules.push(module);
        (target === 'o_proj' ? layer.out : layer.qkv).push(module);
      }
      this.byLayer.push(layer);
    }
    const E = config.numExperts, I = config.intermediateSize;
    const bothExperts = EXPERT_TARGETS.every((t) => targets.has(t));
    for (let n = 0; n < config.numLayers; n++) {
      if (!layers.has(n)) continue;
      for (const target of EXPERT_TARGETS) {
        if (!targets.has(target)) continue;
        const [inFeatures, outFeatures] = target === 'gate_up_proj' ? [H, 2 * I] : [I, H];
        const path = `model.layers.${n}.mlp.experts`;
        // gate_up_proj's wrapper is inside down_proj's when both are adapted (see the header).
        const keyPath = target === 'gate_up_proj' && bothExperts ? `${path}.base_layer` : path;
        const param = (matrix: 'lora_A' | 'lora_B', shape: number[]): Param => {
          const size = shape[0]! * shape[1]!;
          return { name: peftKey(keyPath, matrix), shape, value: new Float64Array(size), grad: new Float64Array(size), trainable: true };
        };
        const module: ExpertLoraModule = { layer: n, target, path, experts: E, inFeatures, outFeatures, A: param('lora_A', [E * rank, inFeatures]), B: param('lora_B', [outFeatures, rank * E]) };
        const random = seededRandom(splitmix32(seed ^ (0x5eed0000 + n * 4 + EXPERT_TARGETS.indexOf(target)))());
        const bound = 1 / Math.sqrt(inFeatures);
        for (let i = 0; i < module.A.value.length; i++) module.A.value[i] = (2 * random() - 1) * bound;
        this.expertModules.push(module);
      }
    }
    for (const table of ['embedding', 'unembedding'] as const) {
      const ids = options.tokens?.[table];
      if (ids === undefined || ids.length === 0) continue;
      const index = new Map<number, number>();
      ids.forEach((id, i) => {
        if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) throw new Error(`token row ${id} is outside the vocabulary (0..${config.vocabSize - 1})`);
        if (index.has(id)) throw new Error(`token ${id} is listed twice for the ${table}`);
        index.set(id, i);
      });
      const size = ids.length * H;
      const rows: Param = { name: tokenRowsKey(table), shape: [ids.length, H], value: new Float64Array(size), grad: new Float64Array(size), trainable: true };
      this.tokens[table] = { table, ids: Int32Array.from(ids), rows, index };
    }
  }

  params(): Param[] {
    return [
      ...this.modules.flatMap((m) => [m.A, m.B]), ...this.expertModules.flatMap((m) => [m.A, m.B]),
      ...(['embedding', 'unembedding'] as const).flatMap((t) => this.tokens[t] === undefined ? [] : [this.tokens[t].rows]),
    ];
  }

  /** Starts the token rows from the base's rows (PEFT's initialisation), so training starts from the base exactly. */
  initTokenRows(model: TrainableModel): void {
    const H = this.config.hiddenSize;
    for (const t of Object.values(this.tokens)) {
      const full = t.table === 'embedding' ? model.embedding : model.unembedding;
      t.ids.forEach((id, i) => {
        const row = model.tableRow(id);
        if (row >= 0) t.rows.value.set(full.value.subarray(row * H, (row + 1) * H), i * H);
        else t.rows.value.fill(0, i * H, (i + 1) * H);
      });
    }
  }

  /** Puts the embedding's token rows in place of the base rows in x [T, hidden] for `tokens`. */
  embedTokens(tokens: readonly number[], x: Float64Array): void {
    const t = this.tokens.embedding;
    if (t === undefined) return;
    const H = this.config.hiddenSize;
    tokens.forEach((id, p) => {
      const i = t.index.get(id);
      if (i !== undefined) x.set(t.rows.value.subarray(i * H, (i + 1) * H), p * H);
    });
  }

  /** With dx [T, hidden] the gradient of the embedded sequence: each token row's gradient. */
  embedTokensBackward(tokens: readonly number[], dx: Float64Array): void {
    const t = this.tokens.embedding;
    if (t === undefined || !t.rows.trainable) return;
    const H = this.config.hiddenSize;
    tokens.forEach((id, p) => {
      const i = t.index.get(id);
      if (i === undefined) return;
      for (let c = 0; c < H; c++) t.rows.grad[i * H + c] += dx[p * H + c]!;
    });
  }

  /** The adapters of layer n's experts for the MoE forward and backward, or undefined when it has none. */
  expertAdapter(layer: number): ExpertAdapter | undefined {
    const byMatrix = { mlp1: this.expertModule(layer, 'gate_up_proj'), mlp2: this.expertModule(layer, 'down_proj') };
    if (byMatrix.mlp1 === undefined && byMatrix.mlp2 === undefined) return undefined;
    return {
      forward: (matrix, expert, x, tokens, out) => {
        const m = byMatrix[matrix];
        if (m !== undefined) this.expertForward(m, expert, x, tokens, out);
      },
      backward: (matrix, expert, dy, x, tokens, dx) => {
        const m = byMatrix[matrix];
        if (m !== undefined) this.expertBackward(m, expert, dy, x, tokens, dx);
      },
    };
  }

  expertModule(layer: number, target: ExpertTarget): ExpertLoraModule | undefined {
    return this.expertModules.find((m) => m.layer === layer && m.target === target);
  }

  /** u = x A_e^T [T, r] for expert e. */
  private expertLow(m: ExpertLoraModule, expert: number, x: Float64Array, tokens: number): Float64Array {
    const r = this.rank, n = m.inFeatures;
    const u = new Float64Array(tokens * r);
    const A = m.A.value;
    for (let t = 0; t < tokens; t++) {
      for (let j = 0; j < r; j++) {
        const row = (expert * r + j) * n;
        let sum = 0;
        for (let c = 0; c < n; c++) sum += x[t * n + c]! * A[row + c]!;
        u[t * r + j] = sum;
      }
    }
    return u;
  }

  /** out [T, out] += scale * (x A_e^T) B_e^T for expert e's tokens x [T, in]. */
  expertForward(m: ExpertLoraModule, expert: number, x: Float64Array, tokens: number, out: Float64Array): void {
    const r = this.rank, E = m.experts, w = m.outFeatures;
    const u = this.expertLow(m, expert, x, tokens);
    const B = m.B.value;
    for (let t = 0; t < tokens; t++) {
      for (let o = 0; o < w; o++) {
        let sum = 0;
        for (let j = 0; j < r; j++) sum += B[o * r * E + j * E + expert]! * u[t * r + j]!;
        out[t * w + o] += this.scale * sum;
      }
    }
  }

  /** With dy [T, out] the gradient of expert e's adapted output: A_e, B_e gradients and dx += its share. */
  expertBackward(m: ExpertLoraModule, expert: number, dy: Float64Array, x: Float64Array, tokens: number, dx: Float64Array): void {
    const r = this.rank, E = m.experts, w = m.outFeatures, n = m.inFeatures;
    const u = this.expertLow(m, expert, x, tokens);
    const A = m.A.value, B = m.B.value;
    const du = new Float64Array(r);
    for (let t = 0; t < tokens; t++) {
      du.fill(0);
      for (let o = 0; o < w; o++) {
        const g = this.scale * dy[t * w + o]!;
        if (g === 0) continue;
        for (let j = 0; j < r; j++) {
          const col = o * r * E + j * E + expert;
          if (m.B.trainable) m.B.grad[col] += g * u[t * r + j]!;
          du[j] += g * B[col]!;
        }
      }
      for (let j = 0; j < r; j++) {
        const g = du[j]!, row = (expert * r + j) * n;
        for (let c = 0; c < n; c++) {
          if (m.A.trainable) m.A.grad[row + c] += g * x[t * n + c]!;
          dx[t * n + c] += g * A[row + c]!;
        }
      }
    }
  }

  /** Expert e's update delta [out, in] (the orientation of our mlp1/mlp2 rows): scale * B_e A_e. */
  expertDelta(m: ExpertLoraModule, expert: number): Float64Array {
    const r = this.rank, E = m.experts, n = m.inFeatures;
    const delta = new Float64Array(m.outFeatures * n);
    for (let o = 0; o < m.outFeatures; o++) {
      for (let j = 0; j < r; j++) {
        const b = this.scale * m.B.value[o * r * E + j * E + expert]!;
        if (b === 0) continue;
        const row = (expert * r + j) * n;
        for (let c = 0; c < n; c++) delta[o * n + c] += b * m.A.value[row + c]!;
      }
    }
    return delta;
  }

  module(layer: number, target: AttentionTarget): LoraModule | undefined {
    return this.modules.find((m) => m.layer === layer && m.target === target);
  }

  zeroGrad(): void {
    for (const p of this.params()) p.grad.fill(0);
  }

  /** Adds layer n's q/k/v adapters into qkv [T, qkvWidth] for input x [T, hidden]. */
  forwardQkv(layer: number, x: Float64Array, tokens: number, qkv: Float64Array): LoraSaved | null {
    return this.apply(this.byLayer[layer]!.qkv, x, tokens, qkv, qkv.length / tokens);
  }

  /** Adds layer n's o_proj adapter into out [T, hidden] for input x [T, heads*hd]. */
  forwardOut(layer: number, x: Float64Array, tokens: number, out: Float64Array): LoraSaved | null {
    return this.apply(this.byLayer[layer]!.out, x, tokens, out, out.length / tokens);
  }

  private apply(modules: LoraModule[], x: Float64Array, tokens: number, out: Float64Array, outWidth: number): LoraSaved | null {
    if (modules.length === 0) return null;
    const r = this.rank;
    const saved: LoraSaved = { modules, u: [] };
    for (const m of modules) {
      const u = new Float64Array(tokens * r);
      for (let t = 0; t < tokens; t++) {
        for (let j = 0; j < r; j++) {
          let sum = 0;
          for (let c = 0; c < m.inFeatures; c++) sum += x[t * m.inFeatures + c]! * m.A.value[j * m.inFeatures + c]!;
          u[t * r + j] = sum;
        }
        for (let o = 0; o < m.outFeatures; o++) {
          let sum = 0;
          for (let j = 0; j < r; j++) sum += m.B.value[o * r + j]! * u[t * r + j]!;
          out[t * outWidth + m.rowOffset + o] += this.scale * sum;
        }
      }
      saved.u.push(u);
    }
    return saved;
  }

  /**
   * With dy the gradient of the adapted projection's output [T, outWidth]: dB += s * dy^T u,
   * du = s * dy B, dA += du^T x, dx += du A.
   */
  backward(saved: LoraSaved, dy: Float64Array, x: Float64Array, tokens: number, dx: Float64Array): void {
    const r = this.rank;
    const outWidth = dy.length / tokens;
    saved.modules.forEach((m, i) => {
      const u = saved.u[i]!;
      const du = new Float64Array(r);
      for (let t = 0; t < tokens; t++) {
        du.fill(0);
        for (let o = 0; o < m.outFeatures; o++) {
          const g = this.scale * dy[t * outWidth + m.rowOffset + o]!;
          if (g === 0) continue;
          for (let j = 0; j < r; j++) {
            if (m.B.trainable) m.B.grad[o * r + j] += g * u[t * r + j]!;
            du[j] += g * m.B.value[o * r + j]!;
          }
        }
        for (let j = 0; j < r; j++) {
          const g = du[j]!;
          for (let c = 0; c < m.inFeatures; c++) {
            if (m.A.trainable) m.A.grad[j * m.inFeatures + c] += g * x[t * m.inFeatures + c]!;
            dx[t * m.inFeatures + c] += g * m.A.value[j * m.inFeatures + c]!;
          }
        }
      }
    });
  }

  /** Folds the adapters into the model's weights: W += (alpha/r) B A on each adapted block of rows. */
  mergeInto(model: TrainableModel): void {
    const r = this.rank;
    for (const m of this.modules) {
      const attn = model.blocks[m.layer]!.attn;
      const w = m.target === 'o_proj' ? attn.outWeight.value : attn.qkvWeight.value;
      for (let o = 0; o < m.outFeatures; o++) {
        for (let c = 0; c < m.inFeatures; c++) {
          let sum = 0;
          for (let j = 0; j < r; j++) sum += m.B.value[o * r + j]! * m.A.value[j * m.inFeatures + c]!;
          w[(m.rowOffset + o) * m.inFeatures + c] += this.scale * sum;
        }
      }
    }
    const H = this.config.hiddenSize;
    for (const t of Object.values(this.tokens)) {
      const full = t.table === 'embedding' ? model.embedding : model.unembedding;
      t.ids.forEach((id, i) => {
        const row = model.tableRow(id);
        if (row < 0) throw new Error(`token ${id} has no row in the model's compact vocabulary`);
        full.value.set(t.rows.value.subarray(i * H, (i + 1) * H), row * H);
      });
    }
    for (const m of this.expertModules) {
      const stack = m.target === 'gate_up_proj' ? model.blocks[m.layer]!.mlp.mlp1Weight.value : model.blocks[m.layer]!.mlp.mlp2Weight.value;
      const size = m.outFeatures * m.inFeatures;
      for (let e = 0; e < m.experts; e++) {
        const delta = this.expertDelta(m, e);
        for (let i = 0; i < size; i++) stack[e * size + i] += delta[i]!;
      }
    }
  }
}

/** Freezes every base weight (LoRA trains only the adapters) and releases their gradients. */
export function freezeBase(model: TrainableModel): void {
  for (const p of model.params()) {
    p.trainable = false;
    p.grad = NO_GRADIENT;
  }
}
