// The Hugging Face layout of gpt-oss (repository root: config.json with model_type gpt_oss,
// model-0000i-of-0000n.safetensors + model.safetensors.index.json). Owns the mapping between its
// names and the `original/` layout's: config fields, tensor names, q/k/v split of the fused qkv.
// The expert tensors keep the original MXFP4 packing (`*_blocks` [E, rows, cols/32, 16],
// `*_scales` [E, rows, cols/32]) and gate_up keeps mlp1's interleaving (even rows glu, odd linear).
import { UserError } from '../errors.ts';
import { validateConfig, type ModelConfig } from '../model/config.ts';
import { readJson } from '../files.ts';
import { originalTensorShapes } from './original.ts';
import { TensorReader } from './reader.ts';
import { SafetensorsCheckpoint } from './safetensors.ts';
import type { BlockWeights, ModelWeights } from '../model/weights.ts';
import { widenToF32, type Bf16Matrix, type TensorStore } from '../tensor/index.ts';

/** True when a parsed config.json is the HF layout's (model_type gpt_oss). */
export function isHfConfig(json: unknown): boolean {
  return typeof json === 'object' && json !== null && (json as Record<string, unknown>)['model_type'] === 'gpt_oss';
}

/** Parses the HF layout's config.json object into a ModelConfig; `source` names the file in errors. */
export function parseHfConfig(json: unknown, source: string): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UserError('checkpoint', `${source}: expected a JSON object`);
  }
  const obj = json as Record<string, unknown>;
  const num = (field: string, fallback?: number): number => {
    const v = obj[field];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (v === undefined && fallback !== undefined) return fallback;
    throw new UserError('checkpoint', `${source}: field "${field}" is missing or not a number`);
  };
  const quant = obj['quantization_config'];
  if (quant !== undefined && quant !== null) {
    const method = (quant as Record<string, unknown>)['quant_method'];
    if (method !== 'mxfp4') throw new UserError('checkpoint', `${source}: quantization_config.quant_method is "${String(method)}", only mxfp4 checkpoints are supported`);
  }
  const rope = obj['rope_scaling'];
  let factor = 1, ntkAlpha = 1, ntkBeta = 32, initialContext = num('initial_context_length', 4096);
  if (rope !== undefined && rope !== null) {
    if (typeof rope !== 'object') throw new UserError('checkpoint', `${source}: rope_scaling must be an object`);
    const r = rope as Record<string, unknown>;
    const type = r['rope_type'] ?? r['type'];
    if (type !== undefined && type !== 'yarn') throw new UserError('checkpoint', `${source}: rope_scaling.rope_type is "${String(type)}", gpt-oss uses yarn`);
    const rnum = (field: string, fallback: number): number => {
      const v = r[field];
      if (v === undefined) return fallback;
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new UserError('checkpoint', `${source}: rope_scaling.${field} is not a number`);
      return v;
    };
    factor = rnum('factor', 1);
    ntkBeta = rnum('beta_fast', 32);
    ntkAlpha = rnum('beta_slow', 1);
    initialContext = rnum('original_max_position_embeddings', initialContext);
  }
  const config: ModelConfig = {
    numLayers: num('num_hidden_layers'),
    numExperts: num('num_local_experts'),
    expertsPerToken: num('num_experts_per_tok', typeof obj['experts_per_token'] === 'number' ? (obj['experts_per_token'] as number) : undefined),
    vocabSize: num('vocab_size'),
    hiddenSize: num('hidden_size'),
    intermediateSize: num('intermediate_size'),
    swigluLimit: num('swiglu_limit', 7),
    headDim: num('head_dim'),
    numAttentionHeads: num('num_attention_heads'),
    numKeyValueHeads: num('num_key_value_heads'),
    slidingWindow: num('sliding_window'),
    initialContextLength: initialContext,
    ropeTheta: num('rope_theta'),
    ropeScalingFactor: factor,
    ropeNtkAlpha: ntkAlpha,
    ropeNtkBeta: ntkBeta,
  };
  const layerTypes = obj['layer_types'];
  if (Array.isArray(layerTypes)) {
    layerTypes.forEach((t, n) => {
      const expected = n % 2 === 0 ? 'sliding_attention' : 'full_attention';
      if (t !== expected) throw new UserError('checkpoint', `${source}: layer_types[${n}] is "${String(t)}", gpt-oss alternates sliding (even) and full (odd) attention`);
    });
  }
  validateConfig(config, source);
  return config;
}

