// Packs this checkout with `npm pack` (which builds dist/ through prepack) and installs the tarball
// into a fresh project, as a user's `npm install gptoss` would, but offline: the project gets a
// lock file with the package's runtime dependencies as this checkout's lock resolves them, so
// `npm ci --offline` takes every tarball from the npm cache that `npm ci` here filled. Used by the
// packed-package test and the start-up benchmark.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

interface LockEntry {
  version?: string;
  dev?: boolean;
  [key: string]: unknown;
}

export interface InstalledPackage {
  /** The tarball npm pack wrote. */
  tarball: string;
  /** The paths inside the tarball. */
  files: string[];
  /** The consumer project's folder (package.json, node_modules/gptoss). */
  project: string;
}

function npm(args: string[], cwd: string): string {
  const r = spawnSync('npm', args, { cwd, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${r.status}): ${r.stderr.trim().split('\n').slice(-4).join(' | ')}`);
  return r.stdout;
}

/**
 * Packs the checkout into `dir` and installs it into `dir/project`, with `extraDevPackages`
 * (names in this checkout's lock, e.g. `@types/node`) installed beside it.
 */
export function packAndInstall(dir: string, extraDevPackages: readonly string[] = []): InstalledPackage {
  mkdirSync(dir, { recursive: true });
  const packed = JSON.parse(npm(['pack', '--pack-destination', dir, '--json'], ROOT)) as { filename: string; integrity: string; files: { path: string }[] }[];
  const { filename, integrity, files } = packed[0]!;
  const tarball = join(dir, filename);

  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; license: string; dependencies: Record<string, string>; optionalDependencies?: Record<string, string>; bin: Record<string, string>; engines: Record<string, string> };
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const extraPaths = new Set(extraDevPackages.map((name) => `node_modules/${name}`));
  const packages: Record<string, LockEntry> = {};
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '') continue;
    if (entry.dev === true && !extraPaths.has(path) && !isDependencyOfExtra(path, lock.packages, extraPaths)) continue;
    const { dev: _dev, ...rest } = entry;
    packages[path] = rest;
  }
  const dependencies: Record<string, string> = { [manifest.name]: `file:../${filename}` };
  for (const path of extraPaths) {
    const version = lock.packages[path]?.version;
    if (version === undefined) throw new Error(`${path} is not in package-lock.json`);
    dependencies[path.slice('node_modules/'.length)] = version;
  }
  const project = join(dir, 'project');
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module', dependencies }, null, 2) + '\n');
  const consumerLock = {
    name: 'consumer',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'consumer', version: '1.0.0', dependencies },
      [`node_modules/${manifest.name}`]: {
        version: manifest.version,
        resolved: `file:../${filename}`,
        integrity,
        license: manifest.license,
        dependencies: manifest.dependencies,
        ...(manifest.optionalDependencies === undefined ? {} : { optionalDependencies: manifest.optionalDependencies }),
        bin: manifest.bin,
        engines: manifest.engines,
      },
      ...packages,
    },
  };
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify(consumerLock, null, 2) + '\n');
  npm(['ci', '--offline', '--no-audit', '--no-fund'], project);
  return { tarball, files: files.map((f) => f.path), project };
}

/** True when `path` is a dependency an extra package needs (one level: enough for @types/node's undici-types). */
function isDependencyOfExtra(path: string, all: Record<string, LockEntry>, extras: ReadonlySet<string>): boolean {
  for (const extra of extras) {
    const deps = all[extra]?.['dependencies'] as Record<string, string> | undefined;
    if (deps !== undefined && Object.keys(deps).some((name) => `node_modules/${name}` === path)) return true;
  }
  return false;
}
