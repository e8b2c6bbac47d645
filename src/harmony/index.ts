// Public surface of the harmony response format: data model and builders, JSON interchange,
// rendering to token ids, and parsing (batch and streaming) of completions back into messages.
export * from './types.ts';
export {
  renderMessage,
  renderConversation,
  renderConversationForCompletion,
  renderConversationForTraining,
  tokensToText,
  systemText,
  developerText,
  hasFunctionTools,
  keptMessageIndices,
  type DropAnalysis,
  type RenderOptions,
  type RenderConversationOptions,
} from './render.ts';
export { jsonSchemaToTypeScript, renderToolsSection, validateToolSchema } from './schema.ts';
export {
  StreamParser,
  parseMessagesFromCompletionTokens,
  parseCompletion,
  stopTokens,
  stopTokensForAssistantActions,
  type ParseDiagnostic,
  type ParseOptions,
  type ParserEvent,
  type ParserState,
} from './parse.ts';
export {
  messageToJSON,
  messageFromJSON,
  conversationToJSON,
  conversationFromJSON,
  conversationFromJSONText,
  contentToJSON,
  contentFromJSON,
  parseJsonText,
} from './json.ts';
export { CHAT_ROLES, chatMessagesToHarmony, conversationFromChatJSON, isHarmonyConversationJSON } from './chat-format.ts';
export { today, buildSystemMessage, buildDeveloperMessage, promptHead, createConversation, type PromptOptions } from './prompt.ts';
