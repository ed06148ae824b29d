import { useState, type FormEvent, type KeyboardEvent, type ReactNode } from 'react';

/** The message box. It empties at once; a refused message comes back into it. */
interface Props {
  onSend(body: string): Promise<boolean>;
  /** Told about keystrokes (`empty` once the box is empty again) and when typing stops. */
  typing?: { input(empty: boolean): void; stop(): void };
  /** More controls beside the send button, given the text and a way to clear it. */
  actions?(draft: { body: string; clear(): void }): ReactNode;
}

export function Composer({ onSend, typing, actions }: Props) {
  const [body, setBody] = useState('');

  const send = async () => {
    const text = body.trim();
    if (!text) return;
    setBody('');
    typing?.stop();
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
        onChange={(e) => {
          setBody(e.target.value);
          typing?.input(e.target.value.trim() === '');
        }}
        onBlur={() => typing?.stop()}
        onKeyDown={sendOnEnter}
        data-testid="composer-input"
      />
      <button type="submit" data-testid="composer-send">
        Send
      </button>
      {actions?.({ body, clear: () => setBody('') })}
    </form>
  );
}
