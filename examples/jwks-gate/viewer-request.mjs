// Lets through only requests with a valid RS256 JWT (`Authorization: Bearer ...`) signed by a
// key of the JWKS at JWKS_URL, as Cognito and Auth0 gates do. The key set is fetched on first
// use and kept in module scope for ten minutes, so most requests make no outbound call.
const KEYS_FOR_MS = 10 * 60 * 1000;
let keySet = null;
let fetchedAt = 0;

async function keys() {
  if (keySet === null || Date.now() - fetchedAt > KEYS_FOR_MS) {
    const response = await fetch(process.env.JWKS_URL);
    if (!response.ok) throw new Error(`JWKS: ${response.status}`);
    keySet = (await response.json()).keys;
    fetchedAt = Date.now();
  }
  return keySet;
}

const decode = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

async function verified(token) {
  const [head, body, signature] = token.split('.');
  if (!signature) return null;
  const header = decode(head);
  if (header.alg !== 'RS256') return null;
  const jwk = (await keys()).find((key) => key.kid === header.kid);
  if (!jwk) return null;
  const key = await crypto.subtle.importKey('jwk', jwk, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['verify']);
  const signed = new TextEncoder().encode(`${head}.${body}`);
  if (!(await crypto.subtle.verify('RSASSA-PKCS1-v1_5', key, Buffer.from(signature, 'base64url'), signed))) return null;
  const claims = decode(body);
  const now = Date.now() / 1000;
  if (typeof claims.exp !== 'number' || claims.exp < now || (claims.nbf ?? 0) > now) return null;
  return claims;
}

const denied = (why) => ({
  status: '401',
  statusDescription: 'Unauthorized',
  headers: {
    'www-authenticate': [{ value: `Bearer error="invalid_token", error_description="${why}"` }],
    'content-type': [{ value: 'text/plain' }],
  },
  body: `${why}\n`,
});

export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  const authorization = request.headers.authorization?.[0]?.value ?? '';
  if (!authorization.startsWith('Bearer ')) return denied('a bearer token is required');
  let claims;
  try {
    claims = await verified(authorization.slice('Bearer '.length));
  } catch (error) {
    console.error('cannot check the token:', error.message);
    return { status: '503', statusDescription: 'Service Unavailable', body: 'cannot check tokens now\n' };
  }
  if (claims === null) return denied('the token is not valid');
  request.headers['x-user'] = [{ value: String(claims.sub) }];
  return request;
};
