// The entry of a training worker thread (train/parallel.ts): run from source, it registers the
// TypeScript loader first (a worker does not inherit the main thread's), then loads the worker's
// module, whose URL the main thread passes. A failure to load is reported as the reply to the
// start-up request, so the main thread sees one line instead of waiting.
import { parentPort, workerData } from 'node:worker_threads';

try {
  if (workerData.entry.endsWith('.ts')) (await import('tsx/esm/api')).register();
  await import(workerData.entry);
} catch (e) {
  parentPort.postMessage({ id: 0, error: e instanceof Error ? e.message.split('\n', 1)[0] : String(e) });
}
