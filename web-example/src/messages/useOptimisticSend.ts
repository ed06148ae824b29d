import { useCallback, useEffect, useState } from 'react';
import { useMutation } from 'urql';
import { SendMessageDocument } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { newIdempotencyKey } from './idempotencyKey';
import type { PendingMessage } from './reconcile';
import type { Message } from './types';

export interface OptimisticSend {
  /** Sends in order of sending (oldest first); see reconcile() for what is shown. */
  readonly pending: readonly PendingMessage[];
  /** The last failed send's error, shown until the next send. */
  readonly error: string | null;
  /** Shows the message at once; resolves false if the server refused it (rolled back). */
  send(body: string, attachmentIds?: readonly string[]): Promise<boolean>;
}

export function useOptimisticSend(channelId: string, live: readonly Message[] | null): OptimisticSend {
  const [pending, setPending] = useState<readonly PendingMessage[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [, sendMessage] = useMutation(SendMessageDocument);

  const send = useCallback(
    async (body: string, attachmentIds: readonly string[] = []) => {
      const key = newIdempotencyKey();
      const seenIds = new Set(live?.map((m) => m.id));
      setError(null);
      setPending((all) => [...all, { key, body, createdAt: new Date().toISOString(), seenIds, serverId: null }]);
      const attach = attachmentIds.length > 0 ? { attachmentIds: [...attachmentIds] } : {};
      const result = await sendMessage({ input: { channelId, body, idempotencyKey: key, ...attach } });
      const sent = result.data?.sendMessage;
      if (!sent) {
        setPending((all) => all.filter((p) => p.key !== key));
        setError(result.error ? describeError(result.error) : 'The message was not sent.');
        return false;
      }
      setPending((all) => all.map((p) => (p.key === key ? { ...p, serverId: sent.id } : p)));
      return true;
    },
    [channelId, live, sendMessage],
  );

  // A send is done once the live page shows the id its mutation returned.
  useEffect(() => {
    if (!live) return;
    const ids = new Set(live.map((m) => m.id));
    setPending((all) => {
      const left = all.filter((p) => p.serverId === null || !ids.has(p.serverId));
      return left.length === all.length ? all : left;
    });
  }, [live]);

  return { pending, error, send };
}
