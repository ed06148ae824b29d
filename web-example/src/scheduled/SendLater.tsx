import { useState } from 'react';
import { useMutation } from 'urql';
import { ScheduleMessageDocument } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { ErrorText } from '../ui/ErrorText';
import { fromLocalInputValue, toLocalInputValue } from './sendAt';

export interface Draft {
  /** The text in the message box. */
  readonly body: string;
  /** Empties the message box. */
  clear(): void;
}

/** "Send later": a date and time beside the send button; schedules the message box's text. */
export function SendLater({ channelId, draft }: { channelId: string; draft: Draft }) {
  const [sendAt, setSendAt] = useState('');
  const [{ fetching, error }, scheduleMessage] = useMutation(ScheduleMessageDocument);
  const at = fromLocalInputValue(sendAt);
  const body = draft.body.trim();

  const schedule = async () => {
    if (!at || !body) return;
    const result = await scheduleMessage({ input: { channelId, body, sendAt: at } });
    if (result.data) {
      draft.clear();
      setSendAt('');
    }
  };

  return (
    <div className="send-later">
      <input
        type="datetime-local"
        step={1}
        min={toLocalInputValue(new Date())}
        value={sendAt}
        onChange={(e) => setSendAt(e.target.value)}
        aria-label="Send at"
        data-testid="schedule-at"
      />
      <button type="button" onClick={() => void schedule()} disabled={!at || !body || fetching} data-testid="schedule-send">
        Send later
      </button>
      <ErrorText message={error ? describeError(error) : null} testId="schedule-error" />
    </div>
  );
}
