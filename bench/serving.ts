// bench/run.ts loads the serving section from this file; the benchmark lives in bench/serve.ts.
export { runServeBench, runServingBench } from './serve.ts';
