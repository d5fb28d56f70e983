// Sets the sticky variant cookie for visitors the viewer-request function just assigned.
export const handler = async (event) => {
  const { request, response } = event.Records[0].cf;
  const assigned = request.headers['x-variant-assigned'];
  if (assigned) {
    const cookie = `variant=${assigned[0].value}; Path=/; Max-Age=2592000; SameSite=Lax`;
    response.headers['set-cookie'] = [...(response.headers['set-cookie'] || []), { key: 'Set-Cookie', value: cookie }];
  }
  return response;
};
