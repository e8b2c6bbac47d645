// Conversion of a gpt-oss checkpoint (either layout) into a GGUF file of llama.cpp's `gpt-oss`
// architecture. What llama.cpp expects, and how our checkpoint differs:
// - tensor dims are listed innermost first (ne[0] = columns), the reverse of safetensors shapes;
// - attention q/k/v are separate tensors (our fused qkv is split by rows);
// - experts are three stacks: ffn_gate_exps (mlp1's even rows, the SwiGLU "glu" half), ffn_up_exps
//   (odd rows, the linear half) and ffn_down_exps (mlp2), with their biases split the same way;
// - MXFP4 blocks are ggml's block_mxfp4: 1 E8M0 scale byte then 16 bytes where byte j holds element
//   j in its low nibble and element j+16 in its high nibble (the checkpoint pairs 2j and 2j+1);
// - norms, biases, sinks and the router are F32; attention and embeddings stay BF16.
import { closeSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { UserError } from '../errors.ts';
import { contextLength, type ModelConfig } from '../model/config.ts';
import { widenToF32, type Dtype } from '../tensor/index.ts';
import { readCheckpointConfig } from './checkpoint.ts';
import { GGUF_ALIGNMENT, ggufTensorBytes, writeGguf, type GgufTensorSpec, type GgufValue } from './gguf.ts';
import { hfQkvNames, hfTensorName } from './hf.ts';
import { SafetensorsCheckpoint, type TensorInfo } from './safetensors.ts';

// ---- MXFP4 repacking -------------------------------------------------------------------------

/**
 * Repacks `rows` MXFP4 rows from the checkpoint's layout (blocks [rows, G, 16] with elements 2j/2j+1
 * in byte j, scales [rows, G]) into ggml block_mxfp4 rows ([G] x {scale, 16 bytes with elements
 * j/j+16 in byte j}).
 */
export function repackMxfp4Rows(blocks: Uint8Array, scales: Uint8Array, rows: number, groups: number, out: Uint8Array, outOffset = 0): void {
  let o = outOffset;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const bi = (r * groups + g) * 16;
      out[o++] = scales[r * groups + g]!;
      for (let j = 0; j < 16; j++) {
        // Element e lives in byte e>>1 of the checkpoint block, low nibble when e is even.
        const lo = j, hi = j + 16;
        const a = blocks[bi + (lo >> 1)]!, b = blocks[bi + (hi >> 1)]!;
        const nLo = lo & 1 ? a >> 4 : a & 15;
        const nHi = hi & 1 ? b >> 4 : b & 15;
        out[o++] = nLo | (nHi << 4);
      }
    }
  }
}

// ---- conversion ------------------------------------------------------------------------------

/** Reads byte ranges of checkpoint tensors with positioned reads (no whole-tensor buffers). */
class RangeReader {
  private fds = new Map<string, number>();
  read(info: TensorInfo, start: number, length: number): Uint8Array {
    let fd = this.fds.get(info.file);
    if (fd === undefined) {
      fd = openSync(info.file, 'r');
      this.fds.set(info.file, fd);
    }
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), info.offset + start + done);
      if (n <= 0) throw new UserError('checkpoint', `${info.file}: tensor "${info.name}" is truncated`);
      done += n;
    }
    return out;
  }
  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/** Little-endian F32 bytes of a BF16/F16/F32 tensor slice (F32 passes through). */
function toF32Bytes(src: Uint8Array, dtype: Dtype): Uint8Array {
  if (dtype === 'F32') return src;
  const out = new Float32Array(src.length / 2);
  widenToF32(dtype, src, out);
  return new Uint8Array(out.buffer);
}

/** GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to U+0100 onwards. */
function byteToUnicode(): string[] {
  const table: string[] = new Array(256);
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(printable(b) ? b : next++);
  return table;
}

export interface VocabTables {
  tokens: string[];
  types: Int32Array;
  merges: string[];
}

/**
 * The o200k_harmony vocabulary in llama.cpp's "gpt2" BPE form: tokens as GPT-2 byte-unicode
 * strings, control type for special/reserved ids, and merges derived from the ranks (every split
 * of a token into two tokens, ordered by the merged token's rank, so the lowest-rank merge first,
 * as tiktoken does).
 */
