import { createGraphiQLFetcher, type Fetcher, type FetcherParams } from '@graphiql/toolkit';
import { parse, type DocumentNode, type ExecutionResult } from 'graphql';
import { createClient, type Client as WsClient } from 'graphql-ws';
import { isStreamed } from '../graphql/live';

/**
 * createGraphiQLFetcher sends only subscriptions to its wsClient (it checks the
 * document for a `subscription` operation); a `query @live` would go over HTTP and
 * answer once. This fetcher sends every streamed operation (subscriptions and
 * `@live` queries) over graphql-transport-ws and leaves the rest, introspection
 * included, to createGraphiQLFetcher over HTTP.
 */
export interface LiveFetcher {
  readonly fetcher: Fetcher;
  dispose(): void;
}

export function createLiveFetcher(options: { url: string; wsUrl: string; token: string }): LiveFetcher {
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  const ws = createClient({ url: options.wsUrl, lazy: true, connectionParams: () => headers });
  const http = createGraphiQLFetcher({ url: options.url, headers, wsClient: ws });
  const fetcher: Fetcher = (params, opts) => {
    const document = opts?.documentAST ?? tryParse(params.query);
    if (document && isStreamed(document, params.operationName, params.variables)) return overSocket(ws, params);
    return http(params, opts);
  };
  return { fetcher, dispose: () => void ws.dispose() };
}

function tryParse(query: string): DocumentNode | null {
  try {
    return parse(query);
  } catch {
    return null; // let the server report the syntax error
  }
}

/** The operation's results as an async iterable; GraphiQL's stop button calls return(). */
async function* overSocket(ws: WsClient, params: FetcherParams): AsyncGenerator<ExecutionResult> {
  const queue: ExecutionResult[] = [];
  let finished = false;
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    wake?.();
    wake = null;
  };
  const dispose = ws.subscribe<Record<string, unknown>>(params, {
    next: (result) => {
      queue.push(result as ExecutionResult);
      notify();
    },
    error: (error) => {
      failure = error;
      finished = true;
      notify();
    },
    complete: () => {
      finished = true;
      notify();
    },
  });
  try {
    for (;;) {
      for (let next = queue.shift(); next; next = queue.shift()) yield next;
      if (finished) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    if (failure) throw asError(failure);
  } finally {
    dispose();
  }
}

function asError(failure: unknown): Error {
  if (failure instanceof Error) return failure;
  if (failure instanceof CloseEvent) return new Error(`Socket closed with ${failure.code} ${failure.reason}`.trim());
  if (Array.isArray(failure)) return new Error(failure.map((e: { message?: string }) => e.message).join('; '));
  return new Error(String(failure));
}
