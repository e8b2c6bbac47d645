// The `original/` layout (the one the official reference loads): its tensor table under a config,
// and reading it into ModelWeights (expert stacks in MXFP4, or unquantised in a float export). Every tensor must exist with the shape the config implies and
// a supported dtype, and no tensor may contradict the config.
import { UserError } from '../errors.ts';
import { parseOriginalConfig, type ModelConfig } from '../model/config.ts';
import type { BlockWeights, ModelWeights } from '../model/weights.ts';
import type { Mxfp4Matrices, TensorStore } from '../tensor/index.ts';
import { readJson } from '../files.ts';
import { TensorReader } from './reader.ts';
import { SafetensorsCheckpoint } from './safetensors.ts';

/**
 * Loads the `original/` layout from `dir` (its config.json at `configPath` + *.safetensors; other
 * files are ignored) into `store`.
 */
export async function loadOriginalWeights(dir: string, configPath: string, store: TensorStore): Promise<ModelWeights> {
  const config = parseOriginalConfig(readJson(configPath), configPath);
  const checkpoint = SafetensorsCheckpoint.open(dir);
  try {
    checkpoint.deferReads = true;
    const weights = readOriginalWeights(config, checkpoint, store, configPath);
    await checkpoint.flush();
    return weights;
  } finally {
    checkpoint.close();
  }
}

/** The shapes the original layout's tensors must have under `config`. */
export function originalTensorShapes(config: ModelConfig): Map<string, number[]> {
  const { vocabSize: V, hiddenSize: H, intermediateSize: I, numExperts: E, headDim: D, numAttentionHeads: Q, numKeyValueHeads: K } = config;
  const qkv = D * (Q + 2 * K);
  const shapes = new Map<string, number[]>();
  shapes.set('embedding.weight', [V, H]);
  for (let n = 0; n < config.numLayers; n++) {
    const b = `block.${n}`;
    shapes.set(`${b}.attn.norm.scale`, [H]);
    shapes.set(`${b}.attn.qkv.weight`, [qkv, H]);
    shapes.set(`${b}.attn.qkv.bias`, [qkv]);
    shapes.set(`${b}.attn.sinks`, [Q]);
    shapes.set(`${b}.attn.out.weight`, [H, D * Q]);
    shapes.set(`${b}.attn.out.bias`, [H]);
    shapes.set(`${b}.mlp.norm.scale`, [H]);
    shapes.set(`${b}.mlp.gate.weight`, [E, H]);
    shapes.set(`${b}.mlp.gate.bias`, [E]);
    shapes.set(`${b}.mlp.mlp1_weight.blocks`, [E, 2 * I, H / 32, 16]);
    shapes.set(`${b}.mlp.mlp1_weight.scales`, [E, 2 * I, H / 32]);
    shapes.set(`${b}.mlp.mlp1_bias`, [E, 2 * I]);
    shapes.set(`${b}.mlp.mlp2_weight.blocks`, [E, H, I / 32, 16]);
    shapes.set(`${b}.mlp.mlp2_weight.scales`, [E, H, I / 32]);
    shapes.set(`${b}.mlp.mlp2_bias`, [E, H]);
  }
  shapes.set('norm.scale', [H]);
  shapes.set('unembedding.weight', [V, H]);
  return shapes;
}

function readOriginalWeights(config: ModelConfig, checkpoint: SafetensorsCheckpoint, store: TensorStore, configPath: string): ModelWeights {
  const shapes = originalTensorShapes(config);
  // A float export stores the expert stacks unquantised under the parameters' own names.
  for (let n = 0; n < config.numLayers; n++) {
    shapes.set(`block.${n}.mlp.mlp1_weight`, [config.numExperts, 2 * config.intermediateSize, config.hiddenSize]);
    shapes.set(`block.${n}.mlp.mlp2_weight`, [config.numExperts, config.hiddenSize, config.intermediateSize]);
  }
  // A tensor the config does not account for means the config and the weights disagree.
  for (const name of checkpoint.names()) {
    if (shapes.has(name)) continue;
    const block = /^block\.(\d+)\./.exec(name);
    if (block !== null && Number(block[1]) >= config.numLayers) {
      throw new UserError('checkpoint', `${configPath}: num_hidden_layers is ${config.numLayers} but ${checkpoint.info(name)!.file} has tensor "${name}"`);
    }
  }
  const reader = new TensorReader(checkpoint, store, shapes, configPath);
  const experts = (name: string): Mxfp4Matrices => {
    if (checkpoint.info(name) === undefined) return reader.mxfp4(`${name}.blocks`, `${name}.scales`);
    const [count, rows, cols] = shapes.get(name)! as [number, number, number];
    return { count, rows, cols, blocks: new Uint8Array(0), scales: new Uint8Array(0), dense: reader.vector(name) };
  };
  const blocks: BlockWeights[] = [];
  for (let n = 0; n < config.numLayers; n++) {
    const b = `block.${n}`;
    blocks.push({
      attn: {
        norm: { scale: reader.vector(`${b}.attn.norm.scale`) },
        qkv: { weight: reader.bf16Matrix(`${b}.attn.qkv.weight`), bias: reader.vector(`${b}.attn.qkv.bias`) },
        sinks: reader.vector(`${b}.attn.sinks`),
        out: { weight: reader.bf16Matrix(`${b}.attn.out.weight`), bias: reader.vector(`${b}.attn.out.bias`) },
      },
      mlp: {
        norm: { scale: reader.vector(`${b}.mlp.norm.scale`) },
        gate: { weight: reader.bf16Matrix(`${b}.mlp.gate.weight`), bias: reader.vector(`${b}.mlp.gate.bias`) },
        mlp1Weight: experts(`${b}.mlp.mlp1_weight`),
        mlp1Bias: reader.vector(`${b}.mlp.mlp1_bias`),
        mlp2Weight: experts(`${b}.mlp.mlp2_weight`),
        mlp2Bias: reader.vector(`${b}.mlp.mlp2_bias`),
      },
    });
  }
  return {
    config,
    embedding: { weight: reader.embeddingTable('embedding.weight') },
    blocks,
    norm: { scale: reader.vector('norm.scale') },
    unembedding: { weight: reader.bf16Matrix('unembedding.weight') },
  };
}
