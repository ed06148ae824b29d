/**
 * "New messages while you were away", per channel: the pure part. What is kept for a
 * channel (in localStorage, per viewer) is the cursor of the last `messageEvents`
 * event handled and how many messages by others arrived while the channel was not
 * open. A page that comes back subscribes with `after: cursor` and the server replays
 * exactly what it missed. No run-time imports: the unit tests load this file alone.
 */

export interface ChannelMark {
  /** The `cursor` of the last event handled; null before the first one. */
  readonly cursor: string | null;
  /** Messages by others created while the channel was not open. */
  readonly count: number;
}

export const NO_MARK: ChannelMark = { cursor: null, count: 0 };

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export interface EventLike {
  readonly kind: string;
  readonly cursor: string;
  readonly messageId: string;
  readonly message: { readonly author: { readonly id: string } } | null;
}

export function markKey(viewerId: string, channelId: string): string {
  return `livegraph.away.${viewerId}.${channelId}`;
}

/** What was stored for a channel; anything unreadable counts as nothing stored. */
export function loadMark(storage: StorageLike, key: string): ChannelMark {
  try {
    const raw = storage.getItem(key);
    if (!raw) return NO_MARK;
    const value: unknown = JSON.parse(raw);
    if (typeof value !== 'object' || value === null) return NO_MARK;
    const { cursor, count } = value as { cursor?: unknown; count?: unknown };
    return {
      cursor: typeof cursor === 'string' && cursor ? cursor : null,
      count: typeof count === 'number' && Number.isInteger(count) && count > 0 ? count : 0,
    };
  } catch {
    return NO_MARK;
  }
}

export function saveMark(storage: StorageLike, key: string, mark: ChannelMark): void {
  try {
    storage.setItem(key, JSON.stringify(mark));
  } catch {
    // Storage full or disabled: the count still works for this page.
  }
}

/**
 * One event handled: the cursor moves on; a message created by someone else while
 * the channel is not open counts. `repeat` marks a CREATED event already counted: a
 * reconnect re-sends the subscription with its first `after`, which replays it.
 */
export function applyEvent(
  mark: ChannelMark,
  event: EventLike,
  { open, viewerId, repeat = false }: { open: boolean; viewerId: string; repeat?: boolean },
): ChannelMark {
  const byOther = event.message !== null && event.message.author.id !== viewerId;
  const counts = event.kind === 'CREATED' && !repeat && byOther && !open;
  return { cursor: event.cursor, count: mark.count + (counts ? 1 : 0) };
}

/** Opening a channel reads what was new in it. */
export function markRead(mark: ChannelMark): ChannelMark {
  return mark.count === 0 ? mark : { cursor: mark.cursor, count: 0 };
}

/**
 * A stored cursor the server no longer accepts: older than the change log's retention
 * (CURSOR_EXPIRED) or unreadable (BAD_USER_INPUT). It is dropped and the channel is
 * followed from now on; null means the error is something else.
 */
export function afterCursorError(mark: ChannelMark, code: string | undefined): ChannelMark | null {
  if (code !== 'CURSOR_EXPIRED' && code !== 'BAD_USER_INPUT') return null;
  return { cursor: null, count: mark.count };
}

export function awayLabel(count: number): string {
  return count === 1 ? '1 new message while you were away' : `${count} new messages while you were away`;
}
