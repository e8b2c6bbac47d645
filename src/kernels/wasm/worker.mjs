// A kernel worker thread (plain JavaScript so it starts without the TypeScript loader). It holds
// one instance of the kernels per shared memory and waits on the pool's control words: when the
// generation changes it calls the requested export with the arguments and its slice number, then
// decrements the pending count (the last one wakes the main thread). No message per op. Worker w
// computes slice w of an offloaded op and slice w + 1 of an inline one (the main thread has slice
// 0; an offloading pool's last worker sits that op out).
import { workerData, receiveMessageOnPort } from 'node:worker_threads';

const { module, control, args: argsBuffer, names, worker, parts, port, memories, spin } = workerData;
const ctl = new Int32Array(control);
const args = new Float64Array(argsBuffer);
const GEN = 0, PENDING = 1, OP = 2, MEM = 3, NARGS = 4, FAILED = 5, OFFLOADED = 6;
const SYNC = -2, STOP = -1;

const instances = [];
const addMemory = (memory) => instances.push(new WebAssembly.Instance(module, { env: { memory } }).exports);
for (const m of memories) addMemory(m);

let gen = 0;
// A worker that sat the last op out (an inline op of an offloading pool) sleeps at once instead of
// spinning: the other threads are computing, and a spinner would take one of their cores.
let satOut = false;
for (;;) {
  let spins = 0;
  while (Atomics.load(ctl, GEN) === gen) {
    if (satOut || ++spins > spin) Atomics.wait(ctl, GEN, gen);
  }
  gen = Atomics.load(ctl, GEN);
  const op = ctl[OP];
  if (op === STOP) break;
  if (op === SYNC) {
    const want = ctl[NARGS];
    while (instances.length < want) {
      const msg = receiveMessageOnPort(port);
      if (msg !== undefined) addMemory(msg.message);
    }
  } else {
    const part = ctl[OFFLOADED] === 1 ? worker : worker + 1;
    satOut = part >= parts;
    if (!satOut) {
      try {
        const fn = instances[ctl[MEM]][names[op]];
        const n = ctl[NARGS];
        switch (n) {
          case 7: fn(args[0], args[1], args[2], args[3], args[4], args[5], args[6], part, parts); break;
          case 6: fn(args[0], args[1], args[2], args[3], args[4], args[5], part, parts); break;
          default: fn(...args.subarray(0, n), part, parts);
        }
      } catch {
        // A trap (a bug): flag it (slice + 1, so 0 stays "none") so the main thread throws instead of waiting forever.
        Atomics.store(ctl, FAILED, part + 1);
      }
    }
  }
  if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING);
}
if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING);
