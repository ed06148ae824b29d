import { useCallback, useEffect, useMemo, useState } from 'react';
import { useClient, useQuery, type CombinedError } from 'urql';
import { LiveMessagesDocument, OlderMessagesDocument, type MessagePageFragment } from '../gql/graphql';
import { describeError } from '../ui/errors';
import type { Message } from './types';

/** Pages fetched below the live page; not live, patched by this page's own edits. */
interface Older {
  readonly messages: readonly Message[];
  readonly endCursor: string | null;
  readonly hasMore: boolean;
  /** The live page's oldest message when `messages` were fetched: they follow it. */
  readonly anchorId: string | null;
}

const NO_OLDER: Older = { messages: [], endCursor: null, hasMore: true, anchorId: null };

export interface MessageFeed {
  /** The live page, newest first, or null until its first result. */
  readonly live: readonly Message[] | null;
  /** Older messages below the live page, newest first, none of them on the live page. */
  readonly older: readonly Message[];
  readonly hasOlder: boolean;
  readonly loadingOlder: boolean;
  readonly error: string | null;
  loadOlder(): void;
  /** Applies this page's own edit or delete to the (non-live) older messages. */
  patchOlder(change: { edited: Message } | { deletedId: string }): void;
}

const nodes = (page: MessagePageFragment): Message[] => page.edges.map((edge) => edge.node);

/** Puts the fetched messages that come before the first already known one on top. */
function bridge(known: readonly Message[], fetched: readonly Message[]): Message[] {
  const ids = new Set(known.map((m) => m.id));
  const firstKnown = fetched.findIndex((m) => ids.has(m.id));
  return [...(firstKnown === -1 ? fetched : fetched.slice(0, firstKnown)), ...known];
}

export function useMessageFeed(channelId: string): MessageFeed {
  const client = useClient();
  const [{ data, error: liveError }] = useQuery({ query: LiveMessagesDocument, variables: { channelId } });
  const [older, setOlder] = useState<Older>(NO_OLDER);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [olderError, setOlderError] = useState<CombinedError | null>(null);

  const livePage = data?.messages ?? null;
  const live = useMemo(() => (livePage ? nodes(livePage) : null), [livePage]);
  const liveTail = live?.[live.length - 1]?.id ?? null;

  const fetchAfter = useCallback(
    async (after: string) => {
      const result = await client.query(OlderMessagesDocument, { channelId, after }, { requestPolicy: 'network-only' });
      setOlderError(result.error ?? null);
      return result.data?.messages ?? null;
    },
    [client, channelId],
  );

  const loadOlder = useCallback(() => {
    const after = older.messages.length > 0 ? older.endCursor : (livePage?.pageInfo.endCursor ?? null);
    if (!after || loadingOlder) return;
    setLoadingOlder(true);
    void fetchAfter(after).then((page) => {
      setLoadingOlder(false);
      if (!page) return;
      setOlder((prev) => ({
        messages: [...prev.messages, ...nodes(page).filter((m) => !prev.messages.some((p) => p.id === m.id))],
        endCursor: page.pageInfo.endCursor,
        hasMore: page.pageInfo.hasNextPage,
        anchorId: prev.messages.length > 0 ? prev.anchorId : liveTail,
      }));
    });
  }, [older, livePage, liveTail, loadingOlder, fetchAfter]);

  // When new messages push the live page's oldest ones out of it, they would fall
  // into a gap above the older pages: fetch the bridge below the live page.
  const bridgeFrom = livePage?.pageInfo.endCursor ?? null;
  const anchorGone = older.anchorId !== null && live !== null && !live.some((m) => m.id === older.anchorId);
  useEffect(() => {
    if (!anchorGone || !bridgeFrom) return;
    let current = true;
    void fetchAfter(bridgeFrom).then((page) => {
      if (!current || !page) return;
      setOlder((prev) => ({ ...prev, messages: bridge(prev.messages, nodes(page)), anchorId: liveTail }));
    });
    return () => {
      current = false;
    };
  }, [anchorGone, bridgeFrom, liveTail, fetchAfter]);

  const patchOlder = useCallback((change: { edited: Message } | { deletedId: string }) => {
    setOlder((prev) => ({
      ...prev,
      messages:
        'edited' in change
          ? prev.messages.map((m) => (m.id === change.edited.id ? change.edited : m))
          : prev.messages.filter((m) => m.id !== change.deletedId),
    }));
  }, []);

  const liveIds = useMemo(() => new Set(live?.map((m) => m.id)), [live]);
  const error = liveError ?? olderError;
  return {
    live,
    older: older.messages.filter((m) => !liveIds.has(m.id)),
    hasOlder: older.messages.length > 0 ? older.hasMore : (livePage?.pageInfo.hasNextPage ?? false),
    loadingOlder,
    error: error ? describeError(error) : null,
    loadOlder,
    patchOlder,
  };
}
