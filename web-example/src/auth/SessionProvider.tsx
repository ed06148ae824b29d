import { createContext, useContext, useMemo, useState, type ReactNode } from 'react';
import { Provider as UrqlProvider } from 'urql';
import { createSession, type Session } from '../graphql/session';
import { loadToken, storeToken } from './tokenStorage';

interface SessionApi {
  readonly session: Session;
  /** Starts a new session (new urql client and WebSocket) carrying this token. */
  signIn(token: string): void;
  signOut(): void;
}

const SessionContext = createContext<SessionApi | null>(null);

export function useSession(): SessionApi {
  const api = useContext(SessionContext);
  if (!api) throw new Error('useSession() needs a <SessionProvider>');
  return api;
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState(() => createSession(loadToken()));

  const api = useMemo<SessionApi>(() => {
    // The old session is disposed here, in the event that replaces it, not in an
    // effect cleanup, which StrictMode would also run on a session still in use.
    const replace = (token: string | null) => {
      storeToken(token);
      session.dispose();
      setSession(createSession(token));
    };
    return { session, signIn: replace, signOut: () => replace(null) };
  }, [session]);

  // Keyed by token: everything below starts afresh for a new user.
  return (
    <SessionContext.Provider value={api}>
      <UrqlProvider value={session.client} key={session.token ?? 'anonymous'}>
        {children}
      </UrqlProvider>
    </SessionContext.Provider>
  );
}
