import { useMutation } from 'urql';
import { CreateInviteDocument } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { ErrorText } from '../ui/ErrorText';

export function InvitePanel() {
  const [{ data, fetching, error }, createInvite] = useMutation(CreateInviteDocument);
  return (
    <section className="invite" data-testid="invite-panel">
      <button type="button" onClick={() => void createInvite({})} disabled={fetching} data-testid="invite-create">
        Invite someone
      </button>
      {data && (
        <p>
          Invite code: <code data-testid="invite-code">{data.createInvite.code}</code>
        </p>
      )}
      <ErrorText message={error ? describeError(error) : null} testId="invite-error" />
    </section>
  );
}
