'use strict';
// A viewer-request function shipped as a deployment package: its redirect table is a data file
// beside the code, its matching comes from a package in node_modules, and the security headers
// of its answers from a library the `edge-headers` layer provides under /opt.
const fs = require('fs');
const path = require('path');
const { compile } = require('redirect-rules');
const { withSecurityHeaders } = require('edge-headers');

// Read once per instance, as on Lambda: module scope outlives invocations.
const table = JSON.parse(fs.readFileSync(path.join(__dirname, 'redirects.json'), 'utf8'));
const rules = compile(table.redirects);

exports.handler = async (event) => {
  const request = event.Records[0].cf.request;
  const target = rules.match(request.uri);
  if (!target) return request;
  return withSecurityHeaders({
    status: String(target.status),
    statusDescription: target.status === 301 ? 'Moved Permanently' : 'Found',
    headers: { location: [{ key: 'Location', value: target.location }] },
  });
};
