// Copyright 2026 the edgehook authors. Apache-2.0.
// `ext:deno_net/02_tls.js` as deno_fetch's HTTP clients load it: edgehook has no deno_net and
// no `Deno.createHttpClient`, so the one function they take from it refuses client
// certificates and otherwise gives none.
(function () {
function loadTlsKeyPair(api, options) {
  if (options.cert !== undefined || options.key !== undefined) {
    throw new TypeError(`${api}: client certificates are not supported`);
  }
  return null;
}
return { loadTlsKeyPair };
})();
