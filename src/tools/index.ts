// Public surface of the built-in tools: the Tool contract, the browser (sessions, backends,
// citations) and the sandboxed python tool, and a per-conversation registry.
export { toolCallFromMessage, toolOutputMessage, type Tool, type ToolCall, type ToolOutput } from './tool.ts';
export { ToolRegistry, toolError, unknownToolText, availableText } from './registry.ts';
export { errorText } from './errors.ts';
export {
  BrowserSession,
  ToolUsageError,
  browserNamespace,
  endLocation,
  findInPage,
  type BrowserOptions,
  type BrowserState,
  type FindArgs,
  type OpenArgs,
  type SearchArgs,
} from './browser/browser.ts';
export { BackendError, VIEW_SOURCE_PREFIX, searchResultsPage, withUrlHeader, type BrowserBackend, type SearchHit } from './browser/backend.ts';
export { LocalDocsBackend, LOCAL_SCHEME, type LocalDocsOptions } from './browser/local.ts';
export { ExaBackend, YouComBackend, type WebBackendOptions } from './browser/web.ts';
export { htmlToPage, markdownToPage, textToPage, type Extract, type PageContents } from './browser/page.ts';
export { wrapLines, joinLines, stripLinks } from './browser/text.ts';
export {
  CitationStream,
  hasPartialCitation,
  resolveCitations,
  type Citation,
  type CitationSource,
  type ResolvedText,
  withoutCitations,
} from './browser/citations.ts';
export { PythonTool, NO_OUTPUT_WARNING, STATELESS_DESCRIPTION, defaultSandboxPool, type PythonToolOptions } from './python/python.ts';
export { SandboxPool, SandboxProcess, sandboxNodeFlags, type RunResult, type SandboxLimits } from './python/sandbox.ts';
