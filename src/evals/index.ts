// Public surface of the evaluation harness.
export type { ChatMessage, Sampler, SamplerResponse, SampleOptions, CaseResult, RunLabels, RunSummary } from './types.ts';
export { HttpSampler, DEFAULT_MAX_TOKENS, DEFAULT_TIMEOUT_S, type HttpSamplerOptions } from './http-sampler.ts';
export { parseHealthBench, selectSubset, graderPrompt, parseVerdict, rubricScore, caseMetrics, gradeResponse, runHealthBenchCase, formatRubricItem, type HealthBenchCase, type RubricItem, type RubricVerdict } from './healthbench.ts';
export { parseMcq, choicePermutation, mcqPrompt, extractChoice, runMcqCase, type McqCase } from './mcq.ts';
export { parseExact, exactPrompt, extractInteger, runExactCase, parseExactPromptStyle, type ExactCase, type ExactPromptStyle } from './exact.ts';
export { runEval, readResults, progressPrinter, type EvalCase, type RunOptions } from './runner.ts';
export { summarise, clippedMean, bootstrapStd, seededPermutation, seededRandom, type MetricSummary } from './stats.ts';
export { openSampler, type SamplerSettings } from './samplers.ts';