export async function buildVocab(vocabSize: number): Promise<VocabTables> {
  const { getTokenizer } = await import('../tokenizer/index.ts');
  const tok = getTokenizer();
  const b2u = byteToUnicode();
  const tokens: string[] = new Array(vocabSize);
  const types = new Int32Array(vocabSize);
  const rankOf = new Map<string, number>();
  const latin: string[] = new Array(vocabSize);
  for (let id = 0; id < vocabSize; id++) {
    if (id >= tok.vocabSize) {
      tokens[id] = `<|reserved_${id}|>`;
      types[id] = 3;
      continue;
    }
    if (tok.isSpecial(id)) {
      tokens[id] = tok.tokenName(id) ?? `<|reserved_${id}|>`;
      types[id] = 3; // CONTROL
      continue;
    }
    const bytes = tok.tokenBytes(id);
    let s = '';
    let l = '';
    for (const b of bytes) {
      s += b2u[b]!;
      l += String.fromCharCode(b);
    }
    tokens[id] = s;
    types[id] = 1; // NORMAL
    latin[id] = l;
    rankOf.set(l, id);
  }
  const merges: [number, number, number][] = [];
  for (let id = 0; id < vocabSize; id++) {
    const l = latin[id];
    if (l === undefined || l.length < 2) continue;
    for (let k = 1; k < l.length; k++) {
      const a = rankOf.get(l.slice(0, k));
      const b = rankOf.get(l.slice(k));
      if (a !== undefined && b !== undefined && a < id && b < id) merges.push([id, a, b]);
    }
  }
  merges.sort((x, y) => x[0] - y[0] || x[1] - y[1] || x[2] - y[2]);
  return { tokens, types, merges: merges.map(([, a, b]) => `${tokens[a]} ${tokens[b]}`) };
}

export interface ConvertOptions {
  /** Model name written as general.name (default: the folder's name). */
  name?: string;
  /** Skip the tokenizer metadata (tests of tensor layout; llama.cpp needs it to load the file). */
  noVocab?: boolean;
  /** Called once before the tensor data is written, with its total size. */
  onStart?: (tensorBytes: number) => void;
  onBytes?: (n: number) => void;
}

export interface ConvertResult {
  path: string;
  bytes: number;
  tensors: number;
  config: ModelConfig;
}

/** The hyper-parameter keys of llama.cpp's gpt-oss architecture. */
export function gptOssMetadata(c: ModelConfig, name: string): [string, GgufValue][] {
  const a = 'gpt-oss';
  const u = (value: number): GgufValue => ({ type: 'u32', value });
  const f = (value: number): GgufValue => ({ type: 'f32', value });
  return [
    ['general.architecture', { type: 'string', value: a }],
    ['general.name', { type: 'string', value: name }],
    ['general.alignment', u(GGUF_ALIGNMENT)],
    [`${a}.block_count`, u(c.numLayers)],
    [`${a}.context_length`, u(contextLength(c))],
    [`${a}.embedding_length`, u(c.hiddenSize)],
    [`${a}.feed_forward_length`, u(c.intermediateSize)],
    [`${a}.expert_feed_forward_length`, u(c.intermediateSize)],
    [`${a}.attention.head_count`, u(c.numAttentionHeads)],
    [`${a}.attention.head_count_kv`, u(c.numKeyValueHeads)],
    [`${a}.attention.key_length`, u(c.headDim)],
    [`${a}.attention.value_length`, u(c.headDim)],
    [`${a}.attention.layer_norm_rms_epsilon`, f(1e-5)],
    [`${a}.attention.sliding_window`, u(c.slidingWindow)],
    [`${a}.expert_count`, u(c.numExperts)],
    [`${a}.expert_used_count`, u(c.expertsPerToken)],
    [`${a}.rope.freq_base`, f(c.ropeTheta)],
    [`${a}.rope.scaling.type`, { type: 'string', value: 'yarn' }],
    [`${a}.rope.scaling.factor`, f(c.ropeScalingFactor)],
    [`${a}.rope.scaling.original_context_length`, u(c.initialContextLength)],
  ];
}

/**
 * Converts the checkpoint in `modelDir` (original or HF layout) into a GGUF file llama.cpp loads as
 * `gpt-oss`, streaming tensor by tensor (peak memory: one BF16 matrix or one expert's rows).
 */
