/**
 * POSTs one file's bytes to its signed upload URL with XMLHttpRequest, the only
 * browser API that reports upload progress (fetch has no upload progress events).
 * Resolves with the new file's id (201 {"fileId"}); rejects with a readable Error.
 */
export function postFile(
  url: string,
  file: Blob,
  contentType: string,
  onProgress: (fraction: number) => void,
  signal?: AbortSignal,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('Content-Type', contentType);
    xhr.responseType = 'text';
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    });
    // The whole body has gone out (an empty file fires no progress event).
    xhr.upload.addEventListener('load', () => onProgress(1));
    xhr.addEventListener('load', () => {
      const body = parseJson(xhr.responseText);
      if (xhr.status === 201 && typeof body?.fileId === 'string') {
        resolve(body.fileId);
        return;
      }
      reject(new Error(`Upload refused (HTTP ${xhr.status}): ${serverMessage(body) ?? (xhr.statusText || 'no reason given')}`));
    });
    xhr.addEventListener('error', () => reject(new Error('Upload failed: the server could not be reached')));
    xhr.addEventListener('timeout', () => reject(new Error('Upload failed: it timed out')));
    xhr.addEventListener('abort', () => reject(new Error('Upload cancelled')));
    if (signal) {
      if (signal.aborted) {
        reject(new Error('Upload cancelled'));
        return;
      }
      signal.addEventListener('abort', () => xhr.abort(), { once: true });
    }
    xhr.send(file);
  });
}

interface UploadResponse {
  fileId?: unknown;
  errors?: { message?: unknown; extensions?: { code?: unknown } }[];
}

function parseJson(text: string): UploadResponse | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as UploadResponse) : null;
  } catch {
    return null;
  }
}

/** The server's refusals are `{"errors": [{"message", "extensions": {"code"}}]}`. */
function serverMessage(body: UploadResponse | null): string | null {
  const first = body?.errors?.[0];
  if (!first || typeof first.message !== 'string') return null;
  const code = first.extensions?.code;
  return typeof code === 'string' ? `${code}: ${first.message}` : first.message;
}
