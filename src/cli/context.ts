// What a program running the CLI in its own process (main(argv, context)) may hand the commands.
import type { Engine } from '../engine/engine.ts';

/**
 * Given to every command by main(). `engine`: a running engine the model commands (chat, serve)
 * use instead of loading --model; tests give scripted engines this way.
 */
export interface CommandContext {
  engine?: Engine;
}
