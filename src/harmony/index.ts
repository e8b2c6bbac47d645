// Public surface of the harmony response format: data model and builders, JSON interchange,
// rendering to token ids, and parsing (batch and streaming) of completions back into messages.
export * from './types.ts';
