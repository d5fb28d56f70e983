// The new code of the walk-through in README.md, uploaded through one node.
export const handler = async (event, context) => {
  const response = event.Records[0].cf.response;
  response.headers['x-greeting'] = [{ key: 'X-Greeting', value: 'hello from code uploaded once' }];
  response.headers['x-function-version'] = [{ key: 'X-Function-Version', value: context.functionVersion }];
  return response;
};
