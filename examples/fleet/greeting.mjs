// Viewer response: says which code answered. Every node of the fleet starts with this file
// ($LATEST from its configuration); code uploaded through any node replaces it on all of them.
export const handler = async (event, context) => {
  const response = event.Records[0].cf.response;
  response.headers['x-greeting'] = [{ key: 'X-Greeting', value: 'hello from the configuration file' }];
  response.headers['x-function-version'] = [{ key: 'X-Function-Version', value: context.functionVersion }];
  return response;
};
