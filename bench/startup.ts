// CLI start-up: `gptoss --help` and `gptoss tokenize` from a source checkout (TypeScript through
// the tsx loader) and from the installed package (the compiled dist/, as `npm install` gives it:
// packed and installed into a temporary project by scripts/pack-install.ts). Runs the four
// commands interleaved, so load from other work on the machine falls on each alike.
// Alone: node --import tsx bench/startup.ts [--runs N]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { packAndInstall } from '../scripts/pack-install.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

interface Variant {
  name: string;
  bin: string;
}

interface Command {
  name: string;
  args: string[];
  input: string;
}

/**
 * CPU seconds (user + system) of this process's waited-for children, from /proc/self/stat
 * (cutime, cstime in clock ticks, 100 per second on Linux); undefined elsewhere. Less disturbed by
 * other work on the machine than wall time.
 */
function childCpuSeconds(): number | undefined {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /s, '').split(' ');
    // After "pid (comm) ", cutime and cstime are the 14th and 15th fields.
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return undefined;
  }
}

function timeOnce(bin: string, command: Command): { wallMs: number; cpuMs: number | undefined } {
  const cpuBefore = childCpuSeconds();
  const start = performance.now();
  const r = spawnSync(process.execPath, [bin, ...command.args], { cwd: ROOT, input: command.input, encoding: 'utf8' });
  const wallMs = performance.now() - start;
  const cpuAfter = childCpuSeconds();
  if (r.status !== 0) throw new Error(`${bin} ${command.args.join(' ')} exited ${r.status}: ${r.stderr.trim().split('\n').at(-1)}`);
  return { wallMs, cpuMs: cpuBefore === undefined || cpuAfter === undefined ? undefined : (cpuAfter - cpuBefore) * 1000 };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function runStartupBench(runs = 20): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'gptoss-startup-'));
  try {
    const { project } = packAndInstall(work);
    const variants: Variant[] = [
      { name: 'source checkout (tsx loader)', bin: join(ROOT, 'bin/gptoss.js') },
      { name: 'installed package (compiled dist/)', bin: join(project, 'node_modules/gptoss/bin/gptoss.js') },
    ];
    const commands: Command[] = [
      { name: '`gptoss --help`', args: ['--help'], input: '' },
      { name: '`gptoss tokenize` (stdin: hi)', args: ['tokenize'], input: 'hi\n' },
    ];
    const times = new Map<string, number[]>();
    const cpu = new Map<string, number[]>();
    const key = (v: Variant, c: Command): string => `${v.name}|${c.name}`;
    for (let i = 0; i < runs + 3; i++) {
      for (const c of commands) {
        for (const v of variants) {
          const t = timeOnce(v.bin, c);
          if (i < 3) continue; // warm-up rounds
          times.set(key(v, c), [...(times.get(key(v, c)) ?? []), t.wallMs]);
          if (t.cpuMs !== undefined) cpu.set(key(v, c), [...(cpu.get(key(v, c)) ?? []), t.cpuMs]);
        }
      }
    }
    const rows: string[] = [];
    for (const c of commands) {
      const base = median(times.get(key(variants[0]!, c))!);
      for (const v of variants) {
        const t = times.get(key(v, c))!;
        const cpuMs = cpu.get(key(v, c));
        const cpuMean = cpuMs === undefined ? '' : (cpuMs.reduce((a, b) => a + b, 0) / cpuMs.length).toFixed(0);
        rows.push(`| ${c.name} | ${v.name} | ${median(t).toFixed(0)} | ${Math.min(...t).toFixed(0)} | ${cpuMean} | ${(base / median(t)).toFixed(2)}× |`);
      }
    }
    return [
      '## CLI start-up',
      '',
      `Wall time of one command, from process start to exit, and the CPU time (user + system) it used: ${runs} runs each after 3 warm-up rounds, the four commands interleaved. Machine: ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}; load average at the end ${loadavg()[0]!.toFixed(1)} (other work on the machine slows every row alike: compare the ratios).`,
      'The installed package runs the compiled JavaScript in dist/; a source checkout runs the TypeScript through the tsx loader (`bin/gptoss.js` picks).',
      '',
      '| command | how it runs | median ms | min ms | CPU ms (mean) | vs source (median) |',
      '|---|---|---:|---:|---:|---:|',
      ...rows,
      '',
      'Alone: `node --import tsx bench/startup.ts [--runs N]`.',
      '',
    ].join('\n');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const i = process.argv.indexOf('--runs');
  console.log(await runStartupBench(i > 0 ? Number(process.argv[i + 1]) : 20));
}
