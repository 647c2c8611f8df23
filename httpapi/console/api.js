// The console's only way to the server: the public GraphQL API at /query,
// over HTTP for queries and mutations and over graphql-transport-ws for
// subscriptions. No other host is ever contacted.

const TOKEN_KEY = 'auditlog.console.token';

/** The API's address, relative to the console at /console/. */
export const endpoint = new URL('../query', location.href);

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** The claims of a JWT, for display only: the server verifies it. */
export function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return {};
  }
}

/** An error the API answered with, or a failure to reach it. */
export class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.name = 'ApiError';
    this.code = code || '';
    this.status = status || 0;
  }
}

/**
 * Runs a query or mutation and returns its data; rejects with an ApiError
 * carrying the first error's code, or code NETWORK when the server could
 * not be reached. An aborted request rejects with the AbortError.
 */
export async function gql(query, variables = {}, { signal } = {}) {
  let res;
  try {
    res = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/graphql-response+json, application/json',
        Authorization: 'Bearer ' + getToken(),
      },
      body: JSON.stringify({ query, variables }),
      signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError('Could not reach the audit log service.', 'NETWORK');
  }
  let body;
  try {
    body = await res.json();
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(`The server answered ${res.status} ${res.statusText} without a GraphQL response.`, 'HTTP_' + res.status, res.status);
  }
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    throw new ApiError(e.message, (e.extensions && e.extensions.code) || '', res.status);
  }
  return body.data;
}

/**
 * A subscription over graphql-transport-ws that survives dropped
 * connections. resume() names the variables of each (re)subscription, so a
 * caller passes the last cursor it saw as `after`. onState gets
 * 'connecting', 'live', 'retrying' or 'stopped' and a message.
 */
export class Subscription {
  constructor({ query, resume, onData, onState, maxRetries = 30 }) {
    this.query = query;
    this.resume = resume;
    this.onData = onData;
    this.onState = onState;
    this.maxRetries = maxRetries;
    this.retries = 0;
    this.stopped = false;
    this.ws = null;
    this.timer = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      if (ws.readyState === WebSocket.OPEN) {
        try { ws.send(JSON.stringify({ id: '1', type: 'complete' })); } catch { /* closing anyway */ }
      }
      ws.close(1000, 'live switched off');
    }
    this.onState('stopped', '');
  }

  /** Closes the connection as a network failure would, for tests and reconnect checks. */
  drop() {
    if (this.ws) this.ws.close(4000, 'dropped');
  }

  connect() {
    const url = new URL(endpoint);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.onState(this.retries ? 'retrying' : 'connecting', '');
    const ws = new WebSocket(url, 'graphql-transport-ws');
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: 'Bearer ' + getToken() } }));
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      switch (msg.type) {
        case 'connection_ack':
          this.retries = 0;
          ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: this.query, variables: this.resume() } }));
          this.onState('live', '');
          break;
        case 'ping':
          ws.send(JSON.stringify({ type: 'pong' }));
          break;
        case 'next':
          if (msg.payload && msg.payload.errors && msg.payload.errors.length) {
            const e = msg.payload.errors[0];
            this.fail(e.message, (e.extensions && e.extensions.code) || '');
            ws.close(1000, 'error');
          } else if (msg.payload && msg.payload.data) {
            this.onData(msg.payload.data);
          }
          break;
        case 'error': {
          const e = (msg.payload && msg.payload[0]) || { message: 'subscription refused' };
          this.fail(e.message, (e.extensions && e.extensions.code) || '');
          ws.close(1000, 'error');
          break;
        }
        case 'complete':
          ws.close(1000, 'complete');
          break;
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return; // stopped or replaced
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === 4403 || ev.code === 4401) {
        this.stopped = true;
        this.onState('stopped', 'The server refused the live connection: ' + (ev.reason || 'not signed in') + '.');
        return;
      }
      this.scheduleRetry();
    };
  }

  fail(message, code) {
    if (code === 'FORBIDDEN' || code === 'UNAUTHENTICATED' || code === 'BAD_USER_INPUT') {
      this.stopped = true;
      this.onState('stopped', message);
    }
  }

  scheduleRetry() {
    if (this.retries >= this.maxRetries) {
      this.stopped = true;
      this.onState('stopped', 'The live connection was lost and could not be restored.');
      return;
    }
    const delay = Math.min(10000, 250 * 2 ** this.retries);
    this.retries++;
    this.onState('retrying', '');
    this.timer = setTimeout(() => { if (!this.stopped) this.connect(); }, delay);
  }
}
