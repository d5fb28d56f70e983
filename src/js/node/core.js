// The runtime's own `require`, handed over by the bootstrap, so that packaged modules asking
// for a core module edgehook implements itself (`buffer`) get the function's one, as in Node.
let coreRequire = null;
exports.setCoreRequire = (require) => {
  coreRequire = require;
};
exports.coreRequire = (name) => coreRequire(name);
