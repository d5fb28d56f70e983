// Scenario 4: one small function per hook, each adding a header, on a cache miss.
export const viewerRequest = async (event) => {
  const request = event.Records[0].cf.request;
  request.headers['x-hook-viewer-request'] = [{ key: 'X-Hook-Viewer-Request', value: '1' }];
  return request;
};

export const originRequest = async (event) => {
  const request = event.Records[0].cf.request;
  request.headers['x-hook-origin-request'] = [{ key: 'X-Hook-Origin-Request', value: '1' }];
  return request;
};

export const originResponse = async (event) => {
  const response = event.Records[0].cf.response;
  response.headers['x-hook-origin-response'] = [{ key: 'X-Hook-Origin-Response', value: '1' }];
  return response;
};

export const viewerResponse = async (event) => {
  const response = event.Records[0].cf.response;
  response.headers['x-hook-viewer-response'] = [{ key: 'X-Hook-Viewer-Response', value: '1' }];
  return response;
};
