// Origin by device (origin request): mobile viewers are served from the `mobile` origin, the
// others from the behavior's origin. CloudFront-Is-Mobile-Viewer is added by the proxy after the
// viewer-request event, from the User-Agent.
export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  const mobile = request.headers['cloudfront-is-mobile-viewer']?.[0]?.value === 'true';
  if (mobile) {
    request.origin = { s3: { domainName: 'mobile', authMethod: 'none', path: '', customHeaders: {} } };
  }
  return request;
};
