// LoRA adapters on disk in PEFT's format, so adapters move both ways between gptoss and Hugging
// Face PEFT/TRL: a folder with adapter_config.json (peft_type LORA, r, lora_alpha,
// target_modules, ...) and adapter_model.safetensors holding lora_A [r, in] and lora_B [out, r]
// per adapted module under the names lora.ts documents; adapters on the experts are PEFT's
// `target_parameters` (mlp.experts.gate_up_proj, mlp.experts.down_proj). We write F32 tensors; we
// read F32, BF16 or F16. Anything we cannot apply exactly (rsLoRA, DoRA, fan_in_fan_out, modules
// or parameters other than the attention projections and the two expert stacks, per-module ranks)
// is refused with a UserError naming it, never ignored. Token rows (lora.ts) are PEFT's
// `trainable_token_indices` ({"embed_tokens": [...], "lm_head": [...]}; a plain list means the
// embedding) with their `token_adapter.trainable_tokens_delta` tensors.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { widenToF32 } from '../tensor/index.ts';
import type { ModelConfig } from '../model/config.ts';
import { readRegularFile } from '../files.ts';
import { SafetensorsFile, writeSafetensors } from '../checkpoint/safetensors.ts';
import { EXPERT_TARGETS, LORA_TARGETS, LoraAdapters, TOKEN_MODULES, tokenRowsKey, type ExpertTarget, type LoraTarget, type TokenTable } from './lora.ts';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

const KEY = /^base_model\.model\.model\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|o_proj)\.lora_(A|B)\.weight$/;
const EXPERT_KEY = /^base_model\.model\.model\.layers\.(\d+)\.mlp\.experts\.(?:base_layer\.)?lora_(A|B)\.weight$/;
/** A target_parameters entry for the experts: the parameter path, optionally from `layers.{n}.` or `model.layers.{n}.`. */
const EXPERT_PARAMETER = /^(?:(?:model\.)?layers\.(\d+)\.)?mlp\.experts\.(gate_up_proj|down_proj)$/;

/** Writes `lora` into `dir` (created if needed) as a PEFT LoRA adapter for `baseModel`. */
export function writePeftAdapter(lora: LoraAdapters, dir: string, baseModel = ''): void {
  mkdirSync(dir, { recursive: true });
  const targets = LORA_TARGETS.filter((t) => lora.modules.some((m) => m.target === t));
  const layers = [...new Set([...lora.modules, ...lora.expertModules].map((m) => m.layer))].sort((a, b) => a - b);
  const allLayers = layers.length === lora.config.numLayers;
  // PEFT matches target_parameters by suffix and layers_to_transform does not reach them, so a
  // subset of layers names each layer's parameter.
  const parameters = lora.expertModules.map((m) => allLayers ? `mlp.experts.${m.target}` : `${m.path}.${m.target}`);
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: lora.rank,
    lora_alpha: lora.alpha,
    lora_dropout: 0,
    target_modules: targets,
    ...(parameters.length === 0 ? {} : { target_parameters: [...new Set(parameters)] }),
    layers_to_transform: allLayers || targets.length === 0 ? null : layers,
    ...(Object.keys(lora.tokens).length === 0 ? {} : {
      trainable_token_indices: Object.fromEntries(Object.values(lora.tokens).map((t) => [TOKEN_MODULES[t.table], [...t.ids]])),
    }),
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    inference_mode: true,
    init_lora_weights: true,
  };
  writeFileSync(join(dir, ADAPTER_CONFIG), JSON.stringify(config, null, 2) + '\n');
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), lora.params().map((p) => ({ name: p.name, dtype: 'F32' as const, shape: p.shape, data: Float32Array.from(p.value) })));
}

