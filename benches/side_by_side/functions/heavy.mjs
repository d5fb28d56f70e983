// The head-of-line measurement: 20 ms of CPU per call, as a function doing real work would
// (image placeholders, large templates). Other behaviors' requests must not wait behind it.
export const handler = async (event) => {
  const until = Date.now() + 20;
  let spins = 0;
  while (Date.now() < until) spins++;
  const request = event.Records[0].cf.request;
  request.headers['x-spins'] = [{ key: 'X-Spins', value: String(spins) }];
  return request;
};
