// Runs every graphql-http server audit (GraphQL over HTTP conformance) against a URL and
// prints one JSON array: {id, name, status, reason?, status code and body of the failing
// response}. Exits 0 when the audits ran, whatever their results; pytest judges them.
//
//   node http_audit.mjs http://127.0.0.1:8000/graphql
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node http_audit.mjs <url>');
  process.exit(2);
}

async function describe(result) {
  if (result.status === 'ok') return { id: result.id, name: result.name, status: 'ok' };
  let body = null;
  try {
    body = await result.response.text();
  } catch {
    // The body was already read by the audit itself.
  }
  return {
    id: result.id,
    name: result.name,
    status: result.status,
    reason: result.reason,
    httpStatus: result.response?.status ?? null,
    contentType: result.response?.headers.get('content-type') ?? null,
    body: body && body.slice(0, 500),
  };
}

const results = [];
for (const audit of serverAudits({ url })) {
  results.push(await describe(await audit.fn()));
}
console.log(JSON.stringify(results));
