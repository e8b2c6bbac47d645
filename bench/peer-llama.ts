// The peer: node-llama-cpp (llama.cpp inside), measured the same way as `gptoss bench` on the
// same model written as GGUF. It is never a dependency of the package: `ensurePeer()` installs it
// on demand into .cache/peer with its prebuilt CPU binary package (no download at run time, no
// build), and `runPeer()` measures it in a child process so its memory is counted apart.
//
// As a script: node --import tsx bench/peer-llama.ts --gguf FILE --prompt-tokens N --gen-tokens N --threads N
// [--peer-dir DIR --gpu cuda] prints one JSON object (prefill_tok_s, decode_tok_s, load_s, ttft_s,
// peak_rss_bytes). With --gpu cuda (bench/gpu.ts) every layer is offloaded and node-llama-cpp must
// find its CUDA binary package pre-installed in --peer-dir: nothing is installed then.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

export const PEER_VERSION = '3.22.1';
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const PEER_DIR = join(ROOT, '.cache/peer');
const peerEntry = (dir: string): string => join(dir, 'node_modules/node-llama-cpp/dist/index.js');
const PEER_ENTRY = peerEntry(PEER_DIR);

/** Where a peer run finds node-llama-cpp, and whether it runs on the CPU or offloads to CUDA. */
export interface PeerPlacement {
  dir: string;
  gpu: false | 'cuda';
}

export interface PeerResult {
  engine: string;
  threads: number;
  prompt_tokens: number;
  gen_tokens: number;
  load_s: number;
  prefill_tok_s: number;
  ttft_s: number;
  decode_tok_s: number;
  peak_rss_bytes: number;
}

/** Installs node-llama-cpp and its linux-x64 CPU binary package into .cache/peer (once). */
export function ensurePeer(): void {
  if (existsSync(PEER_ENTRY)) return;
  mkdirSync(PEER_DIR, { recursive: true });
  if (!existsSync(join(PEER_DIR, 'package.json'))) writeFileSync(join(PEER_DIR, 'package.json'), '{"name":"gptoss-bench-peer","private":true}\n');
  const platformPackage = `@node-llama-cpp/${process.platform}-${process.arch}@${PEER_VERSION}`;
  // Optional dependencies are skipped (they include GPU builds); the CPU binary is named explicitly.
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--omit=optional', `node-llama-cpp@${PEER_VERSION}`, platformPackage], {
    cwd: PEER_DIR, stdio: 'inherit', env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' },
  });
  if (r.status !== 0 || !existsSync(PEER_ENTRY)) throw new Error(`could not install node-llama-cpp@${PEER_VERSION} into ${PEER_DIR}`);
}

/** Runs the peer on `gguf` in a child process and returns its figures. */
export function runPeer(gguf: string, promptTokens: number, genTokens: number, threads: number, placement: PeerPlacement = { dir: PEER_DIR, gpu: false }): PeerResult {
  if (placement.gpu === false) ensurePeer();
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--gguf', gguf,
    '--prompt-tokens', String(promptTokens), '--gen-tokens', String(genTokens), '--threads', String(threads),
    '--peer-dir', placement.dir, ...(placement.gpu === false ? [] : ['--gpu', placement.gpu])], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' }, maxBuffer: 64 * 2 ** 20,
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{')) throw new Error(`node-llama-cpp run failed (status ${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(line) as PeerResult;
}

// The slice of node-llama-cpp's API used here.
interface Sequence {
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  evaluate(tokens: number[], options?: { temperature?: number }): AsyncGenerator<number, void, void>;
}
interface PeerModule {
  getLlama(options: Record<string, unknown>): Promise<{
    loadModel(options: Record<string, unknown>): Promise<{
      createContext(options: Record<string, unknown>): Promise<{ getSequence(): Sequence; dispose(): Promise<void> }>;
      dispose(): Promise<void>;
    }>;
  }>;
}

async function measure(gguf: string, promptTokens: number, genTokens: number, threads: number, placement: PeerPlacement): Promise<PeerResult> {
  const peer = (await import(pathToFileURL(peerEntry(placement.dir)).href)) as PeerModule;
  const llama = await peer.getLlama({ build: 'never', gpu: placement.gpu, logLevel: 'error', skipDownload: true, maxThreads: threads });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: placement.gpu === false ? 0 : 'max', useMmap: false });
  const loadS = (performance.now() - t0) / 1000;
  const context = await model.createContext({ contextSize: promptTokens + genTokens + 64, batchSize: Math.min(512, promptTokens), threads: { ideal: threads, min: threads } });
  const seq = context.getSequence();
  // The same pseudo-random prompt as `gptoss bench`.
  let s = 12345;
  const prompt = Array.from({ length: promptTokens }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % 200000;
  });
  const p0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
  // The last prompt token goes through evaluate(), which also yields the first new token (TTFT).
  const gen = seq.evaluate(prompt.slice(-1), { temperature: 0 });
  await gen.next();
  const prefillS = (performance.now() - p0) / 1000;
  const d0 = performance.now();
  for (let i = 0; i < genTokens; i++) await gen.next();
  const decodeS = (performance.now() - d0) / 1000;
  await gen.return();
  const result: PeerResult = {
    engine: `node-llama-cpp ${PEER_VERSION}${placement.gpu === false ? '' : ` (${placement.gpu})`}`,
    threads,
    prompt_tokens: promptTokens,
    gen_tokens: genTokens,
    load_s: round(loadS),
    prefill_tok_s: round(promptTokens / prefillS),
    ttft_s: round(prefillS),
    decode_tok_s: round(genTokens / decodeS),
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
  };
  await context.dispose();
  await model.dispose();
  return result;
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { gguf: { type: 'string' }, 'prompt-tokens': { type: 'string' }, 'gen-tokens': { type: 'string' }, threads: { type: 'string' }, 'peer-dir': { type: 'string' }, gpu: { type: 'string' } } });
  if (values.gguf === undefined) {
    console.error('usage: peer-llama.ts --gguf FILE [--prompt-tokens N] [--gen-tokens N] [--threads N]');
    process.exit(2);
  }
  const r = await measure(values.gguf, Number(values['prompt-tokens'] ?? 512), Number(values['gen-tokens'] ?? 64), Number(values.threads ?? 2),
    { dir: values['peer-dir'] ?? PEER_DIR, gpu: values.gpu === 'cuda' ? 'cuda' : false });
  console.log(JSON.stringify(r));
  process.exit(0);
}