export async function convertToGguf(modelDir: string, outPath: string, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const { found, config } = await readCheckpointConfig(modelDir);
  if (config.swigluLimit !== 7) throw new UserError('checkpoint', `${found.configPath}: swiglu_limit ${config.swigluLimit} cannot be expressed in llama.cpp's gpt-oss (fixed at 7.0)`);
  const ckpt = SafetensorsCheckpoint.open(found.dir);
  const reader = new RangeReader();
  try {
    const hf = found.layout === 'hf';
    const src = (original: string): TensorInfo => {
      const name = hf ? hfTensorName(original) : original;
      const info = ckpt.info(name);
      if (info === undefined) throw new UserError('checkpoint', `${ckpt.describe()}: missing tensor "${name}"`);
      return info;
    };
    const expectBytes = (info: TensorInfo, bytes: number) => {
      if (info.byteLength !== bytes) throw new UserError('checkpoint', `${info.file}: tensor "${info.name}" has ${info.byteLength} bytes (shape [${info.shape.join(', ')}], ${info.dtype}) but the config implies ${bytes}`);
    };
    const H = config.hiddenSize, I = config.intermediateSize, E = config.numExperts, D = config.headDim;
    const Q = config.numAttentionHeads, K = config.numKeyValueHeads;
    const tensors: GgufTensorSpec[] = [];

    const bf16Matrix = (ggufName: string, info: TensorInfo, rows: number, cols: number, rowStart = 0) => {
      if (info.dtype !== 'BF16') throw new UserError('checkpoint', `${info.file}: tensor "${info.name}" has dtype ${info.dtype}, expected BF16`);
      tensors.push({
        name: ggufName, type: 'BF16', shape: [rows, cols],
        write: (emit) => {
          const rowsPerChunk = Math.max(1, Math.floor((16 << 20) / (cols * 2)));
          for (let r = 0; r < rows; r += rowsPerChunk) {
            const n = Math.min(rowsPerChunk, rows - r);
            emit(reader.read(info, (rowStart + r) * cols * 2, n * cols * 2));
          }
        },
      });
    };
    const f32Vector = (ggufName: string, info: TensorInfo, shape: number[], pick?: { start: number; stride: number }) => {
      const count = shape.reduce((p, d) => p * d, 1);
      tensors.push({
        name: ggufName, type: 'F32', shape,
        write: (emit) => {
          const all = toF32Bytes(reader.read(info, 0, info.byteLength), info.dtype);
          const f = new Float32Array(all.buffer, all.byteOffset, all.byteLength / 4);
          if (pick === undefined) {
            emit(all);
            return;
          }
          const out = new Float32Array(count);
          if (pick !== undefined) for (let i = 0; i < count; i++) out[i] = f[pick.start + i * pick.stride]!;
          emit(new Uint8Array(out.buffer));
        },
      });
    };
    const f32Slice = (ggufName: string, info: TensorInfo, start: number, count: number) => {
      tensors.push({
        name: ggufName, type: 'F32', shape: [count],
        write: (emit) => {
          const size = info.dtype === 'F32' ? 4 : 2;
          emit(toF32Bytes(reader.read(info, start * size, count * size), info.dtype));
        },
      });
    };
    // Experts: rows of one stack (all rows, or the even/odd ones of mlp1) repacked expert by expert.
    const experts = (ggufName: string, blocks: TensorInfo, scales: TensorInfo, rowsPerExpert: number, cols: number, pick: 'all' | 'even' | 'odd') => {
      const groups = cols / 32;
      expectBytes(blocks, E * rowsPerExpert * groups * 16);
      expectBytes(scales, E * rowsPerExpert * groups);
      const outRows = pick === 'all' ? rowsPerExpert : rowsPerExpert / 2;
      tensors.push({
        name: ggufName, type: 'MXFP4', shape: [E, outRows, cols],
        write: (emit) => {
          for (let e = 0; e < E; e++) {
            const b = reader.read(blocks, e * rowsPerExpert * groups * 16, rowsPerExpert * groups * 16);
            const s = reader.read(scales, e * rowsPerExpert * groups, rowsPerExpert * groups);
            const out = new Uint8Array(outRows * groups * 17);
            if (pick === 'all') {
              repackMxfp4Rows(b, s, rowsPerExpert, groups, out);
            } else {
              const first = pick === 'even' ? 0 : 1;
              for (let r = 0; r < outRows; r++) {
                const src = 2 * r + first;
                repackMxfp4Rows(b.subarray(src * groups * 16, (src + 1) * groups * 16), s.subarray(src * groups, (src + 1) * groups), 1, groups, out, r * groups * 17);
              }
            }
            emit(out);
          }
        },
      });
    };

    const emb = src('embedding.weight');
    expectBytes(emb, config.vocabSize * H * 2);
    bf16Matrix('token_embd.weight', emb, config.vocabSize, H);
    for (let n = 0; n < config.numLayers; n++) {
      const b = `block.${n}`, g = `blk.${n}`;
      f32Vector(`${g}.attn_norm.weight`, src(`${b}.attn.norm.scale`), [H]);
      if (hf) {
        const [qw, kw, vw] = hfQkvNames(n, 'weight').map((x) => ckpt.info(x));
        const [qb, kb, vb] = hfQkvNames(n, 'bias').map((x) => ckpt.info(x));
        if (!qw || !kw || !vw || !qb || !kb || !vb) throw new UserError('checkpoint', `${ckpt.describe()}: missing q/k/v projections of layer ${n}`);
        bf16Matrix(`${g}.attn_q.weight`, qw, Q * D, H);
        bf16Matrix(`${g}.attn_k.weight`, kw, K * D, H);
        bf16Matrix(`${g}.attn_v.weight`, vw, K * D, H);
        f32Vector(`${g}.attn_q.bias`, qb, [Q * D]);
        f32Vector(`${g}.attn_k.bias`, kb, [K * D]);
        f32Vector(`${g}.attn_v.bias`, vb, [K * D]);
      } else {
        const qkv = src(`${b}.attn.qkv.weight`);
        expectBytes(qkv, D * (Q + 2 * K) * H * 2);
        bf16Matrix(`${g}.attn_q.weight`, qkv, Q * D, H, 0);
        bf16Matrix(`${g}.attn_k.weight`, qkv, K * D, H, Q * D);
        bf16Matrix(`${g}.attn_v.weight`, qkv, K * D, H, (Q + K) * D);
        const bias = src(`${b}.attn.qkv.bias`);
        f32Slice(`${g}.attn_q.bias`, bias, 0, Q * D);
        f32Slice(`${g}.attn_k.bias`, bias, Q * D, K * D);
        f32Slice(`${g}.attn_v.bias`, bias, (Q + K) * D, K * D);
      }
      bf16Matrix(`${g}.attn_output.weight`, src(`${b}.attn.out.weight`), H, Q * D);
      f32Vector(`${g}.attn_output.bias`, src(`${b}.attn.out.bias`), [H]);
      f32Vector(`${g}.attn_sinks.weight`, src(`${b}.attn.sinks`), [Q]);
      f32Vector(`${g}.post_attention_norm.weight`, src(`${b}.mlp.norm.scale`), [H]);
      f32Vector(`${g}.ffn_gate_inp.weight`, src(`${b}.mlp.gate.weight`), [E, H]);
      f32Vector(`${g}.ffn_gate_inp.bias`, src(`${b}.mlp.gate.bias`), [E]);
      const b1 = src(`${b}.mlp.mlp1_weight.blocks`), s1 = src(`${b}.mlp.mlp1_weight.scales`);
      experts(`${g}.ffn_gate_exps.weight`, b1, s1, 2 * I, H, 'even');
      experts(`${g}.ffn_up_exps.weight`, b1, s1, 2 * I, H, 'odd');
      experts(`${g}.ffn_down_exps.weight`, src(`${b}.mlp.mlp2_weight.blocks`), src(`${b}.mlp.mlp2_weight.scales`), H, I, 'all');
      const bias1 = src(`${b}.mlp.mlp1_bias`);
      f32Vector(`${g}.ffn_gate_exps.bias`, bias1, [E, I], { start: 0, stride: 2 });
      f32Vector(`${g}.ffn_up_exps.bias`, bias1, [E, I], { start: 1, stride: 2 });
      f32Vector(`${g}.ffn_down_exps.bias`, src(`${b}.mlp.mlp2_bias`), [E, H]);
    }
    f32Vector('output_norm.weight', src('norm.scale'), [H]);
    const unemb = src('unembedding.weight');
    expectBytes(unemb, config.vocabSize * H * 2);
    bf16Matrix('output.weight', unemb, config.vocabSize, H);

    const name = opts.name ?? (basename(found.dir) === 'original' ? basename(found.dir.replace(/\/original\/?$/, '')) : basename(found.dir));
    const metadata = gptOssMetadata(config, name);
    if (opts.noVocab !== true) {
      const vocab = await buildVocab(config.vocabSize);
      metadata.push(
        ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
        ['tokenizer.ggml.pre', { type: 'string', value: 'gpt-4o' }],
        ['tokenizer.ggml.tokens', { type: 'string[]', value: vocab.tokens }],
        ['tokenizer.ggml.token_type', { type: 'i32[]', value: vocab.types }],
        ['tokenizer.ggml.merges', { type: 'string[]', value: vocab.merges }],
        ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 199998 }],
        ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 200002 }],
        ['tokenizer.ggml.padding_token_id', { type: 'u32', value: 199999 }],
        ['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }],
      );
    }
    opts.onStart?.(tensors.reduce((sum, t) => sum + ggufTensorBytes(t), 0));
    const bytes = writeGguf(outPath, metadata, tensors, opts.onBytes);
    return { path: outPath, bytes, tensors: tensors.length, config };
  } finally {
    reader.close();
    ckpt.close();
  }
}
