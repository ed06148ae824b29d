import { useEffect, useState, type FormEvent } from 'react';
import { GraphiQL } from 'graphiql';
import { loadToken, storeToken } from '../auth/tokenStorage';
import { graphqlHttpUrl, graphqlWsUrl } from '../graphql/endpoint';
import { createLiveFetcher, type LiveFetcher } from './liveFetcher';

const DEFAULT_QUERY = `# @live queries and subscriptions run over graphql-transport-ws.
# Run this, then create a channel (here in another tab, or in the chat),
# and watch the result update by itself.
# Events instead of state: subscription { messageEvents(channelId: "1") { kind cursor message { body } } }
# (pass the last cursor as \`after\` to resume from it).
query LiveChannels @live {
  channels(first: 20) {
    edges {
      node {
        id
        name
      }
    }
  }
}
`;

/** ?query=... opens the editor with that query (as hosted GraphiQL pages do). */
function initialQuery(): string {
  return new URLSearchParams(window.location.search).get('query') ?? DEFAULT_QUERY;
}

function TokenBar({ token, onApply }: { token: string; onApply(token: string): void }) {
  const [draft, setDraft] = useState(token);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onApply(draft.trim());
  };
  return (
    <form className="token-bar" onSubmit={submit}>
      <label htmlFor="token">Token (Bearer JWT; shared with the chat on this origin)</label>
      <input id="token" value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="eyJ…" data-testid="graphiql-token" />
      <button type="submit" data-testid="graphiql-token-apply">
        Use token
      </button>
      <span data-testid="graphiql-token-state">{token ? 'token set' : 'no token'}</span>
    </form>
  );
}

export function GraphiQLPage() {
  const [token, setToken] = useState(() => loadToken() ?? '');
  const [live, setLive] = useState<LiveFetcher | null>(null);

  // One socket per token, created and disposed with it.
  useEffect(() => {
    const next = createLiveFetcher({ url: graphqlHttpUrl(), wsUrl: graphqlWsUrl(), token });
    setLive(next);
    return () => next.dispose();
  }, [token]);

  const apply = (next: string) => {
    storeToken(next || null);
    setToken(next);
  };

  return (
    <div className="page">
      <TokenBar token={token} onApply={apply} />
      <div className="ide">{live && <GraphiQL fetcher={live.fetcher} initialQuery={initialQuery()} />}</div>
    </div>
  );
}
