// Audits a running auditd against the GraphQL over HTTP specification with
// graphql-http's own server audit, and fails on any warning or error.
// Usage: node audit.mjs URL [TOKEN]
import { auditServer } from 'graphql-http';

const [url, token] = process.argv.slice(2);
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  if (token) headers.set('Authorization', 'Bearer ' + token);
  return fetch(input, { ...init, headers });
};
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const r of await auditServer({ url, fetchFn })) {
  counts[r.status] = (counts[r.status] || 0) + 1;
  if (r.status === 'warn' || r.status === 'error') {
    console.log(`${r.status.toUpperCase()} ${r.id} ${r.name}: ${r.reason}`);
  }
}
console.log(`graphql-http audit: ${counts.ok} ok, ${counts.notice} notices, ${counts.warn} warnings, ${counts.error} errors`);
process.exit(counts.warn + counts.error > 0 ? 1 : 0);
