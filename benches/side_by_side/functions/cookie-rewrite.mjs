// Scenario 3 (viewer request): read the `variant` cookie, rewrite /fn/x to /a/x or /b/x, and
// tell the origin the variant in a header. benches/side_by_side/nginx/bench.js does the same in njs.
export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  let variant = 'a';
  for (const { value } of request.headers.cookie || []) {
    const match = /(?:^|;\s*)variant=([ab])(?:;|$)/.exec(value);
    if (match) variant = match[1];
  }
  request.uri = `/${variant}${request.uri.slice(3)}`;
  request.headers['x-variant'] = [{ key: 'X-Variant', value: variant }];
  return request;
};
