// `gptoss pull`: downloads a gpt-oss checkpoint from the Hugging Face hub into the hub's cache
// (shared with `hf download`), with progress, resume, and size/hash checks.
import { parseFlags, stringFlag, boolFlag, numberFlag } from './args.ts';
import { UserError } from '../errors.ts';
import { pull, hubCacheDir, hubEndpoint } from '../checkpoint/hub.ts';
import { createProgress, formatBytes } from './progress.ts';

const HELP = `usage: gptoss pull REPO [options]      e.g. gptoss pull openai/gpt-oss-20b

Downloads into the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub),
reusing files \`hf download\` already fetched. Interrupted downloads resume; every file is checked
against the size and sha256 the hub lists. Prints the folder to pass as --model.

  --include PATTERN  files to fetch, repeatable (e.g. --include 'original/*'); default: the
                     original/ folder plus config and tokenizer files (or, for repositories
                     without original/, the *.safetensors and *.json files)
  --revision REV     branch, tag or commit (default main)
  --cache-dir DIR    cache folder instead of the default
  --retries N        attempts after a dropped connection, per file (default 5)
  --json             print the result as JSON
  --quiet            no progress on stderr

Environment: HF_TOKEN (sent as a bearer token, for gated or private repositories),
HF_ENDPOINT (a mirror; default ${'https://huggingface.co'}).`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    include: { type: 'string', multiple: true },
    revision: { type: 'string' },
    'cache-dir': { type: 'string' },
    retries: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (boolFlag(p, 'help')) {
    console.log(HELP);
    return 0;
  }
  if (p.positionals.length !== 1) throw new UserError('usage', 'expected one repository id, e.g. gptoss pull openai/gpt-oss-20b');
  const repo = p.positionals[0]!;
  const include = p.values['include'] as string[] | undefined;
  const progress = createProgress({ quiet: boolFlag(p, 'quiet') });
  const cacheDir = stringFlag(p, 'cache-dir') ?? hubCacheDir();
  const endpoint = hubEndpoint();
  const retries = numberFlag(p, 'retries', { min: 0, max: 100, integer: true });
  const result = await pull({
    repo,
    revision: stringFlag(p, 'revision') ?? 'main',
    cacheDir,
    endpoint,
    ...(include !== undefined ? { include } : {}),
    ...(retries !== undefined ? { retries } : {}),
    events: {
      fileStart: (f, already, resumed) => {
        progress.start(f.path, f.size, already);
        if (resumed) progress.log(`${f.path}: resuming at ${formatBytes(already)}`);
      },
      bytes: (n) => progress.advance(n),
      fileDone: (f, status) => {
        if (status === 'cached') progress.log(`${f.path}: cached (${formatBytes(f.size)})`);
        else progress.done(status === 'resumed' ? 'done (resumed)' : 'done');
      },
      warn: (m) => progress.log(`warning: ${m}`),
    },
  });
  if (boolFlag(p, 'json')) {
    console.log(JSON.stringify(result));
  } else {
    const fetched = result.files.filter((f) => f.status !== 'cached').reduce((s, f) => s + f.size, 0);
    const total = result.files.reduce((s, f) => s + f.size, 0);
    progress.log(`${repo}@${result.commit.slice(0, 12)}: ${result.files.length} files, ${formatBytes(total)} (${formatBytes(fetched)} downloaded)`);
    console.log(result.modelDir);
  }
  return 0;
}
