import { useQuery } from 'urql';
import { AuthScreen } from './auth/AuthScreen';
import { useSession } from './auth/SessionProvider';
import { ChatScreen } from './ChatScreen';
import { ViewerDocument } from './gql/graphql';
import { describeError } from './ui/errors';
import { ErrorText } from './ui/ErrorText';

export function App() {
  const { session } = useSession();
  const [{ data, fetching, error }] = useQuery({ query: ViewerDocument, pause: !session.token });

  if (!session.token) return <AuthScreen />;
  if (fetching && !data) return <p className="muted">Loading…</p>;
  if (error) return <ErrorText message={describeError(error)} testId="viewer-error" />;
  // A token the server no longer accepts reads as no viewer: sign in again.
  if (!data?.viewer) return <AuthScreen />;
  return <ChatScreen viewer={data.viewer} />;
}
