// Pretty URLs (viewer request): /docs/ and /docs serve /docs/index.html, like a static site host.
export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  if (request.uri.endsWith('/')) {
    request.uri += 'index.html';
  } else if (!request.uri.split('/').pop().includes('.')) {
    request.uri += '/index.html';
  }
  return request;
};
