import { useState, type FormEvent, type KeyboardEvent } from 'react';

/** The message box. It empties at once; a refused message comes back into it. */
export function Composer({ onSend }: { onSend(body: string): Promise<boolean> }) {
  const [body, setBody] = useState('');

  const send = async () => {
    const text = body.trim();
    if (!text) return;
    setBody('');
    const sent = await onSend(text);
    if (!sent) setBody((typed) => typed || text);
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void send();
  };
  const sendOnEnter = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      void send();
    }
  };

  return (
    <form className="composer" onSubmit={submit}>
      <textarea
        rows={2}
        placeholder="Message (Enter to send, Shift+Enter for a new line)"
        value={body}
        onChange={(e) => setBody(e.target.value)}
        onKeyDown={sendOnEnter}
        data-testid="composer-input"
      />
      <button type="submit" data-testid="composer-send">
        Send
      </button>
    </form>
  );
}
