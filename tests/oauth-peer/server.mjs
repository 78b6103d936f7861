// A real OAuth 2.0 / OpenID Connect server for Alter's end-to-end tests: oidc-provider on
// 127.0.0.1, one confidential client, PKCE required, refresh tokens for every code grant,
// revocation and introspection, our own login and consent pages with a real password check, and
// an unbounded in-memory store. Started by `alter_testkit::oauth_peer::OAuthPeer`.
//
// Configuration (environment):
//   PEER_CLIENT_ID, PEER_CLIENT_SECRET   the client's credentials (defaults below)
//   PEER_REDIRECT_URIS                   its exact redirect URIs, comma-separated (required)
//   PEER_ROTATE_REFRESH=1|0              rotate refresh tokens on every use (default 1)
//   PEER_ACCESS_TTL                      access-token lifetime in seconds (default 60)
//   PEER_PASSWORD                        alice's password (default below)
//
// GET /_peer/stats counts requests; GET /_peer/resource is a resource server accepting only live
// access tokens; GET /_peer/refresh-tokens lists the live refresh tokens.
//
// Once listening it prints one JSON line on stdout, {"issuer": "http://127.0.0.1:PORT", "port":
// PORT}; everything else goes to stderr. It exits when stdin closes, so a test that dies cannot
// leave it running.

import { createHash, generateKeyPairSync, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';

import Provider from 'oidc-provider';

const BODY_LIMIT = 64 * 1024;

function log(...args) {
  console.error('[oauth-peer]', ...args);
}

function fail(message) {
  log(message);
  process.exit(2);
}

const env = process.env;
const clientId = env.PEER_CLIENT_ID || 'alter-test';
const clientSecret = env.PEER_CLIENT_SECRET || 'alter-test-secret';
const redirectUris = (env.PEER_REDIRECT_URIS || '').split(',').map((u) => u.trim()).filter(Boolean);
if (redirectUris.length === 0) fail('PEER_REDIRECT_URIS is required (comma-separated redirect URIs)');
const rotateRefresh = (env.PEER_ROTATE_REFRESH ?? '1') !== '0';
const accessTtl = Number.parseInt(env.PEER_ACCESS_TTL || '60', 10);
if (!Number.isSafeInteger(accessTtl) || accessTtl <= 0) fail(`PEER_ACCESS_TTL must be a positive integer, got ${env.PEER_ACCESS_TTL}`);

// The accounts: login name -> password and claims.
const accounts = new Map([
  ['alice', {
    password: env.PEER_PASSWORD || 'alice-password',
    claims: { email: 'alice@example.test', email_verified: true, name: 'Alice Example', preferred_username: 'alice' },
  }],
  // A second person, for tests where one user must not see another's grants.
  ['bob', {
    password: env.PEER_BOB_PASSWORD || 'bob-password',
    claims: { email: 'bob@example.test', email_verified: true, name: 'Bob Example', preferred_username: 'bob' },
  }],
]);

// Compares digests so that neither the length nor the content of the password leaks through timing.
function passwordMatches(login, password) {
  const digest = (value) => createHash('sha256').update(String(value)).digest();
  const account = accounts.get(login);
  // An unknown login is compared against a random value so that it takes as long as a known one.
  const expected = digest(account ? account.password : randomUUID());
  return timingSafeEqual(digest(password), expected) && account !== undefined;
}

// The default memory adapter is an LRU that silently evicts entries in long tests: this one keeps
// everything until it expires.
const store = new Map();
const grantMembers = new Map();
// The models whose entries die with their grant (as in oidc-provider's own memory adapter).
const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(key, { payload, expiresAt });
    if (this.model === 'Session' && payload.uid) store.set(`sessionUid:${payload.uid}`, { payload: id, expiresAt });
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, { payload: id, expiresAt });
    if (grantable.has(this.model) && payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
  }

  async find(id) {
    return lookup(this.key(id));
  }

  async findByUid(uid) {
    const id = lookup(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = lookup(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = lookup(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

function lookup(key) {
  const entry = store.get(key);
  if (entry === undefined) return undefined;
  if (entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.payload;
}

// Counted as requests arrive, before the provider sees them, whatever it then answers.
const stats = {
  token_requests: { authorization_code: 0, refresh_token: 0, other: 0 },
  revocations: 0,
  introspections: 0,
  resource_calls: 0,
};

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > BODY_LIMIT) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendHtml(res, status, title, body) {
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>`
    + `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(value));
}

function loginPage(res, status, uid, client, error) {
  const path = `/interaction/${encodeURIComponent(uid)}`;
  sendHtml(res, status, 'Sign in', ''
    + `<p>Sign in to continue to ${escapeHtml(client)}.</p>`
    + (error ? `<p id="error" role="alert">${escapeHtml(error)}</p>` : '')
    + `<form method="post" action="${path}/login">`
    + '<label>Username <input id="username" name="login" autocomplete="username" required></label>'
    + '<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>'
    + '<button id="submit" type="submit">Sign in</button>'
    + `</form><p><a id="deny" href="${path}/abort">Cancel</a></p>`);
}

function consentPage(res, uid, client, scopes) {
  const path = `/interaction/${encodeURIComponent(uid)}`;
  const items = scopes.map((s) => `<li class="scope">${escapeHtml(s)}</li>`).join('');
  sendHtml(res, 200, 'Authorize access', ''
    + `<p>${escapeHtml(client)} asks for:</p><ul id="scopes">${items}</ul>`
    + `<form method="post" action="${path}/confirm"><button id="allow" type="submit">Allow</button></form>`
    + `<p><a id="deny" href="${path}/abort">Deny</a></p>`);
}

async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    sendHtml(res, 400, 'Interaction mismatch', '<p>This page belongs to another sign-in.</p>');
    return;
  }
  const { prompt, params, session } = details;

  if (action === undefined && req.method === 'GET') {
    if (prompt.name === 'login') {
      loginPage(res, 200, uid, params.client_id);
    } else if (prompt.name === 'consent') {
      consentPage(res, uid, params.client_id, prompt.details.missingOIDCScope ?? []);
    } else {
      sendHtml(res, 400, 'Unknown prompt', `<p>${escapeHtml(prompt.name)}</p>`);
    }
    return;
  }

  if (action === 'login' && req.method === 'POST') {
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    const login = form.get('login') ?? '';
    if (prompt.name !== 'login' || !passwordMatches(login, form.get('password') ?? '')) {
      log(`login refused for ${JSON.stringify(login)}`);
      loginPage(res, 401, uid, params.client_id, 'Wrong username or password.');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    return;
  }

  if (action === 'confirm' && req.method === 'POST') {
    await readBody(req);
    if (prompt.name !== 'consent') {
      sendHtml(res, 400, 'Nothing to confirm', '<p>This sign-in is not waiting for consent.</p>');
      return;
    }
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }

  if (action === 'abort' && req.method === 'GET') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }

  sendHtml(res, 405, 'Not allowed', '');
}

// Listen first so that the issuer carries the real port.
const server = createServer();
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  allowOmittingSingleRegisteredRedirectUri: false,
  pkce: { required: () => true },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => rotateRefresh,
  scopes: ['openid', 'offline_access', 'files.read', 'files.write'],
  claims: {
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  findAccount: async (ctx, sub) => {
    const account = accounts.get(sub);
    return account && { accountId: sub, claims: async () => ({ sub, ...account.claims }) };
  },
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: 60,
    RefreshToken: 86400,
    Grant: 86400,
    Session: 3600,
    Interaction: 600,
    IdToken: 3600,
  },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url'), randomBytes(32).toString('base64url')] },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = '<!doctype html><html><head><meta charset="utf-8"><title>Error</title></head><body>'
      + `<h1>${escapeHtml(out.error)}</h1><p>${escapeHtml(out.error_description ?? '')}</p></body></html>`;
  },
});

