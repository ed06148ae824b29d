import { useSyncExternalStore } from 'react';
import { useSession } from './auth/SessionProvider';

/** The live WebSocket's state, so a person (and a test) can see it. */
export function ConnectionBadge() {
  const { connection } = useSession().session;
  const status = useSyncExternalStore(connection.subscribe, connection.get);
  return (
    <span className={`badge ${status}`} data-testid="ws-status" data-status={status}>
      {status === 'connected' ? 'live' : status}
    </span>
  );
}
