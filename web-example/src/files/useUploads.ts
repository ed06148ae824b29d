import { useCallback, useEffect, useRef, useState } from 'react';
import { useClient } from 'urql';
import { CreateUploadUrlDocument } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { newIdempotencyKey } from '../messages/idempotencyKey';
import { postFile } from './postFile';
import { serverUrl } from './serverUrl';

export type UploadStatus = 'uploading' | 'done' | 'failed';

/** One picked file on its way to being attached to the next message. */
export interface Upload {
  readonly key: string;
  readonly name: string;
  readonly size: number;
  readonly contentType: string;
  /** 0..1 of the bytes sent. */
  readonly progress: number;
  readonly status: UploadStatus;
  /** Set once the server has stored it (201). */
  readonly fileId: string | null;
  readonly error: string | null;
}

export interface Uploads {
  readonly items: readonly Upload[];
  /** True while any file is still being sent. */
  readonly busy: boolean;
  /** The ids to attach: the files stored so far, in the order picked. */
  readonly readyIds: readonly string[];
  add(files: Iterable<File>): void;
  /** Drops one (cancelling it if it is still being sent). */
  remove(key: string): void;
  /** After a send: drops the files it attached; failed ones stay, with their error. */
  clearSent(fileIds: readonly string[]): void;
}

/** The declared type; the browser leaves it empty for extensions it does not know. */
function contentTypeOf(file: File): string {
  return file.type || 'application/octet-stream';
}

/**
 * The files picked for the next message: for each, ask the server for a signed upload
 * URL (it refuses one over the size limit with BAD_USER_INPUT), then POST the bytes
 * there with progress.
 */
export function useUploads(): Uploads {
  const client = useClient();
  const [items, setItems] = useState<readonly Upload[]>([]);
  const controllers = useRef(new Map<string, AbortController>()).current;

  useEffect(() => () => controllers.forEach((c) => c.abort()), [controllers]);

  const update = useCallback((key: string, patch: Partial<Upload>) => {
    setItems((all) => all.map((u) => (u.key === key ? { ...u, ...patch } : u)));
  }, []);

  const start = useCallback(
    async (key: string, file: File) => {
      const controller = new AbortController();
      controllers.set(key, controller);
      const contentType = contentTypeOf(file);
      try {
        const ticket = await client
          .mutation(CreateUploadUrlDocument, { input: { name: file.name, contentType, size: file.size } })
          .toPromise();
        if (controller.signal.aborted) return;
        const url = ticket.data?.createUploadUrl.url;
        if (!url) {
          update(key, { status: 'failed', error: ticket.error ? describeError(ticket.error) : 'No upload URL was given.' });
          return;
        }
        const fileId = await postFile(serverUrl(url), file, contentType, (progress) => update(key, { progress }), controller.signal);
        update(key, { status: 'done', progress: 1, fileId });
      } catch (error) {
        if (!controller.signal.aborted) update(key, { status: 'failed', error: error instanceof Error ? error.message : String(error) });
      } finally {
        controllers.delete(key);
      }
    },
    [client, controllers, update],
  );

  const add = useCallback(
    (files: Iterable<File>) => {
      for (const file of files) {
        const key = newIdempotencyKey();
        const upload: Upload = {
          key,
          name: file.name,
          size: file.size,
          contentType: contentTypeOf(file),
          progress: 0,
          status: 'uploading',
          fileId: null,
          error: null,
        };
        setItems((all) => [...all, upload]);
        void start(key, file);
      }
    },
    [start],
  );

  const remove = useCallback(
    (key: string) => {
      controllers.get(key)?.abort();
      setItems((all) => all.filter((u) => u.key !== key));
    },
    [controllers],
  );

  const clearSent = useCallback((fileIds: readonly string[]) => {
    const sent = new Set(fileIds);
    setItems((all) => all.filter((u) => u.fileId === null || !sent.has(u.fileId)));
  }, []);

  return {
    items,
    busy: items.some((u) => u.status === 'uploading'),
    readyIds: items.flatMap((u) => (u.status === 'done' && u.fileId ? [u.fileId] : [])),
    add,
    remove,
    clearSent,
  };
}
