// The numbers the WebAssembly kernels and their TypeScript callers must agree on: the expert
// activation modes, the KV cache element types and the layout of the experts' work list. Written
// once and imported by both sides (assembly/*.ts when asc builds the module, index.ts at run time),
// so it holds only integer constants that mean the same in TypeScript and AssemblyScript.

// How the MoE kernels carry an expert's input rows (BackendOptions.expertActivations):
/** f32 rows. */
export const EXPERT_ACTIVATIONS_F32 = 0;
/** 'split': single-row experts as two i16 halves per value (f32_quantize_i16x2), the others f32. */
export const EXPERT_ACTIVATIONS_SPLIT = 1;
/** 'q8': every row as int8 per group of 32 (f32_quantize_i8). */
export const EXPERT_ACTIVATIONS_Q8 = 2;

// Element type of the attention kernel's keys and values:
export const KV_CACHE_F32 = 0;
export const KV_CACHE_BF16 = 1;

// The MoE kernels' work list: one record per expert of u32 words (pointers are byte offsets into
// the kernel's memory). The up and down lists share the layout up to word 5.
export const EXPERT_RECORD_WORDS = 8;
export const EXPERT_RECORD_BYTES = EXPERT_RECORD_WORDS * 4;
/** The expert's packed MXFP4 blocks. */
export const EXPERT_BLOCKS = 0;
/** Its E8M0 scales (one byte per 32 values). */
export const EXPERT_SCALES = 1;
/** Its f32 bias. */
export const EXPERT_BIAS = 2;
/** Its input rows, block-permuted f32 [rows, cols]. */
export const EXPERT_INPUT = 3;
/** How many rows (tokens routed to it). */
export const EXPERT_ROWS = 4;
/** The same rows quantised per the activation mode (unread when they are carried as f32). */
export const EXPERT_QUANT_INPUT = 5;
/** Up list: where the SwiGLU activations go, block-permuted f32 [rows, inter]. */
export const EXPERT_UP_OUTPUT = 6;
/** Down list: per row, the i32 index of the output row it adds into. */
export const EXPERT_DOWN_TOKENS = 6;
/** Down list: per row, the f32 routing weight. */
export const EXPERT_DOWN_WEIGHTS = 7;