/** Reads a PEFT LoRA adapter folder for a model of `config`. */
export function readPeftAdapter(dir: string, config: ModelConfig): LoraAdapters {
  const configPath = join(dir, ADAPTER_CONFIG);
  const weightsPath = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(configPath)) throw new UserError('checkpoint', `${dir}: no ${ADAPTER_CONFIG} (not a PEFT adapter folder)`);
  if (!existsSync(weightsPath)) throw new UserError('checkpoint', `${dir}: no ${ADAPTER_WEIGHTS} (adapters saved as .bin are not read; save with safetensors)`);
  let json: unknown;
  try {
    json = JSON.parse(readRegularFile(configPath));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError('checkpoint', `${configPath}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UserError('checkpoint', `${configPath}: expected a JSON object`);
  const c = json as Record<string, unknown>;
  const bad: (what: string) => never = (what) => {
    throw new UserError('checkpoint', `${configPath}: ${what}`);
  };
  if (c['peft_type'] !== 'LORA') bad(`peft_type is ${JSON.stringify(c['peft_type'])}; only LORA adapters are supported`);
  const rank = c['r'];
  const alpha = c['lora_alpha'];
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank < 1 || rank > 65536) bad(`r must be a positive integer, got ${JSON.stringify(rank)}`);
  if (typeof alpha !== 'number' || !(alpha > 0)) bad(`lora_alpha must be a positive number, got ${JSON.stringify(alpha)}`);
  if (c['use_rslora'] === true) bad('use_rslora is not supported (its scale is lora_alpha/sqrt(r))');
  if (c['use_dora'] === true) bad('use_dora (DoRA) is not supported');
  if (c['fan_in_fan_out'] === true) bad('fan_in_fan_out is not supported (gpt-oss projections are not Conv1D)');
  for (const field of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = c[field];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Object.keys(v).length > 0)) bad(`${field} (per-module ranks or alphas) is not supported`);
  }
  if (c['bias'] !== undefined && c['bias'] !== 'none') bad(`bias ${JSON.stringify(c['bias'])} is not supported (only "none")`);
  const parameters = c['target_parameters'] ?? [];
  if (!Array.isArray(parameters) || parameters.some((v) => typeof v !== 'string')) bad('target_parameters must be a list of parameter names');
  const expertTargets = new Set<ExpertTarget>();
  for (const name of parameters as string[]) {
    const m = EXPERT_PARAMETER.exec(name);
    if (m === null) bad(`target_parameters "${name}" is not supported (only mlp.experts.gate_up_proj and mlp.experts.down_proj)`);
    expertTargets.add(m[2] as ExpertTarget);
  }

  const tokens = tokenIndices(c['trainable_token_indices'], config.vocabSize, bad);
  const tokenKeys = new Map((['embedding', 'unembedding'] as const).map((t) => [tokenRowsKey(t), t]));

  const file = SafetensorsFile.open(weightsPath);
  try {
    // target null: an expert adapter (which of the two its name says only with the config's targets).
    const found = new Map<string, { layer: number; target: LoraTarget | null }>();
    for (const [name, info] of file.tensors) {
      const table = tokenKeys.get(name);
      if (table !== undefined) {
        if (tokens[table] === undefined) throw new UserError('checkpoint', `${weightsPath}: tensor "${name}" holds token rows but ${ADAPTER_CONFIG}'s trainable_token_indices names no ${TOKEN_MODULES[table]} tokens`);
        if (!['F32', 'BF16', 'F16'].includes(info.dtype)) throw new UserError('checkpoint', `${weightsPath}: tensor "${name}" has dtype ${info.dtype}; expected F32, BF16 or F16`);
        continue;
      }
      const m = KEY.exec(name);
      const expert = m === null ? EXPERT_KEY.exec(name) : null;
      if (m === null && expert === null) throw new UserError('checkpoint', `${weightsPath}: tensor "${name}" is not a LoRA matrix of an attention projection or of the experts (only q_proj, k_proj, v_proj, o_proj and mlp.experts adapters are supported)`);
      if (expert !== null && expertTargets.size === 0) throw new UserError('checkpoint', `${weightsPath}: tensor "${name}" adapts the experts but ${ADAPTER_CONFIG} has no target_parameters naming them`);
      const layer = Number((m ?? expert)![1]);
      if (layer >= config.numLayers) throw new UserError('checkpoint', `${weightsPath}: tensor "${name}" is for layer ${layer} but the model has ${config.numLayers} layers`);
      if (!['F32', 'BF16', 'F16'].includes(info.dtype)) throw new UserError('checkpoint', `${weightsPath}: tensor "${name}" has dtype ${info.dtype}; expected F32, BF16 or F16`);
      found.set(name, { layer, target: m === null ? null : m[2] as LoraTarget });
    }
    if (found.size === 0 && Object.keys(tokens).length === 0) throw new UserError('checkpoint', `${weightsPath}: no LoRA tensors`);
    const targets: LoraTarget[] = [
      ...LORA_TARGETS.filter((t) => [...found.values()].some((f) => f.target === t)),
      ...([...found.values()].some((f) => f.target === null) ? EXPERT_TARGETS.filter((t) => expertTargets.has(t)) : []),
    ];
    const layers = [...new Set([...found.values()].map((f) => f.layer))];
    const lora = new LoraAdapters(config, { rank, alpha, targets, layers, tokens });
    const tokenParams = new Set(Object.values(lora.tokens).map((t) => t.rows));
    for (const p of lora.params()) {
      const info = file.tensors.get(p.name);
      if (info === undefined) {
        throw new UserError('checkpoint', tokenParams.has(p)
          ? `${weightsPath}: tensor "${p.name}" is missing (${ADAPTER_CONFIG}'s trainable_token_indices names its tokens)`
          : `${weightsPath}: tensor "${p.name}" is missing (every adapted layer needs A and B for each target module)`);
      }
      if (info.shape.length !== 2 || info.shape[0] !== p.shape[0] || info.shape[1] !== p.shape[1]) {
        throw new UserError('checkpoint', tokenParams.has(p)
          ? `${weightsPath}: tensor "${p.name}" has shape ${JSON.stringify(info.shape)}, expected ${JSON.stringify(p.shape)} (one row of ${config.hiddenSize} per token in trainable_token_indices)`
          : `${weightsPath}: tensor "${p.name}" has shape ${JSON.stringify(info.shape)}, expected ${JSON.stringify(p.shape)} (r=${rank}, this model's projection sizes and ${config.numExperts} experts)`);
      }
      const raw = new Uint8Array(info.byteLength);
      file.readInto(p.name, raw);
      const values = new Float32Array(p.value.length);
      widenToF32(info.dtype, raw, values);
      p.value.set(values);
    }
    return lora;
  } finally {
    file.close();
  }
}