/** Writes a ModelConfig as the HF layout's config.json, with the fields the released one has. */
export function toHfConfigJson(c: ModelConfig): Record<string, unknown> {
  return {
    architectures: ['GptOssForCausalLM'],
    attention_bias: true,
    attention_dropout: 0.0,
    eos_token_id: 200002,
    experts_per_token: c.expertsPerToken,
    head_dim: c.headDim,
    hidden_act: 'silu',
    hidden_size: c.hiddenSize,
    initial_context_length: c.initialContextLength,
    initializer_range: 0.02,
    intermediate_size: c.intermediateSize,
    layer_types: Array.from({ length: c.numLayers }, (_, n) => (n % 2 === 0 ? 'sliding_attention' : 'full_attention')),
    max_position_embeddings: Math.round(c.initialContextLength * Math.max(1, c.ropeScalingFactor)),
    model_type: 'gpt_oss',
    num_attention_heads: c.numAttentionHeads,
    num_experts_per_tok: c.expertsPerToken,
    num_hidden_layers: c.numLayers,
    num_key_value_heads: c.numKeyValueHeads,
    num_local_experts: c.numExperts,
    output_router_logits: false,
    pad_token_id: 199999,
    quantization_config: {
      modules_to_not_convert: ['model.layers.*.self_attn', 'model.layers.*.mlp.router', 'model.embed_tokens', 'lm_head'],
      quant_method: 'mxfp4',
    },
    rms_norm_eps: 1e-5,
    rope_scaling: {
      beta_fast: c.ropeNtkBeta,
      beta_slow: c.ropeNtkAlpha,
      factor: c.ropeScalingFactor,
      original_max_position_embeddings: c.initialContextLength,
      rope_type: 'yarn',
      truncate: false,
    },
    rope_theta: c.ropeTheta,
    router_aux_loss_coef: 0.9,
    sliding_window: c.slidingWindow,
    swiglu_limit: c.swigluLimit,
    tie_word_embeddings: false,
    use_cache: true,
    vocab_size: c.vocabSize,
  };
}

// Original-layout name -> HF name, per block and for the model-level tensors. The fused
// `attn.qkv.{weight,bias}` has no single HF name: it is split (see HF_QKV_PARTS).
const BLOCK_NAMES: [string, string][] = [
  ['attn.norm.scale', 'input_layernorm.weight'],
  ['attn.sinks', 'self_attn.sinks'],
  ['attn.out.weight', 'self_attn.o_proj.weight'],
  ['attn.out.bias', 'self_attn.o_proj.bias'],
  ['mlp.norm.scale', 'post_attention_layernorm.weight'],
  ['mlp.gate.weight', 'mlp.router.weight'],
  ['mlp.gate.bias', 'mlp.router.bias'],
  ['mlp.mlp1_weight.blocks', 'mlp.experts.gate_up_proj_blocks'],
  ['mlp.mlp1_weight.scales', 'mlp.experts.gate_up_proj_scales'],
  ['mlp.mlp1_bias', 'mlp.experts.gate_up_proj_bias'],
  ['mlp.mlp2_weight.blocks', 'mlp.experts.down_proj_blocks'],
  ['mlp.mlp2_weight.scales', 'mlp.experts.down_proj_scales'],
  ['mlp.mlp2_bias', 'mlp.experts.down_proj_bias'],
];
const TOP_NAMES: [string, string][] = [
  ['embedding.weight', 'model.embed_tokens.weight'],
  ['norm.scale', 'model.norm.weight'],
  ['unembedding.weight', 'lm_head.weight'],
];
const TO_HF = new Map<string, string>(TOP_NAMES);
const FROM_HF = new Map<string, string>(TOP_NAMES.map(([a, b]) => [b, a]));

/** The HF name of an original-layout tensor (not for the fused qkv, which HF splits). */
export function hfTensorName(original: string): string {
  const top = TO_HF.get(original);
  if (top !== undefined) return top;
  const m = /^block\.(\d+)\.(.+)$/.exec(original);
  if (m !== null) {
    const hit = BLOCK_NAMES.find(([o]) => o === m[2]);
    if (hit !== undefined) return `model.layers.${m[1]}.${hit[1]}`;
  }
  throw new Error(`hf: no Hugging Face name for tensor "${original}"`);
}

/** The original-layout name of an HF tensor, or undefined for q/k/v parts and unknown names. */
export function originalTensorName(hf: string): string | undefined {
  const top = FROM_HF.get(hf);
  if (top !== undefined) return top;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (m !== null) {
    const hit = BLOCK_NAMES.find(([, h]) => h === m[2]);
    if (hit !== undefined) return `block.${m[1]}.${hit[0]}`;
  }
  return undefined;
}

/** The HF tensors that hold block n's fused qkv, in concatenation order (q, then k, then v). */
export function hfQkvNames(layer: number, kind: 'weight' | 'bias'): [string, string, string] {
  const p = `model.layers.${layer}.self_attn`;
  return [`${p}.q_proj.${kind}`, `${p}.k_proj.${kind}`, `${p}.v_proj.${kind}`];
}

// ---- loading ----------------------------------------------------------------------------------

