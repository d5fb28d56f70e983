// A deployment package's entry module, run in Node.js 20 and in edgehook by the test
// `a_deployment_package_loads_and_reads_its_files_as_on_node`: each finding goes into the
// `x-probe` header, with the package's own paths written as <task> and layer paths as <layers>.
import { readFileSync, readdirSync, writeFileSync, existsSync, statSync, promises as fsp } from "node:fs";
import { readFile } from "fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import helper, { where, base, defined } from "./lib/helper.cjs";
import dualDefault, { kind } from "dual";

const require = createRequire(import.meta.url);
const root = path.dirname(fileURLToPath(import.meta.url));
const rel = (text) => String(text).split(root).join("<task>").replace(/\/\S*\/nodejs\/node_modules/, "<layers>");
const code = (f) => {
  try {
    f();
    return "no error";
  } catch (error) {
    return [error.code, error.errno ?? null, error.syscall ?? null, rel(error.message.split("\n")[0])];
  }
};

async function probe() {
  const out = {};
  out.helper = [rel(where), base, defined, Object.keys(helper).sort()];
  out.dual = [dualDefault, kind, require("dual").kind];
  const legacy = require("legacy");
  out.legacy = [legacy.legacy, legacy.inner, rel(legacy.dir)];
  out.json = require("./data/config.json").redirects["/old"];
  out.sameModule = require("./lib/helper.cjs") === helper;
  out.fsUrl = readFileSync(new URL("./data/text.txt", import.meta.url), "utf8");
  out.fsBytes = readFileSync(path.join(root, "data", "config.json")).length;
  out.dir = readdirSync(path.join(root, "data"));
  out.dirTypes = readdirSync(root, { withFileTypes: true }).map((d) => [d.name, d.isDirectory()]);
  out.stat = [statSync(path.join(root, "data")).isDirectory(), statSync(path.join(root, "data/text.txt")).size];
  out.exists = [existsSync(path.join(root, "nope")), existsSync(path.join(root, "index.mjs"))];
  out.missing = code(() => readFileSync(path.join(root, "nope.txt")));
  out.readDirAsFile = code(() => readFileSync(path.join(root, "data")));
  out.statMissing = code(() => statSync(path.join(root, "nope")));
  out.noEntry = statSync(path.join(root, "nope"), { throwIfNoEntry: false }) ?? "undefined";
  const scratch = `/tmp/edgehook-probe-${process.pid}`;
  writeFileSync(scratch, "written to /tmp");
  out.tmp = readFileSync(scratch, "utf8");
  out.promises = (await fsp.readFile(path.join(root, "data/text.txt"))).toString("base64");
  out.promisesModule = (await readFile(path.join(root, "data/text.txt"), "utf8")).length;
  out.callback = await new Promise((resolve) => {
    const fs = require("fs");
    fs.readFile(path.join(root, "nope"), (error) => resolve(error.code));
  });
  out.later = (await import("./lib/later.mjs")).later;
  try {
    await import("./lib");
  } catch (error) {
    // (edgehook's code here is ERR_MODULE_NOT_FOUND for every failed import: docs/functions.md)
    out.dirImport = rel(error.message);
  }
  try {
    await import("./lib/later");
  } catch (error) {
    out.noExtension = error.code;
  }
  out.requireMissing = code(() => require("./nope"));
  out.resolve = rel(require.resolve("legacy"));
  out.resolveBuiltin = require.resolve("node:path");
  out.meta = [rel(import.meta.dirname), rel(import.meta.filename), rel(import.meta.url)];
  const layered = require("layered");
  out.layered = [layered.fromLayer, rel(layered.dir)];
  out.isBuiltin = [require("module").isBuiltin("fs"), require("module").isBuiltin("nope")];
  return out;
}

export const handler = async (event) => {
  const request = event.Records[0].cf.request;
  request.headers["x-probe"] = [{ key: "X-Probe", value: Buffer.from(JSON.stringify(await probe())).toString("base64") }];
  return request;
};