/**
 * PEFT's trainable_token_indices: a list of ids (the input embedding's) or a map from the module
 * name (embed_tokens, lm_head, optionally with its path) to ids.
 */
function tokenIndices(raw: unknown, vocabSize: number, bad: (what: string) => never): Partial<Record<TokenTable, number[]>> {
  if (raw === undefined || raw === null) return {};
  const entries: [string, unknown][] = Array.isArray(raw) ? [['embed_tokens', raw]] : typeof raw === 'object' ? Object.entries(raw) : bad('trainable_token_indices must be a list of token ids or a map from embed_tokens / lm_head to lists');
  const out: Partial<Record<TokenTable, number[]>> = {};
  for (const [module, ids] of entries) {
    const table = (['embedding', 'unembedding'] as const).find((t) => module === TOKEN_MODULES[t] || module.endsWith(`.${TOKEN_MODULES[t]}`));
    if (table === undefined) bad(`trainable_token_indices names "${module}"; only embed_tokens and lm_head are supported`);
    if (out[table] !== undefined) bad(`trainable_token_indices names ${TOKEN_MODULES[table]} twice`);
    if (!Array.isArray(ids) || ids.some((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize)) bad(`trainable_token_indices.${module} must be a list of token ids below ${vocabSize}`);
    if (new Set(ids).size !== ids.length) bad(`trainable_token_indices.${module} lists a token twice`);
    if (ids.length > 0) out[table] = ids as number[];
  }
  return out;
}
