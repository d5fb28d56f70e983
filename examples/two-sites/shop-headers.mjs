// The shop's security headers, added to every answer on the way out.
export const handler = async (event) => {
  const response = event.Records[0].cf.response;
  response.headers['strict-transport-security'] = [
    { key: 'Strict-Transport-Security', value: 'max-age=63072000; includeSubDomains' },
  ];
  response.headers['content-security-policy'] = [
    { key: 'Content-Security-Policy', value: "default-src 'self'" },
  ];
  return response;
};
