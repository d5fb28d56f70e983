// Runs a Lambda@Edge function in Node.js as Lambda's Node.js 20 runtime runs it, so tests can
// compare edgehook's outcome with Node's:
//
//   node tests/node/lambda-edge.mjs <package directory> <handler> <event.json>
//
// The handler is Lambda's `file.export`; the module is found as Lambda finds it (`file.js`,
// `.mjs`, `.cjs`) and imported; the export is called with the event, a context and a callback,
// and the first of the callback or the returned promise settles the call. Prints one JSON
// line: {"result": ...} or {"error": {"errorType": ..., "errorMessage": ...}}.
import { existsSync, readFileSync, statSync, writeSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [dir, handler, eventFile] = process.argv.slice(2).map((arg, i) => (i === 1 ? arg : path.resolve(arg)));
// Lambda runs a function with its package as the working directory (/var/task); a single
// file's is its directory.
process.chdir(existsSync(dir) && statSync(dir).isFile() ? path.dirname(dir) : dir);
// Standard output carries the outcome alone: what functions log goes to standard error.
for (const level of ["log", "info", "debug"]) console[level] = console.error;
process.stdout.write = process.stderr.write.bind(process.stderr);
// Written synchronously: the process exits right after, whatever timers a function left.
const print = (value) => writeSync(1, JSON.stringify(value) + "\n");
const failure = (error) => ({
  error: {
    errorType: error?.name ?? "Error",
    errorMessage: error?.message ?? String(error),
  },
});

// As Lambda's runtime: an uncaught exception, or a rejection nobody handles, fails the call.
process.on("uncaughtException", (error) => {
  print(failure(error));
  process.exit(0);
});
process.on("unhandledRejection", (reason) => {
  print({ error: { errorType: "Runtime.UnhandledPromiseRejection", errorMessage: String(reason) } });
  process.exit(0);
});

try {
  const dot = handler.lastIndexOf(".");
  const [moduleName, exportName] = [handler.slice(0, dot), handler.slice(dot + 1)];
  const file = statSync(dir).isFile()
    ? dir
    : [".js", ".mjs", ".cjs"].map((extension) => path.join(dir, moduleName + extension)).find((candidate) => existsSync(candidate));
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
  // Lambda@Edge's first rule on a result: the request, or a response (with a status).
  if (result === null || typeof result !== "object" || (!("status" in result) && !("uri" in result))) {
    throw Object.assign(new Error("the result is neither a request nor a response"), { name: "LambdaValidationError" });
  }
  print({ result });
} catch (error) {
  print(failure(error));
}
process.exit(0);
