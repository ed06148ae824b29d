import { useQuery } from 'urql';
import { LiveOnlineUsersDocument } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { ErrorText } from '../ui/ErrorText';

/** Members with the chat open anywhere, kept current by a `@live` query. */
export function OnlineUsers({ viewerId }: { viewerId: string }) {
  const [{ data, error }] = useQuery({ query: LiveOnlineUsersDocument });
  const users = data?.onlineUsers ?? [];
  return (
    <section className="online" data-testid="online-users" data-loaded={data ? 'true' : 'false'}>
      <h2>Online</h2>
      <ul>
        {users.map((user) => (
          <li key={user.id} data-testid="online-user" data-user-id={user.id}>
            <span className="online-dot" aria-hidden="true" /> {user.name}
            {user.id === viewerId && <span className="muted"> (you)</span>}
          </li>
        ))}
      </ul>
      <ErrorText message={error ? describeError(error) : null} testId="online-users-error" />
    </section>
  );
}
