import type { Client as WsClient } from 'graphql-ws';

export type ConnectionStatus = 'idle' | 'connecting' | 'connected' | 'closed';

/** The WebSocket's state as a tiny external store, for useSyncExternalStore. */
export interface ConnectionStatusStore {
  get(): ConnectionStatus;
  subscribe(onChange: () => void): () => void;
}

export function trackConnectionStatus(ws: WsClient): ConnectionStatusStore {
  let status: ConnectionStatus = 'idle';
  const listeners = new Set<() => void>();
  const set = (next: ConnectionStatus) => {
    status = next;
    listeners.forEach((listener) => listener());
  };
  ws.on('connecting', () => set('connecting'));
  ws.on('connected', () => set('connected'));
  ws.on('closed', () => set('closed'));
  return {
    get: () => status,
    subscribe(onChange) {
      listeners.add(onChange);
      return () => listeners.delete(onChange);
    },
  };
}
