// `buffer` inside the packaged modules (safe-buffer, under string_decoder, requires it): the
// runtime's Buffer, not a second copy from npm.
module.exports = require("./core.js").coreRequire("buffer");
