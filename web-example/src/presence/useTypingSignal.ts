import { useEffect, useMemo } from 'react';
import { useMutation } from 'urql';
import { SetTypingDocument } from '../gql/graphql';
import { TypingSignal } from './typingState';

const browserTimers = {
  now: () => Date.now(),
  setTimeout: (run: () => void, ms: number) => window.setTimeout(run, ms),
  clearTimeout: (handle: unknown) => window.clearTimeout(handle as number),
};

export interface TypingHandlers {
  /** A keystroke in the message box; `empty` when it is now empty. */
  input(empty: boolean): void;
  /** Sent, blurred, or left: no longer typing. */
  stop(): void;
}

/** Tells the server, for this channel, while the viewer types (see TypingSignal). */
export function useTypingSignal(channelId: string): TypingHandlers {
  const [, setTyping] = useMutation(SetTypingDocument);
  const signal = useMemo(() => {
    // One request at a time, in order: a "stopped" must not overtake its "typing".
    // A refused signal (e.g. rate limited) only means others see less: not shown.
    let queue: Promise<unknown> = Promise.resolve();
    const send = (typing: boolean) => {
      queue = queue.then(() => setTyping({ channelId, typing }));
    };
    return new TypingSignal(send, browserTimers);
  }, [channelId, setTyping]);
  // Leaving the channel (or the page) stops typing in it.
  useEffect(() => () => signal.stop(), [signal]);
  return useMemo(() => ({ input: (empty: boolean) => signal.input(empty), stop: () => signal.stop() }), [signal]);
}