// Clients only see "grant request is invalid"; the reason is in error_detail.
for (const event of ['grant.error', 'authorization.error', 'revocation.error', 'introspection.error', 'server_error']) {
  provider.on(event, (ctx, err) => log(event, err?.error ?? err?.message, err?.error_detail ?? ''));
}

const providerCallback = provider.callback();

async function handle(req, res) {
  const url = new URL(req.url, issuer);

  if (url.pathname === '/_peer/stats' && req.method === 'GET') {
    sendJson(res, 200, stats);
    return;
  }

  // The live, unconsumed refresh tokens, oldest first: a test plays the user revoking the app
  // at the provider with one of them (the vault never hands its tokens out).
  if (url.pathname === '/_peer/refresh-tokens' && req.method === 'GET') {
    const live = [];
    for (const [key, entry] of store) {
      if (key.startsWith('RefreshToken:') && entry.expiresAt > Date.now() && !entry.payload.consumed) {
        live.push(key.slice('RefreshToken:'.length));
      }
    }
    sendJson(res, 200, live);
    return;
  }

  // A resource server of this provider: it accepts a request only with a live access token,
  // which it looks up in the provider's own store (as introspection does), and counts the calls.
  if (url.pathname === '/_peer/resource' && req.method === 'GET') {
    stats.resource_calls += 1;
    const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const token = match && await provider.AccessToken.find(match[1]);
    if (!token || token.isExpired) {
      res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"');
      sendJson(res, 401, { error: 'invalid_token' });
      return;
    }
    sendJson(res, 200, {
      sub: token.accountId,
      scope: token.scope,
      client_id: token.clientId,
      api_version: req.headers['x-acme-version'] ?? null,
    });
    return;
  }

  const route = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(url.pathname);
  if (route) {
    await interaction(provider, req, res, decodeURIComponent(route[1]), route[2]);
    return;
  }

  if (req.method === 'POST' && url.pathname === '/token') {
    // Reading the body here consumes the stream; oidc-provider then parses `req.body` instead
    // (and warns once on stderr that an upstream parser read it).
    const body = await readBody(req);
    const grantType = new URLSearchParams(body.toString('utf8')).get('grant_type');
    const counter = grantType in stats.token_requests && grantType !== 'other' ? grantType : 'other';
    stats.token_requests[counter] += 1;
    req.body = body;
  } else if (req.method === 'POST' && url.pathname === '/token/revocation') {
    stats.revocations += 1;
  } else if (req.method === 'POST' && url.pathname === '/token/introspection') {
    stats.introspections += 1;
  }

  providerCallback(req, res);
}

server.on('request', (req, res) => {
  handle(req, res).catch((err) => {
    log('request failed:', req.method, req.url, err?.name, err?.message);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // interactionDetails throws SessionNotFound when the interaction cookie is missing or stale.
    const status = err?.statusCode ?? 500;
    sendHtml(res, status, status === 500 ? 'Server error' : 'Bad request', `<p>${escapeHtml(err?.error_description ?? err?.message ?? '')}</p>`);
  });
});

const shutdown = () => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.resume();

process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
log(`ready at ${issuer} for client ${clientId}, redirect URIs ${redirectUris.join(' ')}, rotation ${rotateRefresh ? 'on' : 'off'}, access-token TTL ${accessTtl}s`);
