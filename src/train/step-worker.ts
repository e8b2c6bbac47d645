// One training worker thread (train/parallel.ts): a twin of the main thread's model whose weights
// view the shared buffer (an adapter's are copied from it before each request: they are small),
// gradients written into this worker's shared buffer. Answers step requests with its part's loss
// sums and eval requests with its examples' loss sums; an error is answered as one line.
import { parentPort, workerData } from 'node:worker_threads';
import { LoraAdapters } from './lora.ts';
import { evaluationSums, type TrainOptions } from './model.ts';
import { accumulateGradients } from './optim.ts';
import type { WorkerReply, WorkerRequest, WorkerSetup } from './parallel.ts';
import { NO_GRADIENT, TrainableModel, type Param } from './params.ts';

const setup = (workerData as { setup: WorkerSetup }).setup;
const port = parentPort!;

function build(): { model: TrainableModel; options: TrainOptions; refresh: () => void } {
  const offsets = new Map(setup.tensors.map((t) => [t.name, t.offset]));
  const model = new TrainableModel(setup.config, {
    frozen: true,
    ...(setup.compact !== null ? { vocabulary: setup.compact } : {}),
    storage: (name, size) => new Float64Array(setup.weights, offsets.get(name)! * 8, size),
  });
  const lora = setup.lora === null ? undefined : new LoraAdapters(setup.config, setup.lora);
  const params: Param[] = [...model.params(), ...(lora?.params() ?? [])];
  if (params.length !== setup.tensors.length || params.some((p, i) => p.name !== setup.tensors[i]!.name)) {
    throw new Error('the worker\'s model does not match the main thread\'s tensors');
  }
  const copied: { param: Param; from: Float64Array }[] = [];
  params.forEach((p, i) => {
    const t = setup.tensors[i]!;
    p.trainable = t.trainable;
    p.grad = t.trainable ? new Float64Array(setup.grads, t.gradOffset * 8, p.value.length) : NO_GRADIENT;
    if (i >= model.params().length) copied.push({ param: p, from: new Float64Array(setup.weights, t.offset * 8, p.value.length) });
  });
  const refresh = (): void => {
    for (const { param, from } of copied) param.value.set(from);
  };
  return { model, options: { ...setup.options, ...(lora !== undefined ? { lora } : {}) }, refresh };
}

let built: ReturnType<typeof build>;
try {
  built = build();
  port.postMessage({ id: 0, ready: true } satisfies WorkerReply);
} catch (e) {
  port.postMessage({ id: 0, error: e instanceof Error ? e.message : String(e) } satisfies WorkerReply);
  throw e;
}

port.on('message', (request: WorkerRequest) => {
  try {
    const { model, options, refresh } = built;
    refresh();
    if (request.kind === 'step') {
      model.zeroGrad();
      options.lora?.zeroGrad();
      const sums = accumulateGradients(model, request.sequences, request.total, options);
      port.postMessage({ id: request.id, sums } satisfies WorkerReply);
    } else {
      port.postMessage({ id: request.id, eval: evaluationSums(model, request.examples, options) } satisfies WorkerReply);
    }
  } catch (e) {
    port.postMessage({ id: request.id, error: (e instanceof Error ? e.message : String(e)).split('\n', 1)[0]! } satisfies WorkerReply);
  }
});
