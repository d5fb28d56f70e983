// njs equivalents of edgehook's benchmark functions (benches/side_by_side/functions and the
// ab-testing and auth-gating examples). Written for njs 0.7 (Debian's libnginx-mod-http-js):
// no destructuring or spread.
var crypto = require('crypto');

function cookie(r, name) {
  var match = new RegExp('(?:^|;\\s*)' + name + '=([^;]*)').exec(r.headersIn.Cookie || '');
  return match ? match[1] : null;
}

// Scenario 3: the variant cookie decides the URI and a header to the origin.
function variant(r) {
  var value = cookie(r, 'variant');
  return value === 'a' || value === 'b' ? value : 'a';
}

function variantUri(r) {
  return '/' + variant(r) + r.uri.slice(3);
}

// Scenario 4: a header from each of the request and response hooks.
function hookViewerRequest(r) {
  return '1';
}

function hookOriginRequest(r) {
  return '1';
}

function hookResponses(r) {
  r.headersOut['X-Hook-Origin-Response'] = '1';
  r.headersOut['X-Hook-Viewer-Response'] = '1';
}

// Scenario 5: a generated page.
function page(r) {
  r.headersOut['Content-Type'] = 'text/html; charset=utf-8';
  r.return(200, '<!doctype html><html><head><title>Generated</title></head><body><h1>Hello from the edge</h1><p>You asked for ' + r.uri + '.</p></body></html>');
}

// Scenario 6, A/B testing: sticky variant cookie, URI rewritten to the variant's copy.
function abUri(r) {
  var value = cookie(r, 'variant');
  if (value !== 'a' && value !== 'b') {
    value = Math.random() < 0.5 ? 'b' : 'a';
    r.variables.ab_assigned = value;
  }
  return r.uri.replace(/^\/experiment(\/|$)/, '/' + value + '/');
}

function abCookie(r) {
  var assigned = r.variables.ab_assigned;
  if (assigned) {
    r.headersOut['Set-Cookie'] = 'variant=' + assigned + '; Path=/; Max-Age=2592000; SameSite=Lax';
  }
}

// Scenario 6, auth gating: an HS256 JWT from the `token` cookie or a bearer header; the
// subject, or '' when the token is missing or invalid.
function authUser(r) {
  var token = null;
  var authorization = r.headersIn.Authorization;
  if (authorization && authorization.startsWith('Bearer ')) {
    token = authorization.slice(7).trim();
  } else {
    token = cookie(r, 'token');
  }
  var parts = (token || '').split('.');
  if (parts.length !== 3) return '';
  var head, claims;
  try {
    head = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  } catch (e) {
    return '';
  }
  if (head.alg !== 'HS256') return '';
  var expected = crypto.createHmac('sha256', r.variables.jwt_secret).update(parts[0] + '.' + parts[1]).digest('base64url');
  if (expected !== parts[2]) return '';
  var now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp === 'number' && now >= claims.exp) return '';
  if (typeof claims.nbf === 'number' && now < claims.nbf) return '';
  return typeof claims.sub === 'string' ? claims.sub : '';
}

function loginRedirect(r) {
  return 'https://login.example.com/?next=' + encodeURIComponent(r.variables.request_uri);
}

export default {
  variant, variantUri, hookViewerRequest, hookOriginRequest, hookResponses, page, abUri, abCookie,
  authUser, loginRedirect,
};
