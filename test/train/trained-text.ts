// The trained stretches of a training example as text: what the data tests compare against the
// rendering to show the loss falls on the assistant's own tokens only.
import { tokensToText } from '../../src/harmony/index.ts';
import type { TrainingExample } from '../../src/train/data.ts';

/** One string per contiguous stretch of tokens that carry loss. */
export function trainedText(e: TrainingExample): string[] {
  const parts: string[] = [];
  let run: number[] = [];
  e.tokens.forEach((id, i) => {
    if (e.trained[i]) run.push(id);
    else if (run.length > 0) {
      parts.push(tokensToText(run));
      run = [];
    }
  });
  if (run.length > 0) parts.push(tokensToText(run));
  return parts;
}
