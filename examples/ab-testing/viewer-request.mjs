// A/B testing with a sticky variant cookie (viewer request).
// New visitors get variant "b" with probability VARIANT_B_WEIGHT (0..1, default 0.5), others "a";
// returning visitors keep the variant in their `variant` cookie. The URI is rewritten to the
// variant's copy of the page (/experiment/x -> /b/x), so the cache keeps variants apart without
// caching on the cookie. A new assignment is marked in a request header for the viewer-response
// function, which sets the cookie.
const COOKIE = 'variant';

function variantFromCookies(headers) {
  for (const { value } of headers.cookie || []) {
    for (const part of value.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name === COOKIE && ['a', 'b'].includes(rest.join('='))) return rest.join('=');
    }
  }
  return null;
}

export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  let variant = variantFromCookies(request.headers);
  if (!variant) {
    const weight = Number(process.env.VARIANT_B_WEIGHT ?? '0.5');
    variant = Math.random() < weight ? 'b' : 'a';
    request.headers['x-variant-assigned'] = [{ key: 'X-Variant-Assigned', value: variant }];
  }
  request.uri = request.uri.replace(/^\/experiment(\/|$)/, `/${variant}/`);
  return request;
};
