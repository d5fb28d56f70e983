// Auth gating (viewer request): only requests with a valid HS256 JWT reach the origin.
// The token comes from the `token` cookie or `Authorization: Bearer <jwt>`; its signature is
// checked with JWT_SECRET, and `exp`/`nbf` against the clock. Without a valid token, API paths
// (/api/...) get 401 and pages get a 302 to LOGIN_URL. A valid token's subject goes to the
// origin in `x-user`.
const crypto = require('crypto');

function tokenOf(headers) {
  const auth = headers.authorization?.[0]?.value;
  if (auth && auth.startsWith('Bearer ')) return auth.slice(7).trim();
  for (const { value } of headers.cookie || []) {
    for (const part of value.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name === 'token') return rest.join('=');
    }
  }
  return null;
}

function verify(token, secret, now) {
  const parts = (token || '').split('.');
  if (parts.length !== 3) return null;
  const [header, payload, signature] = parts;
  let head, claims;
  try {
    head = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (head.alg !== 'HS256') return null;
  const expected = crypto.createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return null;
  if (typeof claims.exp === 'number' && now >= claims.exp) return null;
  if (typeof claims.nbf === 'number' && now < claims.nbf) return null;
  return claims;
}

exports.handler = async (event) => {
  const request = event.Records[0].cf.request;
  delete request.headers['x-user'];
  const claims = verify(tokenOf(request.headers), process.env.JWT_SECRET, Math.floor(Date.now() / 1000));
  if (claims && typeof claims.sub === 'string') {
    request.headers['x-user'] = [{ key: 'X-User', value: claims.sub }];
    return request;
  }
  if (request.uri.startsWith('/api/')) {
    return {
      status: '401',
      statusDescription: 'Unauthorized',
      headers: {
        'www-authenticate': [{ key: 'WWW-Authenticate', value: 'Bearer' }],
        'content-type': [{ key: 'Content-Type', value: 'application/json' }],
      },
      body: JSON.stringify({ error: 'a valid token is required' }),
    };
  }
  const back = encodeURIComponent(request.uri + (request.querystring ? `?${request.querystring}` : ''));
  return {
    status: '302',
    statusDescription: 'Found',
    headers: { location: [{ key: 'Location', value: `${process.env.LOGIN_URL || '/login'}?next=${back}` }] },
  };
};
