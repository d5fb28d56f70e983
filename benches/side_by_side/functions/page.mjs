// Scenario 5 (viewer request): a page generated at the edge, no origin.
export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  return {
    status: '200',
    statusDescription: 'OK',
    headers: { 'content-type': [{ key: 'Content-Type', value: 'text/html; charset=utf-8' }] },
    body: `<!doctype html><html><head><title>Generated</title></head><body><h1>Hello from the edge</h1><p>You asked for ${request.uri}.</p></body></html>`,
  };
};