/** The shapes the HF layout's tensors must have under `config` (q/k/v split, the rest renamed). */
export function hfTensorShapes(config: ModelConfig): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const H = config.hiddenSize, D = config.headDim;
  for (const [name, shape] of originalTensorShapes(config)) {
    const qkv = /^block\.(\d+)\.attn\.qkv\.(weight|bias)$/.exec(name);
    if (qkv === null) {
      out.set(hfTensorName(name), shape);
      continue;
    }
    const kind = qkv[2] as 'weight' | 'bias';
    const [q, k, v] = hfQkvNames(Number(qkv[1]), kind);
    const rows = [D * config.numAttentionHeads, D * config.numKeyValueHeads, D * config.numKeyValueHeads];
    [q, k, v].forEach((n, i) => out.set(n, kind === 'weight' ? [rows[i]!, H] : [rows[i]!]));
  }
  return out;
}

/**
 * Loads the HF layout from `dir` into the same ModelWeights the original layout gives: q/k/v are
 * concatenated into the fused qkv (rows q, then k, then v), the experts' MXFP4 tensors are taken
 * as they are (same packing and gate/up interleaving as mlp1).
 */
export async function loadHfWeights(dir: string, configPath: string, store: TensorStore): Promise<ModelWeights> {
  const config = parseHfConfig(readJson(configPath), configPath);
  const checkpoint = SafetensorsCheckpoint.open(dir);
  try {
    const shapes = hfTensorShapes(config);
    for (const name of checkpoint.names()) {
      if (shapes.has(name)) continue;
      const layer = /^model\.layers\.(\d+)\./.exec(name);
      if (layer !== null && Number(layer[1]) >= config.numLayers) {
        throw new UserError('checkpoint', `${configPath}: num_hidden_layers is ${config.numLayers} but ${checkpoint.info(name)!.file} has tensor "${name}"`);
      }
    }
    checkpoint.deferReads = true;
    const reader = new TensorReader(checkpoint, store, shapes, configPath);
    const blocks: BlockWeights[] = [];
    for (let n = 0; n < config.numLayers; n++) {
      const t = (suffix: string) => `model.layers.${n}.${suffix}`;
      blocks.push({
        attn: {
          norm: { scale: reader.vector(t('input_layernorm.weight')) },
          qkv: { weight: fusedQkvWeight(reader, n, config.hiddenSize), bias: fusedQkvBias(reader, n) },
          sinks: reader.vector(t('self_attn.sinks')),
          out: { weight: reader.bf16Matrix(t('self_attn.o_proj.weight')), bias: reader.vector(t('self_attn.o_proj.bias')) },
        },
        mlp: {
          norm: { scale: reader.vector(t('post_attention_layernorm.weight')) },
          gate: { weight: reader.bf16Matrix(t('mlp.router.weight')), bias: reader.vector(t('mlp.router.bias')) },
          mlp1Weight: reader.mxfp4(t('mlp.experts.gate_up_proj_blocks'), t('mlp.experts.gate_up_proj_scales')),
          mlp1Bias: reader.vector(t('mlp.experts.gate_up_proj_bias')),
          mlp2Weight: reader.mxfp4(t('mlp.experts.down_proj_blocks'), t('mlp.experts.down_proj_scales')),
          mlp2Bias: reader.vector(t('mlp.experts.down_proj_bias')),
        },
      });
    }
    const weights: ModelWeights = {
      config,
      embedding: { weight: reader.embeddingTable('model.embed_tokens.weight') },
      blocks,
      norm: { scale: reader.vector('model.norm.weight') },
      unembedding: { weight: reader.bf16Matrix('lm_head.weight') },
    };
    await checkpoint.flush();
    return weights;
  } finally {
    checkpoint.close();
  }
}

function fusedQkvWeight(reader: TensorReader, layer: number, hidden: number): Bf16Matrix {
  const names = hfQkvNames(layer, 'weight');
  const infos = names.map((n) => reader.info(n, ['BF16']));
  const rows = infos.reduce((s, i) => s + i.shape[0]!, 0);
  const dest = reader.store.allocate(rows * hidden * 2, `block.${layer}.attn.qkv.weight`);
  let at = 0;
  for (const n of names) {
    const part = reader.checkpoint.readBytes(n);
    dest.set(part, at);
    at += part.length;
  }
  return { rows, cols: hidden, data: new Uint16Array(dest.buffer, dest.byteOffset, dest.byteLength >>> 1) };
}

function fusedQkvBias(reader: TensorReader, layer: number): Float32Array {
  const names = hfQkvNames(layer, 'bias');
  const infos = names.map((n) => reader.info(n, ['BF16', 'F16', 'F32']));
  const count = infos.reduce((s, i) => s + i.shape[0]!, 0);
  const dest = reader.store.allocate(count * 4, `block.${layer}.attn.qkv.bias`);
  const out = new Float32Array(dest.buffer, dest.byteOffset, count);
  let at = 0;
  names.forEach((n, i) => {
    const len = infos[i]!.shape[0]!;
    widenToF32(infos[i]!.dtype, reader.checkpoint.readBytes(n), out.subarray(at, at + len));
    at += len;
  });
  return out;
}
