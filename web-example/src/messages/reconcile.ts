import type { Message } from './types';

/** A message sent from this page whose send the live page has not confirmed yet. */
export interface PendingMessage {
  /** The idempotencyKey sent with the mutation; also the row's React key. */
  readonly key: string;
  readonly body: string;
  readonly createdAt: string;
  /** Ids on the live page when it was sent: none of them can be this message. */
  readonly seenIds: ReadonlySet<string>;
  /** The id the mutation returned, once it has. */
  readonly serverId: string | null;
}

export interface Reconciled {
  /** Pending messages that the live page does not show yet, newest first. */
  readonly unconfirmed: PendingMessage[];
  /** Live message id -> the pending key it confirms. */
  readonly confirmedBy: ReadonlyMap<string, string>;
}

/**
 * Matches pending sends to live messages, so that each message shows once.
 *
 * A send is confirmed by the id its mutation returned. The live page may show the
 * message before the mutation has answered (the live push and the HTTP response
 * race), so until then a send is also confirmed by the oldest new live message of
 * the viewer's with the same body that no other send has claimed.
 */
export function reconcile(
  pending: readonly PendingMessage[],
  live: readonly Message[],
  viewerId: string,
): Reconciled {
  const liveIds = new Set(live.map((m) => m.id));
  const confirmedBy = new Map<string, string>();
  for (const send of pending) {
    if (send.serverId !== null && liveIds.has(send.serverId)) confirmedBy.set(send.serverId, send.key);
  }
  const oldestFirst = [...live].reverse();
  for (const send of pending) {
    if (send.serverId !== null) continue;
    const match = oldestFirst.find(
      (m) => !confirmedBy.has(m.id) && !send.seenIds.has(m.id) && m.author.id === viewerId && m.body === send.body,
    );
    if (match) confirmedBy.set(match.id, send.key);
  }
  const confirmedKeys = new Set(confirmedBy.values());
  const unconfirmed = pending.filter((send) => !confirmedKeys.has(send.key)).reverse();
  return { unconfirmed, confirmedBy };
}
