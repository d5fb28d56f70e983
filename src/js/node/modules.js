// The Node.js core modules edgehook takes from maintained npm packages (versions pinned in
// package-lock.json). build.rs bundles this file with esbuild into the script that runs before
// the bootstrap; the bootstrap takes this table and removes it from the global object. Each
// entry builds its module on first call (esbuild keeps every CommonJS module behind a lazy
// wrapper), so a function that requires none of them pays nothing per call.
globalThis.__edgehookNodeModules = {
  setCoreRequire: require("./core.js").setCoreRequire,
  events: () => require("events/"),
  path: () => require("path-browserify"),
  string_decoder: () => require("string_decoder/"),
};
