// Runs a Lambda@Edge function in Node.js as Lambda's Node.js 20 runtime runs it, so tests can
// compare edgehook's outcome with Node's:
//
//   node tests/node/lambda-edge.mjs <package directory> <handler> <event.json>
//
// The handler is Lambda's `file.export`; the module is found as Lambda finds it (`file.js`,
// `.mjs`, `.cjs`) and imported; the export is called with the event, a context and a callback,
// and the first of the callback or the returned promise settles the call. Prints one JSON
// line: {"result": ...} or {"error": {"errorType": ..., "errorMessage": ...}}.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [dir, handler, eventFile] = process.argv.slice(2);
const print = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const failure = (error) => ({
  error: {
    errorType: error?.name ?? "Error",
    errorMessage: error?.message ?? String(error),
  },
});

try {
  const dot = handler.lastIndexOf(".");
  const [moduleName, exportName] = [handler.slice(0, dot), handler.slice(dot + 1)];
  const file = [".js", ".mjs", ".cjs"]
    .map((extension) => path.join(dir, moduleName + extension))
    .find((candidate) => existsSync(candidate));
  if (!file) throw Object.assign(new Error(`Cannot find module '${moduleName}'`), { name: "Runtime.ImportModuleError" });
  const module = await import(pathToFileURL(file).href);
  const handle = module[exportName] ?? module.default?.[exportName];
  if (typeof handle !== "function") {
    throw Object.assign(new Error(`${moduleName}.${exportName} is undefined or not exported`), { name: "Runtime.HandlerNotFound" });
  }
  const event = JSON.parse(readFileSync(eventFile, "utf8"));
  const context = {
    functionName: "f",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
    memoryLimitInMB: "128",
    awsRequestId: "node",
    logGroupName: "/aws/lambda/f",
    logStreamName: "node",
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 5000,
  };
  const result = await new Promise((resolve, reject) => {
    const returned = handle(event, context, (error, value) => (error ? reject(error) : resolve(value)));
    if (returned && typeof returned.then === "function") returned.then(resolve, reject);
  });
  print({ result: result ?? null });
} catch (error) {
  print(failure(error));
}
process.exit(0);
