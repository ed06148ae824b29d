import { useState, type FormEvent } from 'react';
import { useMutation } from 'urql';
import { CreateChannelDocument } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { ErrorText } from '../ui/ErrorText';

/** Creates a channel; the live channel list shows it by itself. */
export function CreateChannelForm({ onCreated }: { onCreated(id: string): void }) {
  const [name, setName] = useState('');
  const [{ fetching, error }, createChannel] = useMutation(CreateChannelDocument);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const result = await createChannel({ input: { name } });
    if (result.data) {
      setName('');
      onCreated(result.data.createChannel.id);
    }
  };

  return (
    <form className="create-channel" onSubmit={submit}>
      <input placeholder="new-channel" required value={name} onChange={(e) => setName(e.target.value)} data-testid="channel-name" />
      <button type="submit" disabled={fetching} data-testid="channel-create">
        Create
      </button>
      <ErrorText message={error ? describeError(error) : null} testId="channel-create-error" />
    </form>
  );
}
