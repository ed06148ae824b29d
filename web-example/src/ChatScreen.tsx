import { useState } from 'react';
import { useSession } from './auth/SessionProvider';
import { NewMessagesBadge } from './away/NewMessagesBadge';
import { ChannelList } from './channels/ChannelList';
import { CreateChannelForm } from './channels/CreateChannelForm';
import { ConnectionBadge } from './ConnectionBadge';
import type { ViewerFieldsFragment } from './gql/graphql';
import { InvitePanel } from './invites/InvitePanel';
import { ChannelView } from './messages/ChannelView';
import { OnlineUsers } from './presence/OnlineUsers';
import { SearchPanel } from './search/SearchPanel';

export function ChatScreen({ viewer }: { viewer: ViewerFieldsFragment }) {
  const { signOut } = useSession();
  const [channelId, setChannelId] = useState<string | null>(null);
  return (
    <div className="chat" data-testid="chat-screen">
      <header className="topbar">
        <h1>livegraph chat</h1>
        <ConnectionBadge />
        <span className="spacer" />
        <span data-testid="viewer-name">{viewer.name}</span>
        <button type="button" onClick={signOut} data-testid="sign-out">
          Sign out
        </button>
      </header>
      <aside>
        <ChannelList
          selectedId={channelId}
          onSelect={setChannelId}
          decorate={(id, open) => <NewMessagesBadge channelId={id} open={open} viewerId={viewer.id} />}
        />
        <OnlineUsers viewerId={viewer.id} />
        <CreateChannelForm onCreated={setChannelId} />
        <InvitePanel />
        <SearchPanel onOpenChannel={setChannelId} />
      </aside>
      <main>
        {channelId ? (
          <ChannelView key={channelId} channelId={channelId} viewer={viewer} />
        ) : (
          <p className="muted" data-testid="no-channel">
            Create a channel to start.
          </p>
        )}
      </main>
    </div>
  );
}
