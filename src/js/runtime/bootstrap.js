// edgehook's JavaScript environment for Lambda@Edge functions. Runs once in every fresh
// instance, before the function's code: it installs the Node.js-style built-ins functions
// commonly use. It is evaluated once per process into the engine snapshot instances start
// from; `bind`, run in each instance, keeps private references to deno_core's core object and
// op table and then removes every deno_core internal from reach (`Deno`, `__bootstrap`, the op table).
"use strict";
((globalThis) => {
  // deno_core's core object and its op table, bound by `bind` when an instance starts (after a
  // snapshot restore, so the references are the instance's own).
  let core, ops;
  // Whether this runtime has Deno's web extensions: instances of functions whose code names a
  // web platform global get them (js/web.rs, `names_web_api`); the others have no `fetch`,
  // `Headers`, streams or `crypto.subtle`, as Node.js before 18.
  const WEB = typeof globalThis.Deno?.core?.ops?.op_url_parse === "function";
  // Compiles the packaged modules' CommonJS in the global scope (an indirect eval, taken before
  // any function code can replace `eval`).
  const indirectEval = eval;
  const encodeUtf8 = (text) => core.encode(text);
  const decodeUtf8 = (bytes) => core.decode(bytes);
  const { parse: jsonParse, stringify: jsonStringify } = JSON;
  const ObjectFreeze = Object.freeze;
  const ArrayIsArray = Array.isArray;
  const ObjectKeys = Object.keys;
  const ObjectAssign = Object.assign;
  const ObjectValues = Object.values;
  const ObjectDefineProperty = Object.defineProperty;
  // Descriptors reused for every definition the bootstrap makes (a fresh object literal per
  // definition costs as much again as the definition); no prototype, so that nothing a
  // function puts on Object.prototype (a `value` or `get`) can be read from them.
  const dataDescriptor = { __proto__: null, value: undefined, writable: true, enumerable: true, configurable: true };
  const accessorDescriptor = { __proto__: null, get: undefined, set: undefined, enumerable: true, configurable: true };
  // Defines `key` on `target` as a plain data property (writable, enumerable, configurable).
  function definePlain(target, key, value) {
    dataDescriptor.value = value;
    try {
      ObjectDefineProperty(target, key, dataDescriptor);
    } finally {
      dataDescriptor.value = undefined;
    }
  }
  // Defines `key` on `target` as an accessor (enumerable, configurable).
  function defineAccessor(target, key, get, set) {
    accessorDescriptor.get = get;
    accessorDescriptor.set = set;
    try {
      ObjectDefineProperty(target, key, accessorDescriptor);
    } finally {
      accessorDescriptor.get = accessorDescriptor.set = undefined;
    }
  }
  const ObjectGetOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
  const ObjectPrototype = Object.prototype;
  const ObjectHasOwn = Object.hasOwn;
  // String methods as functions of the string, safe from a function that replaces them.
  const FunctionCall = Function.prototype.call;
  const StringIndexOf = FunctionCall.bind(String.prototype.indexOf);
  const StringSlice = FunctionCall.bind(String.prototype.slice);
  const PromiseThen = FunctionCall.bind(Promise.prototype.then);
  const ProxyConstructor = Proxy;
  const {
    get: ReflectGet,
    set: ReflectSet,
    has: ReflectHas,
    ownKeys: ReflectOwnKeys,
    getOwnPropertyDescriptor: ReflectGetOwnPropertyDescriptor,
    defineProperty: ReflectDefineProperty,
    deleteProperty: ReflectDeleteProperty,
    preventExtensions: ReflectPreventExtensions,
    setPrototypeOf: ReflectSetPrototypeOf,
  } = Reflect;

  // ---- console --------------------------------------------------------------------------
  // Never throws: console calls and edgehook's own reports describe any value a function made,
  // a proxy whose traps throw included.
  function inspect(value) {
    try {
      return inspectValue(value, new Set());
    } catch {
      return "[unreadable value]";
    }
  }
  function inspectValue(value, seen) {
    if (typeof value === "string") return value;
    if (value === undefined) return "undefined";
    if (value === null || typeof value !== "object") {
      if (typeof value === "function") return `[Function: ${value.name || "anonymous"}]`;
      if (typeof value === "bigint") return `${value}n`;
      return String(value);
    }
    if (value instanceof Error) return value.stack || `${value.name}: ${value.message}`;
    if (seen.has(value)) return "[Circular]";
    try {
      return jsonStringify(value, (k, v) => {
        if (typeof v === "bigint") return `${v}n`;
        if (typeof v === "object" && v !== null) {
          if (v !== value && seen.has(v)) return "[Circular]";
          seen.add(v);
        }
        return v;
      });
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
  function format(args) {
    if (args.length === 0) return "";
    let first = args[0];
    let rest = 1;
    if (typeof first === "string" && first.includes("%")) {
      first = first.replace(/%[sdifjoO%]/g, (spec) => {
        if (spec === "%%") return "%";
        if (rest >= args.length) return spec;
        const arg = args[rest++];
        switch (spec) {
          case "%s": return typeof arg === "string" ? arg : inspect(arg);
          case "%d": case "%i": return String(spec === "%i" ? Math.trunc(Number(arg)) : Number(arg));
          case "%f": return String(Number(arg));
          default: return inspect(arg);
        }
      });
    } else {
      first = inspect(first);
    }
    const parts = [first];
    for (; rest < args.length; rest++) parts.push(inspect(args[rest]));
    return parts.join(" ");
  }
  const LEVELS = { debug: 0, log: 1, info: 1, warn: 2, error: 3, trace: 0 };
  const console = {};
  for (const [name, level] of Object.entries(LEVELS)) {
    console[name] = (...args) => ops.op_edgehook_log(level, format(args));
  }
  console.dir = (value) => ops.op_edgehook_log(1, inspect(value));
  console.table = console.log;
  console.assert = (condition, ...args) => {
    if (!condition) ops.op_edgehook_log(3, "Assertion failed" + (args.length ? ": " + format(args) : ""));
  };
  const timeLabels = new Map();
  console.time = (label = "default") => timeLabels.set(label, Date.now());
  console.timeEnd = (label = "default") => {
    const start = timeLabels.get(label);
    timeLabels.delete(label);
    if (start !== undefined) ops.op_edgehook_log(1, `${label}: ${Date.now() - start}ms`);
  };
  // Node's Console writing formatted lines to the streams it is given (loggers build their own
  // over process.stdout and process.stderr, which reach the function's log).
  class Console {
    constructor(stdout, stderr) {
      const options = stdout !== null && typeof stdout === "object" && typeof stdout.write !== "function" ? stdout : { stdout, stderr };
      if (!options.stdout || typeof options.stdout.write !== "function") {
        throw nodeError(TypeError, "ERR_CONSOLE_WRITABLE_STREAM", "The \"stdout\" argument must be a writable stream");
      }
      const out = options.stdout;
      const err = options.stderr && typeof options.stderr.write === "function" ? options.stderr : out;
      const line = (stream) => (...args) => {
        stream.write(format(args) + "\n");
      };
      for (const name of ["log", "info", "debug", "dir", "table"]) this[name] = line(out);
      for (const name of ["warn", "error", "trace"]) this[name] = line(err);
      this.assert = (condition, ...args) => {
        if (!condition) err.write("Assertion failed" + (args.length ? ": " + format(args) : "") + "\n");
      };
      const labels = new Map();
      this.time = (label = "default") => labels.set(label, Date.now());
      this.timeEnd = (label = "default") => {
        const start = labels.get(label);
        labels.delete(label);
        if (start !== undefined) out.write(`${label}: ${Date.now() - start}ms\n`);
      };
    }
  }
  console.Console = Console;

  // ---- timers ---------------------------------------------------------------------------
  const timers = new Map();
  let nextTimerId = 1;
  function addTimer(callback, delay, args, repeat) {
    if (typeof callback !== "function") throw new TypeError("The \"callback\" argument must be a function");
    const id = nextTimerId++;
    const run = () => {
      if (!repeat) timers.delete(id);
      callback(...args);
    };
    timers.set(id, core.createTimer(run, Number(delay) || 1, undefined, repeat, true));
    return id;
  }
  function clearTimer(id) {
    const timer = timers.get(typeof id === "object" && id !== null ? id.id : id);
    if (timer) {
      core.cancelTimer(timer);
      timers.delete(id);
    }
  }
  const setTimeout = (callback, delay, ...args) => addTimer(callback, delay, args, false);
  const setInterval = (callback, delay, ...args) => addTimer(callback, delay, args, true);
  const setImmediate = (callback, ...args) => addTimer(callback, 0, args, false);

  // ---- base64, Buffer, TextEncoder/TextDecoder -------------------------------------------
  function latin1Bytes(text) {
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
    return bytes;
  }
  function latin1String(bytes) {
    let out = "";
    for (let i = 0; i < bytes.length; i += 8192) {
      out += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    }
    return out;
  }
  function hexBytes(text) {
    const length = text.length >>> 1;
    const bytes = new Uint8Array(length);
    let i = 0;
    for (; i < length; i++) {
      const byte = parseInt(text.substr(i * 2, 2), 16);
      if (Number.isNaN(byte)) break;
      bytes[i] = byte;
    }
    return bytes.subarray(0, i);
  }
  function hexString(bytes) {
    let out = "";
    for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return out;
  }
  function utf16leBytes(text) {
    const bytes = new Uint8Array(text.length * 2);
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      bytes[i * 2] = c & 0xff;
      bytes[i * 2 + 1] = c >> 8;
    }
    return bytes;
  }
  function utf16leString(bytes) {
    let out = "";
    for (let i = 0; i + 1 < bytes.length; i += 2) out += String.fromCharCode(bytes[i] | (bytes[i + 1] << 8));
    return out;
  }
  function normalizeEncoding(encoding) {
    const e = String(encoding ?? "utf8").toLowerCase();
    switch (e) {
      case "utf8": case "utf-8": return "utf8";
      case "hex": return "hex";
      case "base64": return "base64";
      case "base64url": return "base64url";
      case "latin1": case "binary": return "latin1";
      case "ascii": return "ascii";
      case "ucs2": case "ucs-2": case "utf16le": case "utf-16le": return "utf16le";
      default: throw new TypeError(`Unknown encoding: ${encoding}`);
    }
  }
  function encodeString(text, encoding) {
    switch (normalizeEncoding(encoding)) {
      case "utf8": return encodeUtf8(text);
      case "hex": return hexBytes(text);
      case "base64": case "base64url": return ops.op_edgehook_base64_decode(text);
      case "latin1": case "ascii": return latin1Bytes(text);
      case "utf16le": return utf16leBytes(text);
    }
  }
  function decodeBytes(bytes, encoding) {
    switch (normalizeEncoding(encoding)) {
      case "utf8": return decodeUtf8(bytes);
      case "hex": return hexString(bytes);
      case "base64": return ops.op_edgehook_base64_encode(bytes, false);
      case "base64url": return ops.op_edgehook_base64_encode(bytes, true);
      case "latin1": return latin1String(bytes);
      case "ascii": return latin1String(bytes.map((b) => b & 0x7f));
      case "utf16le": return utf16leString(bytes);
    }
  }

  class BufferClass extends Uint8Array {
    static from(value, encodingOrOffset, length) {
      if (typeof value === "string") return toBuffer(encodeString(value, encodingOrOffset));
      if (value instanceof ArrayBuffer) {
        const offset = encodingOrOffset >>> 0;
        const size = length === undefined ? value.byteLength - offset : length >>> 0;
        return new BufferClass(value, offset, size);
      }
      if (ArrayBuffer.isView(value)) {
        return toBuffer(new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice());
      }
      if (ArrayIsArray(value)) return toBuffer(Uint8Array.from(value, (v) => v & 0xff));
      if (value && typeof value === "object" && value.type === "Buffer" && ArrayIsArray(value.data)) {
        return Buffer.from(value.data);
      }
      throw new TypeError("The first argument must be a string, Buffer, ArrayBuffer, Array, or array-like object");
    }
    static alloc(size, fill, encoding) {
      const buffer = new BufferClass(size >>> 0);
      if (fill !== undefined) buffer.fill(typeof fill === "string" ? encodeString(fill, encoding)[0] ?? 0 : fill);
      return buffer;
    }
    static allocUnsafe(size) {
      return new BufferClass(size >>> 0);
    }
    static isBuffer(value) {
      return value instanceof Buffer;
    }
    static isEncoding(encoding) {
      try {
        normalizeEncoding(encoding);
        return true;
      } catch {
        return false;
      }
    }
    static byteLength(value, encoding) {
      if (typeof value === "string") return encodeString(value, encoding).length;
      return value.byteLength;
    }
    static concat(list, totalLength) {
      const total = totalLength ?? list.reduce((n, b) => n + b.length, 0);
      const out = new BufferClass(total);
      let offset = 0;
      for (const item of list) {
        if (offset >= total) break;
        const part = item.subarray(0, total - offset);
        out.set(part, offset);
        offset += part.length;
      }
      return out;
    }
    static compare(a, b) {
      const n = Math.min(a.length, b.length);
      for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
      return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
    }
    toString(encoding, start = 0, end = this.length) {
      return decodeBytes(this.subarray(start, end), encoding);
    }
    toJSON() {
      return { type: "Buffer", data: Array.from(this) };
    }
    // How util.inspect and console show a Buffer in Node: `<Buffer 61 62>`, 50 bytes at most.
    [Symbol.for("nodejs.util.inspect.custom")]() {
      const shown = Math.min(50, this.length);
      const remaining = this.length - 50;
      let text = decodeBytes(this.subarray(0, shown), "hex").replace(/(.{2})/g, "$1 ").trim();
      if (remaining > 0) text += ` ... ${remaining} more byte${remaining > 1 ? "s" : ""}`;
      return `<Buffer ${text}>`;
    }
    equals(other) {
      return Buffer.compare(this, other) === 0;
    }
    compare(other) {
      return Buffer.compare(this, other);
    }
    slice(start, end) {
      return this.subarray(start, end);
    }
    subarray(start, end) {
      const view = Uint8Array.prototype.subarray.call(this, start, end);
      return new BufferClass(view.buffer, view.byteOffset, view.byteLength);
    }
    write(text, offset = 0, length, encoding = "utf8") {
      const bytes = encodeString(text, encoding).subarray(0, length ?? this.length - offset);
      this.set(bytes.subarray(0, this.length - offset), offset);
      return Math.min(bytes.length, this.length - offset);
    }
    copy(target, targetStart = 0, sourceStart = 0, sourceEnd = this.length) {
      const part = this.subarray(sourceStart, Math.min(sourceEnd, sourceStart + target.length - targetStart));
      target.set(part, targetStart);
      return part.length;
    }
  }
  // Node's Buffer is a function: `Buffer(x)` and the deprecated `new Buffer(x)` both make a
  // buffer as `Buffer.from(x, ...)` does, or a zero-filled one of a given size; the class above
  // holds the methods and is never seen under its own name.
  function Buffer(value, encodingOrOffset, length) {
    if (typeof value === "number") return BufferClass.alloc(value);
    return BufferClass.from(value, encodingOrOffset, length);
  }
  Buffer.prototype = BufferClass.prototype;
  ObjectDefineProperty(BufferClass.prototype, "constructor", {
    value: Buffer,
    writable: true,
    configurable: true,
    enumerable: false,
  });
  Object.setPrototypeOf(Buffer, Uint8Array);
  for (const name of Object.getOwnPropertyNames(BufferClass)) {
    if (name !== "length" && name !== "name" && name !== "prototype") Buffer[name] = BufferClass[name];
  }
  Buffer.poolSize = 8192;
  // Errors as Node's core modules make them: a message and a `code`.
  function nodeError(ErrorClass, code, message) {
    const error = new ErrorClass(message);
    error.code = code;
    return error;
  }
  // A wrong argument as Node's messages show it.
  const received = (value) =>
    typeof value === "string" ? `type string ('${value}')` : `type ${typeof value} (${String(value)})`;
  // Large numbers as Node's range errors write them: 4_294_967_296.
  function separated(text) {
    return text.replace(/\B(?=(\d{3})+(?!\d))/g, "_");
  }
  // The fixed-size readers and writers (readUInt32BE, writeDoubleLE, ...), through a DataView,
  // with Node's range errors.
  function checkOffset(buffer, offset, size) {
    if (offset === undefined) offset = 0;
    if (typeof offset !== "number") {
      throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "offset" argument must be of type number. Received ${received(offset)}`);
    }
    if (!Number.isInteger(offset) || offset < 0 || offset + size > buffer.length) {
      if (buffer.length - size < 0) {
        throw nodeError(RangeError, "ERR_BUFFER_OUT_OF_BOUNDS", "Attempt to access memory outside buffer bounds");
      }
      const range = Number.isInteger(offset) ? `>= 0 and <= ${buffer.length - size}` : "an integer";
      throw nodeError(RangeError, "ERR_OUT_OF_RANGE", `The value of "offset" is out of range. It must be ${range}. Received ${offset}`);
    }
    return offset;
  }
  function checkValue(value, min, max, size) {
    if (value > max || value < min) {
      const n = typeof min === "bigint" ? "n" : "";
      const bits = size * 8;
      const range = size > 4
        ? min === 0 || min === 0n
          ? `>= 0${n} and < 2${n} ** ${bits}${n}`
          : `>= -(2${n} ** ${bits - 1}${n}) and < 2${n} ** ${bits - 1}${n}`
        : `>= ${min}${n} and <= ${max}${n}`;
      let text = String(value);
      if (n) text = (value > 2n ** 32n || value < -(2n ** 32n) ? separated(text) : text) + "n";
      else if (Number.isInteger(value) && Math.abs(value) > 2 ** 32) text = separated(text);
      throw nodeError(RangeError, "ERR_OUT_OF_RANGE", `The value of "value" is out of range. It must be ${range}. Received ${text}`);
    }
  }
  const viewOf = (buffer) => new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const FIXED = [
    ["UInt8", 1, "getUint8", "setUint8", 0, 0xff],
    ["Int8", 1, "getInt8", "setInt8", -0x80, 0x7f],
    ["UInt16", 2, "getUint16", "setUint16", 0, 0xffff],
    ["Int16", 2, "getInt16", "setInt16", -0x8000, 0x7fff],
    ["UInt32", 4, "getUint32", "setUint32", 0, 0xffffffff],
    ["Int32", 4, "getInt32", "setInt32", -0x80000000, 0x7fffffff],
    ["Float", 4, "getFloat32", "setFloat32"],
    ["Double", 8, "getFloat64", "setFloat64"],
    ["BigUInt64", 8, "getBigUint64", "setBigUint64", 0n, 0xffffffffffffffffn],
    ["BigInt64", 8, "getBigInt64", "setBigInt64", -0x8000000000000000n, 0x7fffffffffffffffn],
  ];
  for (const [name, size, get, set, min, max] of FIXED) {
    for (const endian of size === 1 ? [""] : ["LE", "BE"]) {
      const little = endian === "LE";
      const read = function (offset) {
        offset = checkOffset(this, offset, size);
        return viewOf(this)[get](offset, little);
      };
      const write = function (value, offset) {
        offset = checkOffset(this, offset, size);
        if (min !== undefined) {
          checkValue(value, min, max, size);
          // Node's message, from its own BigInt arithmetic on the value.
          if (typeof min === "bigint" && typeof value !== "bigint") {
            throw new TypeError("Cannot mix BigInt and other types, use explicit conversions");
          }
        }
        viewOf(this)[set](offset, typeof min === "bigint" ? value : +value, little);
        return offset + size;
      };
      for (const spelling of new Set([name, name.replace("UInt", "Uint")])) {
        BufferClass.prototype[`read${spelling}${endian}`] = read;
        BufferClass.prototype[`write${spelling}${endian}`] = write;
      }
    }
  }
  // The variable-size ones (1 to 6 bytes).
  for (const signed of [false, true]) {
    for (const endian of ["LE", "BE"]) {
      const read = function (offset, byteLength) {
        offset = checkOffset(this, offset, byteLength);
        let value = 0;
        for (let i = 0; i < byteLength; i++) {
          const byte = this[offset + (endian === "LE" ? byteLength - 1 - i : i)];
          value = value * 256 + byte;
        }
        if (signed && value >= 2 ** (byteLength * 8 - 1)) value -= 2 ** (byteLength * 8);
        return value;
      };
      const write = function (value, offset, byteLength) {
        offset = checkOffset(this, offset, byteLength);
        const bits = byteLength * 8;
        if (signed) checkValue(value, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, byteLength);
        else checkValue(value, 0, 2 ** bits - 1, byteLength);
        let rest = value < 0 ? value + 2 ** bits : value;
        for (let i = 0; i < byteLength; i++) {
          this[offset + (endian === "LE" ? i : byteLength - 1 - i)] = rest % 256;
          rest = Math.floor(rest / 256);
        }
        return offset + byteLength;
      };
      const name = signed ? "Int" : "UInt";
      for (const spelling of new Set([name, name.replace("UInt", "Uint")])) {
        BufferClass.prototype[`read${spelling}${endian}`] = read;
        BufferClass.prototype[`write${spelling}${endian}`] = write;
      }
    }
  }
  function toBuffer(bytes) {
    return new BufferClass(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  function bytesOf(data, encoding) {
    if (typeof data === "string") return encodeString(data, encoding);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    throw new TypeError("The \"data\" argument must be a string, Buffer, TypedArray or DataView");
  }

  class TextEncoder {
    get encoding() {
      return "utf-8";
    }
    encode(text = "") {
      return encodeUtf8(String(text));
    }
    encodeInto(text, target) {
      const bytes = encodeUtf8(String(text));
      const written = Math.min(bytes.length, target.length);
      target.set(bytes.subarray(0, written));
      return { read: text.length, written };
    }
  }
  class TextDecoder {
    #encoding;
    constructor(label = "utf-8") {
      const e = String(label).toLowerCase();
      if (e !== "utf-8" && e !== "utf8" && e !== "unicode-1-1-utf-8") {
        throw new RangeError(`The "${label}" encoding is not supported`);
      }
      this.#encoding = "utf-8";
    }
    get encoding() {
      return this.#encoding;
    }
    decode(input = new Uint8Array()) {
      return decodeUtf8(bytesOf(input));
    }
  }

  function btoa(data) {
    const text = String(data);
    for (let i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) > 255) throw new Error("Invalid character: btoa takes Latin-1 text");
    }
    return ops.op_edgehook_base64_encode(latin1Bytes(text), false);
  }
  function atob(data) {
    const text = String(data).replace(/[\t\n\f\r ]/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) {
      throw new Error("Invalid character: atob takes base64 text");
    }
    return latin1String(ops.op_edgehook_base64_decode(text));
  }

  // ---- URL and URLSearchParams -----------------------------------------------------------
  function formDecode(text) {
    try {
      return decodeURIComponent(text.replace(/\+/g, " "));
    } catch {
      return text.replace(/\+/g, " ");
    }
  }
  function formEncode(text) {
    return encodeURIComponent(text).replace(/%20/g, "+").replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  }
  class URLSearchParams {
    #list = [];
    #url = null;
    constructor(init = "") {
      if (typeof init === "string") {
        this.#parse(init);
      } else if (init instanceof URLSearchParams) {
        this.#list = init.#list.map(([k, v]) => [k, v]);
      } else if (init && typeof init === "object") {
        if (typeof init[Symbol.iterator] === "function") {
          for (const pair of init) {
            const [k, v] = [...pair];
            this.#list.push([String(k), String(v)]);
          }
        } else {
          for (const key of Object.keys(init)) this.#list.push([key, String(init[key])]);
        }
      }
    }
    #parse(text) {
      this.#list = [];
      const query = text.startsWith("?") ? text.slice(1) : text;
      for (const part of query.split("&")) {
        if (part === "") continue;
        const eq = part.indexOf("=");
        const name = eq === -1 ? part : part.slice(0, eq);
        const value = eq === -1 ? "" : part.slice(eq + 1);
        this.#list.push([formDecode(name), formDecode(value)]);
      }
    }
    static _attach(params, url) {
      params.#url = url;
    }
    static _reparse(params, text) {
      params.#parse(text);
    }
    #update() {
      if (this.#url) this.#url._setSearchFromParams(this.toString());
    }
    get size() {
      return this.#list.length;
    }
    append(name, value) {
      this.#list.push([String(name), String(value)]);
      this.#update();
    }
    delete(name, value) {
      this.#list = this.#list.filter(([k, v]) => !(k === String(name) && (value === undefined || v === String(value))));
      this.#update();
    }
    get(name) {
      const found = this.#list.find(([k]) => k === String(name));
      return found ? found[1] : null;
    }
    getAll(name) {
      return this.#list.filter(([k]) => k === String(name)).map(([, v]) => v);
    }
    has(name, value) {
      return this.#list.some(([k, v]) => k === String(name) && (value === undefined || v === String(value)));
    }
    set(name, value) {
      const key = String(name);
      const index = this.#list.findIndex(([k]) => k === key);
      if (index === -1) {
        this.#list.push([key, String(value)]);
      } else {
        this.#list[index][1] = String(value);
        this.#list = this.#list.filter(([k], i) => k !== key || i === index);
      }
      this.#update();
    }
    sort() {
      this.#list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      this.#update();
    }
    forEach(callback, thisArg) {
      for (const [k, v] of this.#list) callback.call(thisArg, v, k, this);
    }
    *entries() {
      for (const [k, v] of this.#list) yield [k, v];
    }
    *keys() {
      for (const [k] of this.#list) yield k;
    }
    *values() {
      for (const [, v] of this.#list) yield v;
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    toString() {
      return this.#list.map(([k, v]) => `${formEncode(k)}=${formEncode(v)}`).join("&");
    }
  }

  const URL_PARTS = ["href", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash", "origin"];
  class URL {
    #parts;
    #searchParams;
    constructor(url, base) {
      const parts = ops.op_edgehook_url_parse(String(url), base === undefined ? "" : String(base), base !== undefined);
      if (parts === null) throw new TypeError(`Invalid URL: ${url}`);
      this.#parts = parts;
      this.#searchParams = new URLSearchParams(parts[8]);
      URLSearchParams._attach(this.#searchParams, this);
    }
    static canParse(url, base) {
      return ops.op_edgehook_url_parse(String(url), base === undefined ? "" : String(base), base !== undefined) !== null;
    }
    #set(index, value) {
      const parts = this.#parts.slice();
      parts[index] = value;
      this.#reparse(parts);
    }
    #reparse(parts) {
      const [, protocol, username, password, , hostname, port, pathname, search, hash] = parts;
      const auth = username || password ? `${username}${password ? ":" + password : ""}@` : "";
      const href = `${protocol}//${auth}${hostname}${port ? ":" + port : ""}${pathname}${search}${hash}`;
      const reparsed = ops.op_edgehook_url_parse(href, "", false);
      if (reparsed !== null) {
        this.#parts = reparsed;
        URLSearchParams._reparse(this.#searchParams, reparsed[8]);
      }
    }
    _setSearchFromParams(text) {
      const parts = this.#parts.slice();
      parts[8] = text ? "?" + text : "";
      this.#reparse(parts);
    }
    get href() { return this.#parts[0]; }
    set href(value) {
      const parts = ops.op_edgehook_url_parse(String(value), "", false);
      if (parts === null) throw new TypeError(`Invalid URL: ${value}`);
      this.#parts = parts;
      URLSearchParams._reparse(this.#searchParams, parts[8]);
    }
    get protocol() { return this.#parts[1]; }
    set protocol(v) { const p = String(v); this.#set(1, p.endsWith(":") ? p : p + ":"); }
    get username() { return this.#parts[2]; }
    set username(v) { this.#set(2, encodeURIComponent(String(v))); }
    get password() { return this.#parts[3]; }
    set password(v) { this.#set(3, encodeURIComponent(String(v))); }
    get host() { return this.#parts[4]; }
    set host(v) {
      const [hostname, port = ""] = String(v).split(":");
      const parts = this.#parts.slice();
      parts[5] = hostname;
      parts[6] = port;
      this.#reparse(parts);
    }
    get hostname() { return this.#parts[5]; }
    set hostname(v) { this.#set(5, String(v)); }
    get port() { return this.#parts[6]; }
    set port(v) { this.#set(6, String(v)); }
    get pathname() { return this.#parts[7]; }
    set pathname(v) { const p = String(v); this.#set(7, p.startsWith("/") ? p : "/" + p); }
    get search() { return this.#parts[8]; }
    set search(v) { const s = String(v); this.#set(8, s === "" || s.startsWith("?") ? s : "?" + s); }
    get hash() { return this.#parts[9]; }
    set hash(v) { const h = String(v); this.#set(9, h === "" || h.startsWith("#") ? h : "#" + h); }
    get origin() { return this.#parts[10]; }
    get searchParams() { return this.#searchParams; }
    toString() { return this.href; }
    toJSON() { return this.href; }
  }

  // ---- Node built-in modules -------------------------------------------------------------
  const querystring = {
    escape: (text) => encodeURIComponent(String(text)),
    unescape: (text) => {
      try {
        return decodeURIComponent(String(text));
      } catch {
        return String(text);
      }
    },
    parse(text, sep = "&", eq = "=", options = {}) {
      const out = Object.create(null);
      if (typeof text !== "string" || text.length === 0) return out;
      const max = options.maxKeys ?? 1000;
      const decode = options.decodeURIComponent ?? querystring.unescape;
      let parts = text.split(sep);
      if (max > 0) parts = parts.slice(0, max);
      for (const part of parts) {
        if (part === "") continue;
        const index = part.indexOf(eq);
        const rawKey = index >= 0 ? part.slice(0, index) : part;
        const rawValue = index >= 0 ? part.slice(index + eq.length) : "";
        const key = decode(rawKey.replace(/\+/g, " "));
        const value = decode(rawValue.replace(/\+/g, " "));
        if (!(key in out)) out[key] = value;
        else if (ArrayIsArray(out[key])) out[key].push(value);
        else out[key] = [out[key], value];
      }
      return out;
    },
    stringify(object, sep = "&", eq = "=", options = {}) {
      if (object === null || typeof object !== "object") return "";
      const encode = options.encodeURIComponent ?? querystring.escape;
      const scalar = (v) => (typeof v === "string" ? v : typeof v === "number" && Number.isFinite(v) ? String(v) : typeof v === "bigint" || typeof v === "boolean" ? String(v) : "");
      const out = [];
      for (const key of Object.keys(object)) {
        const value = object[key];
        const k = encode(scalar(key)) + eq;
        if (ArrayIsArray(value)) for (const item of value) out.push(k + encode(scalar(item)));
        else out.push(k + encode(scalar(value)));
      }
      return out.join(sep);
    },
  };
  querystring.decode = querystring.parse;
  querystring.encode = querystring.stringify;

  const HASHES = new Set(["md5", "sha1", "sha256", "sha384", "sha512"]);
  function hashName(algorithm) {
    const name = String(algorithm).toLowerCase().replace(/^rsa-/, "").replace("-", "");
    if (!HASHES.has(name)) throw new Error(`Digest method not supported: ${algorithm}`);
    return name;
  }
  function output(bytes, encoding) {
    return encoding === undefined ? toBuffer(bytes) : decodeBytes(bytes, encoding);
  }
  class Hash {
    #algorithm;
    #chunks = [];
    #done = false;
    constructor(algorithm) {
      this.#algorithm = hashName(algorithm);
    }
    update(data, encoding) {
      if (this.#done) throw new Error("Digest already called");
      this.#chunks.push(bytesOf(data, encoding).slice());
      return this;
    }
    digest(encoding) {
      if (this.#done) throw new Error("Digest already called");
      this.#done = true;
      return output(ops.op_edgehook_digest(this.#algorithm, Buffer.concat(this.#chunks)), encoding);
    }
    copy() {
      const copy = new Hash(this.#algorithm);
      for (const chunk of this.#chunks) copy.update(chunk);
      return copy;
    }
  }
  class Hmac {
    #algorithm;
    #key;
    #chunks = [];
    #done = false;
    constructor(algorithm, key) {
      this.#algorithm = hashName(algorithm);
      this.#key = bytesOf(key).slice();
    }
    update(data, encoding) {
      if (this.#done) throw new Error("Digest already called");
      this.#chunks.push(bytesOf(data, encoding).slice());
      return this;
    }
    digest(encoding) {
      if (this.#done) throw new Error("Digest already called");
      this.#done = true;
      return output(ops.op_edgehook_hmac(this.#algorithm, this.#key, Buffer.concat(this.#chunks)), encoding);
    }
  }
  function randomBytes(size, callback) {
    const n = Number(size);
    if (!Number.isInteger(n) || n < 0 || n > 65536 * 1024) throw new RangeError(`The "size" argument is out of range: ${size}`);
    const bytes = toBuffer(ops.op_edgehook_random_bytes(n));
    if (typeof callback === "function") {
      setTimeout(() => callback(null, bytes), 0);
      return undefined;
    }
    return bytes;
  }
  // Node's randomInt: an integer in [min, max), uniformly (rejection sampling over 48 bits).
  function randomInt(min, max, callback) {
    if (max === undefined || typeof max === "function") {
      callback = max;
      max = min;
      min = 0;
    }
    for (const [name, value] of [["min", min], ["max", max]]) {
      if (!Number.isSafeInteger(value)) {
        throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "${name}" argument must be a safe integer. Received ${received(value)}`);
      }
    }
    if (max <= min) {
      const message = `The value of "max" is out of range. It must be greater than the value of "min" (${min}). Received ${max}`;
      throw nodeError(RangeError, "ERR_OUT_OF_RANGE", message);
    }
    const range = max - min;
    if (range > 2 ** 48 - 1) {
      const message = `The value of "max - min" is out of range. It must be <= 281474976710655. Received ${separated(String(range))}`;
      throw nodeError(RangeError, "ERR_OUT_OF_RANGE", message);
    }
    const limit = 2 ** 48 - (2 ** 48 % range);
    let value;
    do {
      const bytes = ops.op_edgehook_random_bytes(6);
      value = bytes.reduce((n, byte) => n * 256 + byte, 0);
    } while (value >= limit);
    const result = min + (value % range);
    if (typeof callback === "function") {
      setTimeout(() => callback(null, result), 0);
      return undefined;
    }
    return result;
  }
  function timingSafeEqual(a, b) {
    const x = bytesOf(a);
    const y = bytesOf(b);
    if (x.length !== y.length) throw new RangeError("Input buffers must have the same byte length");
    let diff = 0;
    for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
    return diff === 0;
  }
  function getRandomValues(array) {
    if (!ArrayBuffer.isView(array)) throw new TypeError("getRandomValues takes a typed array");
    if (array.byteLength > 65536) throw new RangeError("getRandomValues takes at most 65536 bytes");
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(ops.op_edgehook_random_bytes(array.byteLength));
    return array;
  }
  // ---- keys and signatures (src/js/keys.rs: ring) ------------------------------------------
  const KEY_MATERIAL = Symbol("key material");
  const KEY_DER = Symbol("key DER");
  const KEY_PUBLIC_DER = Symbol("public key DER");
  const b64 = (bytes) => Buffer.from(bytes).toString("base64");
  function keyResult(result) {
    if (result.code !== undefined) {
      const ErrorClass = { ERR_OSSL_UNSUPPORTED: Error, ERR_EDGEHOOK_UNAVAILABLE: Error, ERR_CRYPTO_INVALID_SCRYPT_PARAMS: RangeError }[result.code] ?? TypeError;
      throw nodeError(ErrorClass, result.code, result.message);
    }
    return result;
  }
  class KeyObject {
    #type;
    #der;
    #publicDer;
    #kind;
    #details;
    #secret;
    constructor(type, material) {
      if (material?.[KEY_MATERIAL] !== true) throw new TypeError("Illegal constructor");
      this.#type = type;
      ({ der: this.#der, publicDer: this.#publicDer, kind: this.#kind, details: this.#details, secret: this.#secret } = material);
    }
    get type() {
      return this.#type;
    }
    get asymmetricKeyType() {
      return this.#kind;
    }
    get asymmetricKeyDetails() {
      if (this.#details === undefined) return undefined;
      const details = { ...this.#details };
      if (details.publicExponent !== undefined) details.publicExponent = BigInt(details.publicExponent);
      return details;
    }
    get symmetricKeySize() {
      return this.#secret?.length;
    }
    export(options = {}) {
      if (this.#type === "secret") {
        if (options.format === "jwk") return { kty: "oct", k: this.#secret.toString("base64url") };
        return Buffer.from(this.#secret);
      }
      const format = options.format ?? "pem";
      if (format !== "jwk") {
        const allowed = this.#type === "public" ? ["spki"] : ["pkcs8"];
        if (options.type === undefined) {
          throw nodeError(TypeError, "ERR_INVALID_ARG_VALUE", `The property 'options.type' is invalid. Received undefined`);
        }
        if (!allowed.includes(options.type)) {
          throw nodeError(Error, "ERR_EDGEHOOK_UNAVAILABLE", `exporting ${this.#type} keys as ${options.type} is not supported by edgehook functions (use ${allowed[0]})`);
        }
        if (options.cipher !== undefined) throw nodeError(Error, "ERR_EDGEHOOK_UNAVAILABLE", "encrypted key export is not supported by edgehook functions");
      }
      const result = keyResult(ops.op_edgehook_key_export(this.#der, this.#type === "private", format));
      if (result.pem !== undefined) return result.pem;
      if (result.der !== undefined) return Buffer.from(result.der, "base64");
      // Node's member order.
      const order = { RSA: ["kty", "n", "e"], EC: ["kty", "x", "y", "crv"], OKP: ["crv", "x", "kty"] }[result.jwk.kty] ?? [];
      return Object.fromEntries(order.map((name) => [name, result.jwk[name]]));
    }
    equals(other) {
      if (!(other instanceof KeyObject)) {
        throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "otherKeyObject" argument must be an instance of KeyObject. Received ${received(other)}`);
      }
      return other.type === this.#type && other[KEY_DER]() === this[KEY_DER]();
    }
    [KEY_DER]() {
      return this.#type === "secret" ? this.#secret.toString("base64") : this.#der;
    }
    [KEY_PUBLIC_DER]() {
      return this.#type === "private" ? this.#publicDer : this.#der;
    }
    get [Symbol.toStringTag]() {
      return "KeyObject";
    }
  }
  // Reads a key argument as Node does: a KeyObject, PEM text (string or Buffer), or
  // `{ key, format: 'pem' | 'der' | 'jwk', type }`. Returns the KeyObject.
  function toKeyObject(key, wanted) {
    if (key instanceof KeyObject) {
      if (wanted === "private" && key.type !== "private") {
        throw nodeError(TypeError, "ERR_CRYPTO_INVALID_KEY_OBJECT_TYPE", `Invalid key object type ${key.type}, expected private.`);
      }
      if (wanted === "public" && key.type === "private") return publicOf(key);
      return key;
    }
    const material = key !== null && typeof key === "object" && !ArrayBuffer.isView(key) && !(key instanceof ArrayBuffer) ? key : { key };
    if (material.key instanceof KeyObject) return toKeyObject(material.key, wanted);
    if (material.passphrase !== undefined) {
      throw nodeError(Error, "ERR_EDGEHOOK_UNAVAILABLE", "encrypted private keys are not supported by edgehook functions");
    }
    let input;
    if (material.format === "jwk") {
      if (material.key === null || typeof material.key !== "object") {
        throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "key.key" property must be of type object. Received ${received(material.key)}`);
      }
      input = { jwk: material.key };
    } else if (material.format === "der") {
      input = { der: b64(bytesOf(material.key)), type: material.type ?? "spki" };
    } else if (typeof material.key === "string" || ArrayBuffer.isView(material.key)) {
      input = { pem: typeof material.key === "string" ? material.key : Buffer.from(material.key).toString() };
    } else {
      throw nodeError(
        TypeError,
        "ERR_INVALID_ARG_TYPE",
        `The "key" argument must be of type string or an instance of ArrayBuffer, Buffer, TypedArray, DataView, KeyObject, or CryptoKey. Received ${received(material.key)}`,
      );
    }
    const result = keyResult(ops.op_edgehook_key_import(input, wanted === "private"));
    const object = new KeyObject(result.type, { [KEY_MATERIAL]: true, ...result });
    if (wanted === "private" && object.type !== "private") {
      throw nodeError(TypeError, "ERR_CRYPTO_INVALID_KEY_OBJECT_TYPE", `Invalid key object type public, expected private.`);
    }
    return wanted === "public" && object.type === "private" ? publicOf(object) : object;
  }
  function publicOf(privateKey) {
    const result = keyResult(ops.op_edgehook_key_import({ der: privateKey[KEY_PUBLIC_DER](), type: "spki" }, false));
    return new KeyObject("public", { [KEY_MATERIAL]: true, ...result });
  }
  function signatureOptions(key) {
    const options = key !== null && typeof key === "object" && !(key instanceof KeyObject) && !ArrayBuffer.isView(key) ? key : {};
    // PSS salts are as long as the digest, whatever `saltLength` says (ring's only form; JWT's
    // PS256 uses it too).
    return { pss: options.padding === 6, p1363: options.dsaEncoding === "ieee-p1363" };
  }
  function signWith(algorithm, data, key) {
    const { pss, p1363 } = signatureOptions(key);
    const keyObject = toKeyObject(key, "private");
    const result = keyResult(ops.op_edgehook_sign(keyObject[KEY_DER](), algorithm ?? "", data, pss, p1363));
    return Buffer.from(result.signature, "base64");
  }
  function verifyWith(algorithm, data, key, signature) {
    const { pss, p1363 } = signatureOptions(key);
    const keyObject = toKeyObject(key, "public");
    return keyResult(ops.op_edgehook_verify(keyObject[KEY_DER](), algorithm ?? "", data, signature, pss, p1363)).valid;
  }
  class Sign {
    #algorithm;
    #chunks = [];
    constructor(algorithm) {
      this.#algorithm = String(algorithm);
    }
    update(data, encoding) {
      this.#chunks.push(bytesOf(data, encoding).slice());
      return this;
    }
    sign(key, encoding) {
      return output(signWith(this.#algorithm, Buffer.concat(this.#chunks), key), encoding);
    }
  }
  class Verify {
    #algorithm;
    #chunks = [];
    constructor(algorithm) {
      this.#algorithm = String(algorithm);
    }
    update(data, encoding) {
      this.#chunks.push(bytesOf(data, encoding).slice());
      return this;
    }
    verify(key, signature, encoding) {
      return verifyWith(this.#algorithm, Buffer.concat(this.#chunks), key, bytesOf(signature, encoding));
    }
  }
  // crypto.sign / crypto.verify: the one-shot forms (with a callback too).
  function oneShot(run) {
    return (...args) => {
      const callback = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
      if (!callback) return run(...args);
      let result, failure = null;
      try {
        result = run(...args);
      } catch (error) {
        failure = error;
      }
      setImmediate(() => (failure ? callback(failure) : callback(null, result)));
      return undefined;
    };
  }
  function derive(method, password, salt, options) {
    const result = keyResult(ops.op_edgehook_derive(method, bytesOf(password), bytesOf(salt), options));
    return Buffer.from(result.key, "base64");
  }
  function pbkdf2Sync(password, salt, iterations, keylen, digest) {
    if (typeof digest !== "string") {
      throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "digest" argument must be of type string. Received ${received(digest)}`);
    }
    return derive("pbkdf2", password, salt, { iterations, keylen, digest });
  }
  function scryptSync(password, salt, keylen, options = {}) {
    const cost = options.N ?? options.cost ?? 16384;
    const r = options.r ?? options.blockSize ?? 8;
    const p = options.p ?? options.parallelization ?? 1;
    return derive("scrypt", password, salt, { keylen, N: cost, r, p, maxmem: options.maxmem ?? 32 << 20 });
  }
  const withCallback = (run, arity) =>
    function (...args) {
      const callback = args[arity];
      if (typeof callback !== "function") {
        throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "callback" argument must be of type function. Received ${received(callback)}`);
      }
      let result, failure = null;
      try {
        result = run(...args.slice(0, arity));
      } catch (error) {
        failure = error;
      }
      setImmediate(() => (failure ? callback(failure) : callback(null, result)));
    };

  const crypto = {
    createHash: (algorithm) => new Hash(algorithm),
    createHmac: (algorithm, key) => new Hmac(algorithm, key instanceof KeyObject && key.type === "secret" ? key.export() : key),
    createSign: (algorithm) => new Sign(algorithm),
    createVerify: (algorithm) => new Verify(algorithm),
    sign: oneShot((algorithm, data, key) => signWith(algorithm, bytesOf(data), key)),
    verify: oneShot((algorithm, data, key, signature) => verifyWith(algorithm, bytesOf(data), key, bytesOf(signature))),
    createPublicKey: (key) => toKeyObject(key, "public"),
    createPrivateKey: (key) => toKeyObject(key, "private"),
    createSecretKey: (key, encoding) => new KeyObject("secret", { [KEY_MATERIAL]: true, secret: Buffer.from(bytesOf(key, encoding)) }),
    KeyObject,
    Sign,
    Verify,
    pbkdf2Sync,
    pbkdf2: withCallback(pbkdf2Sync, 5),
    scryptSync,
    scrypt: (password, salt, keylen, options, callback) =>
      typeof options === "function" ? withCallback(scryptSync, 3)(password, salt, keylen, options) : withCallback(scryptSync, 4)(password, salt, keylen, options, callback),
    constants: { RSA_PKCS1_PADDING: 1, RSA_NO_PADDING: 3, RSA_PKCS1_OAEP_PADDING: 4, RSA_PKCS1_PSS_PADDING: 6, RSA_PSS_SALTLEN_DIGEST: -1, RSA_PSS_SALTLEN_MAX_SIGN: -2, RSA_PSS_SALTLEN_AUTO: -2 },
    randomBytes,
    randomInt,
    randomUUID: () => ops.op_edgehook_random_uuid(),
    timingSafeEqual,
    getRandomValues,
    getHashes: () => [...HASHES],
  };
  if (WEB) {
    ObjectDefineProperty(crypto, "webcrypto", { get: () => globalThis.crypto, enumerable: true, configurable: true });
    ObjectDefineProperty(crypto, "subtle", { get: () => globalThis.crypto.subtle, enumerable: true, configurable: true });
  } else {
    crypto.webcrypto = { getRandomValues, randomUUID: () => ops.op_edgehook_random_uuid() };
  }

  const timersModule = {
    setTimeout,
    clearTimeout: clearTimer,
    setInterval,
    clearInterval: clearTimer,
    setImmediate,
    clearImmediate: clearTimer,
  };
  const timersPromises = {
    setTimeout: (delay, value) => new Promise((resolve) => setTimeout(resolve, delay, value)),
    setImmediate: (value) => new Promise((resolve) => setImmediate(resolve, value)),
    scheduler: {
      wait: (delay) => new Promise((resolve) => setTimeout(resolve, delay)),
      yield: () => new Promise((resolve) => setImmediate(resolve)),
    },
  };
  // The machine a function runs on, as Lambda's Linux environment describes itself: hand-written
  // because these values are the platform's (the npm package for os describes a browser).
  const os = {
    EOL: "\n",
    devNull: "/dev/null",
    platform: () => "linux",
    type: () => "Linux",
    arch: () => "x64",
    machine: () => "x86_64",
    endianness: () => "LE",
    tmpdir: () => "/tmp",
    homedir: () => "/home/sbx_user1051",
    hostname: () => "localhost",
    release: () => "5.10.0",
    version: () => "#1 SMP",
    uptime: () => Math.floor(performance.now() / 1000),
    loadavg: () => [0, 0, 0],
    totalmem: () => 128 * 1024 * 1024,
    freemem: () => 64 * 1024 * 1024,
    availableParallelism: () => 1,
    cpus: () => [],
    networkInterfaces: () => ({}),
    userInfo: () => ({ uid: 993, gid: 990, username: "sbx_user1051", homedir: "/home/sbx_user1051", shell: null }),
    constants: { signals: {}, errno: {} },
  };
  function notATerminal() {
    throw nodeError(Error, "ERR_EDGEHOOK_UNAVAILABLE", "tty streams are not available to edgehook functions: functions have no terminal");
  }
  const tty = { isatty: () => false, ReadStream: notATerminal, WriteStream: notATerminal };

  const BUILTINS = {
    querystring,
    crypto,
    buffer: { Buffer },
    timers: timersModule,
    "timers/promises": timersPromises,
    os,
    tty,
  };
  const packagedLoaded = new Map();
  // A module taken from an npm package (build.rs: its CommonJS comes from an op), compiled and
  // run in this instance once.
  function loadPackaged(name) {
    if (packagedLoaded.has(name)) return packagedLoaded.get(name);
    const source = ops.op_edgehook_packaged_module(name);
    const wrapper = indirectEval(`(function (exports, require, module) {${source}\n})`);
    const module = { exports: {} };
    // A bundle names the shared modules as its npm packages (`process/`, `util/`): the runtime's.
    const packagedRequire = (id) => require(String(id).replace(/\/$/, ""));
    wrapper.call(module.exports, module.exports, packagedRequire, module);
    packagedLoaded.set(name, module.exports);
    return module.exports;
  }
  // Node modules whose calls cannot be honoured here. Bundles keep their `require`s even on
  // paths never taken, so each loads, as an object whose every member (a function, also as a
  // class to extend) throws when called, naming the call and why.
  const NO_EGRESS = "functions make outbound requests with fetch, http or https";
  // http and https make requests in functions whose code names them or a web API (js/web.rs).
  const NOT_NAMED = "edgehook gives outbound requests to functions whose code requires 'http' or 'https' (or names fetch), and this one reached it by a computed name";
  const UNAVAILABLE = {
    http: NOT_NAMED,
    https: NOT_NAMED,
    http2: NO_EGRESS,
    net: NO_EGRESS,
    tls: NO_EGRESS,
    dgram: NO_EGRESS,
    child_process: "functions cannot start processes",
    cluster: "functions cannot start processes",
    worker_threads: "functions cannot start threads",
    vm: "functions cannot create other contexts",
    v8: "the engine is not V8",
    inspector: "functions cannot be debugged",
  };
  function unavailableModule(name) {
    const members = new Map();
    const member = (key) => {
      if (!members.has(key)) {
        members.set(key, function () {
          const message = `${name}.${key} is not available to edgehook functions: ${UNAVAILABLE[name]}`;
          throw nodeError(Error, "ERR_EDGEHOOK_UNAVAILABLE", message);
        });
      }
      return members.get(key);
    };
    return new Proxy(
      {},
      {
        // Not `then` (the module must not look like a promise) nor symbols.
        get: (_, key) => (typeof key === "string" && key !== "then" && key !== "__esModule" ? member(key) : undefined),
      },
    );
  }
  // Node 20's http.STATUS_CODES.
  const HTTP_STATUS_TEXT = {
    100: "Continue",
    101: "Switching Protocols",
    102: "Processing",
    103: "Early Hints",
    200: "OK",
    201: "Created",
    202: "Accepted",
    203: "Non-Authoritative Information",
    204: "No Content",
    205: "Reset Content",
    206: "Partial Content",
    207: "Multi-Status",
    208: "Already Reported",
    226: "IM Used",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    305: "Use Proxy",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Payload Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    417: "Expectation Failed",
    418: "I'm a Teapot",
    421: "Misdirected Request",
    422: "Unprocessable Entity",
    423: "Locked",
    424: "Failed Dependency",
    425: "Too Early",
    426: "Upgrade Required",
    428: "Precondition Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    451: "Unavailable For Legal Reasons",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
    506: "Variant Also Negotiates",
    507: "Insufficient Storage",
    508: "Loop Detected",
    509: "Bandwidth Limit Exceeded",
    510: "Not Extended",
    511: "Network Authentication Required",
  };
  // http and https without egress: what Node does when no connection can be made. Agents are
  // made as usual and a request reports its failure as an `error` event after it is made, so a
  // client library handles it as any network failure (retries, then its own error) rather than
  // crashing on a throw no Node code expects.
  // fetch with the function's egress, for http and https (the global may be replaced).
  let httpFetchMade = null;
  const httpFetch = () => (httpFetchMade ??= outboundFetch(loadWeb("ext:deno_fetch/26_fetch.js").fetch));
  // A failed fetch as the error Node's http gives, with the code client libraries look at.
  function networkError(error) {
    let detail = "";
    try {
      detail = String(error?.cause?.message ?? error?.message ?? error);
    } catch {}
    const codes = [
      [/[Cc]onnection refused/, "ECONNREFUSED"],
      [/dns error|failed to lookup|[Nn]o such host|[Nn]ame or service not known/, "ENOTFOUND"],
      [/timed out/, "ETIMEDOUT"],
      [/certificate|[Cc]ert|UnknownIssuer/, "UNABLE_TO_VERIFY_LEAF_SIGNATURE"],
      [/egress_max_response/, "ERR_EDGEHOOK_RESPONSE_TOO_LARGE"],
    ];
    const code = refusal(error)
      ? "ERR_EDGEHOOK_EGRESS_REFUSED"
      : codes.find(([pattern]) => pattern.test(detail))?.[1] ?? "ECONNRESET";
    const made = nodeError(Error, code, detail || "socket hang up");
    made.cause = error;
    return made;
  }
  function offlineHttp(name) {
    const EventEmitter = builtinModule("events");
    const egressError = (call) =>
      nodeError(Error, "ERR_EDGEHOOK_UNAVAILABLE", `${name}.${call} is not available to edgehook functions: ${UNAVAILABLE[name]}`);
    class Agent extends EventEmitter {
      constructor(options = {}) {
        super();
        this.options = { ...options };
        this.keepAlive = Boolean(options.keepAlive);
        this.maxSockets = options.maxSockets ?? Infinity;
        this.sockets = {};
        this.freeSockets = {};
        this.requests = {};
      }
      destroy() {}
    }
    const protocol = name === "https" ? "https:" : "http:";
    // Node checks a request's options as it makes it, and throws what it finds wrong.
    const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
    const validateName = (header) => {
      if (typeof header !== "string" || !header || !TOKEN.test(header)) {
        throw nodeError(TypeError, "ERR_INVALID_HTTP_TOKEN", `Header name must be a valid HTTP token ["${header}"]`);
      }
    };
    const validateValue = (header, value) => {
      if (value === undefined) {
        throw nodeError(TypeError, "ERR_HTTP_INVALID_HEADER_VALUE", `Invalid value "${value}" for header "${header}"`);
      }
      if ((Array.isArray(value) ? value : [value]).some((one) => /[^\t\x20-\x7e\x80-\xff]/.test(String(one)))) {
        throw nodeError(TypeError, "ERR_INVALID_CHAR", `Invalid character in header content ["${header}"]`);
      }
    };
    class ClientRequest extends EventEmitter {
      #headers = new Map();
      constructor(call, options = {}) {
        super();
        const wanted = options.protocol ?? protocol;
        if (wanted !== protocol) {
          throw nodeError(TypeError, "ERR_INVALID_PROTOCOL", `Protocol "${wanted}" not supported. Expected "${protocol}"`);
        }
        const method = options.method ?? "GET";
        if (typeof method !== "string" || !TOKEN.test(method)) {
          throw nodeError(TypeError, "ERR_INVALID_HTTP_TOKEN", `Method must be a valid HTTP token ["${method}"]`);
        }
        this.method = method.toUpperCase();
        this.path = options.path ?? "/";
        this.host = options.hostname ?? options.host ?? "localhost";
        this.protocol = protocol;
        if (options.headers && !Array.isArray(options.headers)) {
          for (const [header, value] of Object.entries(options.headers)) this.setHeader(header, value);
        }
        this.destroyed = false;
        this.writable = true;
        this.finished = false;
        this.aborted = false;
        this.headersSent = false;
        this.reusedSocket = false;
        if (!WEB) {
          process.nextTick(() => {
            if (this.destroyed) return;
            this.destroyed = true;
            this.emit("error", egressError(call));
            this.emit("close");
          });
          return;
        }
        this.#options = options;
        this.#port = options.port ? Number(options.port) : options.defaultPort ?? (protocol === "https:" ? 443 : 80);
        if (typeof options.auth === "string" && !this.hasHeader("authorization")) {
          this.setHeader("Authorization", "Basic " + Buffer.from(options.auth).toString("base64"));
        }
        this.socket = this.connection = fakeSocket(this, protocol === "https:");
        if (options.timeout !== undefined) this.setTimeout(options.timeout);
        if (options.signal) {
          const abort = () => this.destroy(nodeError(Error, "ABORT_ERR", "The operation was aborted"));
          if (options.signal.aborted) process.nextTick(abort);
          else options.signal.addEventListener("abort", abort, { once: true });
        }
        process.nextTick(() => {
          if (!this.destroyed) this.emit("socket", this.socket);
        });
      }
      #options;
      #port;
      #chunks = [];
      #controller = null;
      #timer = null;
      #timeout = 0;
      #response = null;
      // The request goes out when it is ended, through fetch (with the function's egress).
      #send() {
        const host = this.host.includes(":") && !this.host.startsWith("[") ? `[${this.host}]` : this.host;
        const url = `${protocol}//${host}:${this.#port}${this.path.startsWith("/") ? "" : "/"}${this.path}`;
        const headers = [];
        for (const [header, value] of this.#headers) {
          // fetch writes these itself.
          if (["host", "connection", "keep-alive", "transfer-encoding", "content-length", "expect"].includes(header)) continue;
          for (const one of Array.isArray(value) ? value : [value]) headers.push([header, String(one)]);
        }
        // Node sends none, and fetch would decode what the function expects to decode.
        if (!this.#headers.has("accept-encoding")) headers.push(["accept-encoding", "identity"]);
        const bodyless = this.method === "GET" || this.method === "HEAD";
        const body = bodyless || this.#chunks.length === 0 ? undefined : Buffer.concat(this.#chunks);
        this.#controller = new (loadWeb("ext:deno_web/03_abort_signal.js").AbortController)();
        this.headersSent = true;
        this.#restartTimer();
        httpFetch()(url, { method: this.method, headers, body, redirect: "manual", signal: this.#controller.signal }).then(
          (response) => this.#respond(response),
          (error) => {
            if (this.destroyed) return;
            this.#clearTimer();
            this.destroyed = true;
            this.emit("error", networkError(error));
            this.emit("close");
          },
        );
      }
      #respond(response) {
        if (this.destroyed) return;
        const { Readable } = builtinModule("stream");
        const message = new Readable({ read() {} });
        this.#response = message;
        message.statusCode = response.status;
        message.statusMessage = response.statusText || HTTP_STATUS_TEXT[response.status] || "";
        message.httpVersion = "1.1";
        message.httpVersionMajor = 1;
        message.httpVersionMinor = 1;
        message.headers = {};
        message.rawHeaders = [];
        // fetch decodes gzip and brotli bodies whatever was asked: the headers then describe
        // the body as it arrives here (no content-encoding), so a client does not decode it again.
        const { toInnerResponse, wireHeaderList } = loadWeb("ext:deno_fetch/23_response.js");
        for (const [raw, value] of wireHeaderList(toInnerResponse(response))) {
          const header = String(raw).toLowerCase();
          message.rawHeaders.push(raw, value);
          if (header === "set-cookie") (message.headers[header] ??= []).push(value);
          else message.headers[header] = header in message.headers ? `${message.headers[header]}, ${value}` : value;
        }
        message.trailers = {};
        message.rawTrailers = [];
        message.url = "";
        message.method = null;
        message.complete = false;
        message.aborted = false;
        message.req = this;
        message.socket = message.connection = this.socket;
        message.setTimeout = (ms, callback) => {
          this.setTimeout(ms, callback);
          return message;
        };
        this.res = message;
        this.emit("response", message);
        const reader = response.body?.getReader();
        const pump = () => {
          if (reader === undefined) return finish();
          reader.read().then(
            ({ done, value }) => {
              if (done) return finish();
              this.#restartTimer();
              message.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
              pump();
            },
            (error) => {
              this.#clearTimer();
              message.aborted = true;
              message.destroy(networkError(error));
            },
          );
        };
        const finish = () => {
          this.#clearTimer();
          message.complete = true;
          message.push(null);
          message.once("end", () => {
            this.destroyed = true;
            this.emit("close");
          });
        };
        pump();
      }
      #restartTimer() {
        this.#clearTimer();
        if (this.#timeout > 0) this.#timer = setTimeout(() => this.emit("timeout"), this.#timeout);
      }
      #clearTimer() {
        if (this.#timer !== null) clearTimeout(this.#timer);
        this.#timer = null;
      }
      setHeader(header, value) {
        validateName(header);
        validateValue(header, value);
        this.#headers.set(header.toLowerCase(), value);
        return this;
      }
      getHeader(header) {
        return this.#headers.get(String(header).toLowerCase());
      }
      getHeaders() {
        return Object.fromEntries(this.#headers);
      }
      hasHeader(header) {
        return this.#headers.has(String(header).toLowerCase());
      }
      removeHeader(header) {
        this.#headers.delete(String(header).toLowerCase());
      }
      write(chunk, encoding, callback) {
        const done = typeof encoding === "function" ? encoding : callback;
        if (WEB && chunk !== undefined && chunk !== null && !this.finished) {
          this.#chunks.push(typeof chunk === "string" ? Buffer.from(chunk, typeof encoding === "string" ? encoding : "utf8") : Buffer.from(chunk));
        }
        if (typeof done === "function") process.nextTick(done);
        return true;
      }
      end(chunk, encoding, callback) {
        const done = [chunk, encoding, callback].find((argument) => typeof argument === "function");
        if (WEB && !this.finished) {
          if (typeof chunk !== "function" && chunk !== undefined && chunk !== null) this.write(chunk, typeof encoding === "string" ? encoding : undefined);
          this.finished = true;
          this.writable = false;
          if (!this.destroyed) {
            this.#send();
            process.nextTick(() => this.emit("finish"));
          }
        }
        if (done) process.nextTick(done);
        return this;
      }
      flushHeaders() {}
      setTimeout(ms, callback) {
        if (typeof callback === "function") this.once("timeout", callback);
        if (WEB) {
          this.#timeout = Number(ms) || 0;
          if (this.headersSent && !this.#response?.complete) this.#restartTimer();
        }
        return this;
      }
      setNoDelay() {}
      setSocketKeepAlive() {}
      abort() {
        if (!this.aborted) {
          this.aborted = true;
          process.nextTick(() => this.emit("abort"));
        }
        this.destroy();
      }
      destroy(error) {
        if (this.destroyed) return this;
        this.destroyed = true;
        if (WEB) {
          this.#clearTimer();
          try {
            this.#controller?.abort();
          } catch {}
          if (this.#response !== null && !this.#response.complete) {
            this.#response.aborted = true;
            this.#response.destroy(error ?? nodeError(Error, "ECONNRESET", "aborted"));
          }
        }
        process.nextTick(() => {
          if (error) this.emit("error", error);
          this.emit("close");
        });
        return this;
      }
    }
    // What a request's `socket` event gives: the calls client libraries make on a socket.
    function fakeSocket(request, encrypted) {
      const socket = new EventEmitter();
      Object.assign(socket, {
        connecting: false,
        destroyed: false,
        readable: true,
        writable: true,
        encrypted,
        authorized: encrypted,
        remoteAddress: undefined,
        remotePort: undefined,
        setTimeout: (ms, callback) => {
          request.setTimeout(ms, callback);
          return socket;
        },
        setNoDelay: () => socket,
        setKeepAlive: () => socket,
        ref: () => socket,
        unref: () => socket,
        address: () => ({}),
        destroy: (error) => {
          request.destroy(error);
          return socket;
        },
        end: () => socket,
      });
      return socket;
    }
    // request(url[, options][, callback]) or request(options[, callback]), as Node reads them.
    const request = (call) => (...args) => {
      const callback = args.find((argument) => typeof argument === "function");
      let options = {};
      if (typeof args[0] === "string" || args[0] instanceof URL) {
        const url = new URL(args[0]);
        options = { protocol: url.protocol, hostname: url.hostname, port: url.port, path: url.pathname + url.search };
        args.shift();
      }
      if (args[0] !== null && typeof args[0] === "object") options = { ...options, ...args[0] };
      const made = new ClientRequest(call, options);
      if (callback) made.once("response", callback);
      return made;
    };
    const get = (...args) => request("get")(...args).end();
    const unavailable = unavailableModule(name);
    const module = {
      Agent,
      globalAgent: new Agent(),
      ClientRequest,
      request: request("request"),
      get,
      STATUS_CODES: { ...HTTP_STATUS_TEXT },
      METHODS: ["ACL", "BIND", "CHECKOUT", "CONNECT", "COPY", "DELETE", "GET", "HEAD", "LINK", "LOCK", "M-SEARCH", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL", "MOVE", "NOTIFY", "OPTIONS", "PATCH", "POST", "PROPFIND", "PROPPATCH", "PURGE", "PUT", "QUERY", "REBIND", "REPORT", "SEARCH", "SOURCE", "SUBSCRIBE", "TRACE", "UNBIND", "UNLINK", "UNLOCK", "UNSUBSCRIBE"],
      maxHeaderSize: 16384,
    };
    // Node's other exports (servers, mostly): load, throw when called. Names Node's module does
    // not have are undefined, as there (libraries test `http.default ?? http`).
    const OTHERS = {
      http: ["_connectionListener", "IncomingMessage", "OutgoingMessage", "Server", "ServerResponse", "createServer", "validateHeaderName", "validateHeaderValue", "setMaxIdleHTTPParsers"],
      https: ["Server", "createServer"],
    }[name];
    return new Proxy(module, {
      get: (target, key) => (hasOwn(target, key) ? target[key] : OTHERS.includes(key) ? unavailable[key] : undefined),
    });
  }
  // Node's url.fileURLToPath and url.pathToFileURL (POSIX).
  function fileURLToPath(input) {
    let url = input;
    if (typeof input === "string") url = new URL(input);
    else if (!(input instanceof URL)) {
      throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "path" argument must be of type string or an instance of URL. Received ${received(input)}`);
    }
    if (url.protocol !== "file:") throw nodeError(TypeError, "ERR_INVALID_URL_SCHEME", "The URL must be of scheme file");
    if (url.hostname !== "") {
      throw nodeError(TypeError, "ERR_INVALID_FILE_URL_HOST", `File URL host must be "localhost" or empty on linux`);
    }
    if (/%2f/i.test(url.pathname)) {
      throw nodeError(TypeError, "ERR_INVALID_FILE_URL_PATH", "File URL path must not include encoded / characters");
    }
    return decodeURIComponent(url.pathname);
  }
  function pathToFileURL(filepath) {
    if (typeof filepath !== "string") {
      throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "path" argument must be of type string. Received ${received(filepath)}`);
    }
    const parts = [];
    for (const part of (filepath.startsWith("/") ? filepath : "/var/task/" + filepath).split("/")) {
      if (part === "" || part === ".") continue;
      if (part === "..") parts.pop();
      else parts.push(part);
    }
    let resolved = "/" + parts.join("/");
    if (filepath.endsWith("/") && resolved !== "/") resolved += "/";
    const encoded = resolved.replace(/%/g, "%25").replace(/\\/g, "%5C").replace(/\n/g, "%0A").replace(/\r/g, "%0D").replace(/\t/g, "%09");
    const url = new URL("file://");
    url.pathname = encoded;
    return url;
  }
  // The modules built in an instance on its first require of them: those from npm packages,
  // the ones composed over them, and the unavailable ones.
  const LAZY = {
    events: () => loadPackaged("events"),
    path: () => loadPackaged("path"),
    "path/posix": () => loadPackaged("path"),
    string_decoder: () => loadPackaged("string_decoder"),
    stream: () => loadPackaged("stream"),
    domain: () => loadPackaged("domain"),
    punycode: () => loadPackaged("punycode"),
    "stream/promises": () => builtinModule("stream").promises,
    assert: () => loadPackaged("assert"),
    "assert/strict": () => builtinModule("assert").strict,
    process: () => globalThis.process,
    console: () => globalThis.console,
    util: () => {
      const util = loadPackaged("util");
      // Loaded on first call: the comparisons take `types` from this module.
      const isDeepStrictEqual = (a, b) => loadPackaged("util-comparisons").isDeepStrictEqual(a, b);
      const { inspect, format, formatWithOptions, stripVTControlCharacters } = loadPackaged("util-inspect");
      return { ...util, inspect, format, formatWithOptions, stripVTControlCharacters, isDeepStrictEqual, TextEncoder, TextDecoder };
    },
    // Node's url: the legacy API from its npm package beside the WHATWG classes.
    url: () => {
      const { Url, parse, resolve, resolveObject, format } = loadPackaged("url");
      return { URL, URLSearchParams, Url, parse, resolve, resolveObject, format, fileURLToPath, pathToFileURL };
    },
  };
  for (const name of Object.keys(UNAVAILABLE)) LAZY[name] = () => unavailableModule(name);
  LAZY.http = () => offlineHttp("http");
  LAZY.https = () => offlineHttp("https");
  const lazyLoaded = new Map();
  const hasOwn = (object, key) => Object.prototype.hasOwnProperty.call(object, key);
  const builtinNames = () => [...Object.keys(BUILTINS), ...Object.keys(LAZY)];
  // Node's modules by name (`node:` prefix or not), or undefined.
  function builtinModule(name) {
    const key = String(name).startsWith("node:") ? String(name).slice(5) : String(name);
    if (hasOwn(BUILTINS, key)) return BUILTINS[key];
    if (hasOwn(LAZY, key)) {
      if (!lazyLoaded.has(key)) lazyLoaded.set(key, LAZY[key]());
      return lazyLoaded.get(key);
    }
    return undefined;
  }
  const notAvailable = (name) =>
    nodeError(
      Error,
      "MODULE_NOT_FOUND",
      `module not available: '${name}' (not in the function's package or its layers; edgehook's Node modules are: ${builtinNames().join(", ")})`,
    );
  // The global `require` (Node modules only), as the bootstrap has always offered it.
  function require(name) {
    const module = builtinModule(name);
    if (module === undefined) throw notAvailable(name);
    return module;
  }
  require.resolve = (name) => {
    require(name);
    return name;
  };

  // ---- CommonJS modules of the function's code tree ---------------------------------------
  // Node's module system over the function's package (/var/task) and layers (/opt): the files
  // and their resolution come from ops (src/js/resolve.rs), each module is compiled once per
  // instance under its own file URL (stack traces and dynamic `import()` see its path), and
  // `require.cache` is the cache, as in Node.
  const moduleCache = Object.create(null);
  const dirnameOf = (path) => path.slice(0, Math.max(path.lastIndexOf("/"), 1)) || "/";
  const fileUrl = (path) => "file://" + path.split("/").map(encodeURIComponent).join("/");
  const pathOfUrl = (url) => decodeURIComponent(new URL(url).pathname);
  function resolveModule(specifier, referrer, isImport) {
    if (typeof specifier !== "string") {
      throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "id" argument must be of type string. Received ${received(specifier)}`);
    }
    if (specifier === "") {
      throw nodeError(TypeError, "ERR_INVALID_ARG_VALUE", "The argument 'id' must be a non-empty string. Received ''");
    }
    const found = ops.op_edgehook_resolve(specifier, referrer, isImport);
    if (found.code === undefined) return found;
    const bare = !/^(\.|\/|#|file:|node:)/.test(specifier);
    if ((found.code === "MODULE_NOT_FOUND" && bare) || found.code === "ERR_UNKNOWN_BUILTIN_MODULE") throw notAvailable(specifier);
    throw nodeError(Error, found.code, found.message);
  }
  class Module {
    constructor(id = "", parent) {
      this.id = id;
      this.path = dirnameOf(id);
      this.exports = {};
      this.filename = id;
      this.loaded = false;
      this.children = [];
      this.paths = [];
      ObjectDefineProperty(this, "parent", { value: parent, writable: true, enumerable: false, configurable: true });
      this.require = requireOf(this);
    }
  }
  function requireOf(module) {
    const moduleRequire = function require(id) {
      const found = resolveModule(id, module.filename || "/var/task/", false);
      if (found.builtin !== undefined) return builtinModule(found.builtin);
      return loadModule(found.path, found.kind, module).exports;
    };
    moduleRequire.resolve = function resolve(id) {
      const found = resolveModule(id, module.filename || "/var/task/", false);
      return found.builtin !== undefined ? id : found.path;
    };
    moduleRequire.resolve.paths = (id) => (builtinModule(id) !== undefined ? null : ["/var/task/node_modules", "/opt/nodejs/node_modules"]);
    moduleRequire.cache = moduleCache;
    // Lambda loads the handler's module from its runtime, an ES module: `require.main` is
    // undefined, so `if (require.main === module)` (a local dev server, say) is false there.
    moduleRequire.main = undefined;
    moduleRequire.extensions = Object.freeze({ ".js": null, ".json": null, ".node": null });
    return moduleRequire;
  }
  function loadModule(path, kind, parent) {
    const cached = moduleCache[path];
    if (cached !== undefined) return cached;
    if (kind === "esm") {
      throw nodeError(
        Error,
        "ERR_REQUIRE_ESM",
        `require() of ES Module ${path}${parent ? ` from ${parent.filename}` : ""} is not supported by edgehook functions. Use import() instead (edgehook follows Node.js 20 before require(esm))`,
      );
    }
    const module = new Module(path, parent);
    moduleCache[path] = module;
    if (parent) parent.children.push(module);
    let loaded = false;
    try {
      let source = ops.op_edgehook_read_text(path) ?? "";
      if (source.charCodeAt(0) === 0xfeff) source = source.slice(1);
      if (kind === "json") {
        try {
          module.exports = JSON.parse(source);
        } catch (error) {
          error.message = `${path}: ${error.message}`;
          throw error;
        }
      } else {
        // A `#!` line is a comment to Node; inside the wrapper it would not be.
        if (source.startsWith("#!")) source = "//" + source.slice(2);
        const [wrapper, error] = core.evalContext(
          `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
          fileUrl(path),
        );
        if (error) throw error.thrown;
        wrapper.call(module.exports, module.exports, module.require, module, path, dirnameOf(path));
      }
      loaded = true;
    } finally {
      if (!loaded) delete moduleCache[path];
    }
    module.loaded = true;
    return module;
  }
  // The function's CommonJS (or JSON) main module.
  function requireMain(path) {
    return loadModule(path, path.endsWith(".json") ? "json" : "cjs", undefined).exports;
  }
  // ---- fs: the function's code tree, read-only, and an in-memory /tmp --------------------
  // Hand-written over the code-tree ops: the package is shared by every instance outside the
  // engine's heap, and a module copying it in (as memfs would) would cost each instance its
  // size. Paths outside /var/task, /opt and /tmp do not exist; /tmp is this instance's own,
  // bounded by TMP_LIMIT, and goes with the instance.
  const TMP_LIMIT = 64 << 20;
  function makeFs() {
    const tmpFiles = new Map();
    const tmpDirs = new Set(["/tmp"]);
    let tmpBytes = 0;
    const ERRORS = {
      ENOENT: [-2, "no such file or directory"],
      EROFS: [-30, "read-only file system"],
      EISDIR: [-21, "illegal operation on a directory"],
      ENOTDIR: [-20, "not a directory"],
      EEXIST: [-17, "file already exists"],
      ENOTEMPTY: [-39, "directory not empty"],
      ENOSPC: [-28, "no space left on device"],
    };
    function fsError(code, syscall, path, dest) {
      const [errno, text] = ERRORS[code];
      const error = new Error(`${code}: ${text}, ${syscall} '${path}'${dest ? ` -> '${dest}'` : ""}`);
      Object.assign(error, { errno, code, syscall, path });
      if (dest) error.dest = dest;
      return error;
    }
    function normalizePath(path) {
      const parts = [];
      for (const part of path.split("/")) {
        if (part === "" || part === ".") continue;
        if (part === "..") parts.pop();
        else parts.push(part);
      }
      return "/" + parts.join("/");
    }
    function toPath(path, name = "path") {
      let text;
      if (typeof path === "string") text = path;
      else if (path instanceof URL) {
        if (path.protocol !== "file:") throw nodeError(TypeError, "ERR_INVALID_URL_SCHEME", "The URL must be of scheme file");
        text = pathOfUrl(path.href);
      } else if (path instanceof Uint8Array) text = Buffer.from(path).toString();
      else {
        throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "${name}" argument must be of type string or an instance of Buffer or URL. Received ${received(path)}`);
      }
      if (text.includes("\0")) {
        throw nodeError(TypeError, "ERR_INVALID_ARG_VALUE", `The argument '${name}' must be a string, Uint8Array, or URL without null bytes. Received ${JSON.stringify(text)}`);
      }
      return normalizePath(text.startsWith("/") ? text : "/var/task/" + text);
    }
    const inTmp = (path) => path === "/tmp" || path.startsWith("/tmp/");
    const parentOf = (path) => path.slice(0, path.lastIndexOf("/")) || "/";
    // What is at a path: { file: size } or { dir: true }, or null.
    function lookup(path) {
      if (inTmp(path)) {
        if (tmpFiles.has(path)) return { size: tmpFiles.get(path).length };
        return tmpDirs.has(path) ? { dir: true } : null;
      }
      if (path === "/tmp") return { dir: true };
      const size = ops.op_edgehook_stat(path);
      if (size === -1) return null;
      return size === -2 ? { dir: true } : { size };
    }
    function bytesOf(path) {
      if (inTmp(path)) return Uint8Array.prototype.slice.call(tmpFiles.get(path));
      return ops.op_edgehook_read_bytes(path);
    }
    const encodingOf = (options) => (typeof options === "string" ? options : options?.encoding ?? null);
    function readFileSync(file, options) {
      const path = toPath(file);
      const found = lookup(path);
      if (!found) throw fsError("ENOENT", "open", path);
      if (found.dir) {
        const error = fsError("EISDIR", "read", path);
        error.message = "EISDIR: illegal operation on a directory, read";
        delete error.path;
        throw error;
      }
      const bytes = bytesOf(path);
      const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
      const encoding = encodingOf(options);
      return encoding && encoding !== "buffer" ? buffer.toString(encoding) : buffer;
    }
    const EPOCH = new Date(0);
    class Stats {
      constructor(found) {
        const file = !found.dir;
        Object.assign(this, {
          dev: 0, mode: file ? 0o100444 : 0o40555, nlink: 1, uid: 0, gid: 0, rdev: 0, blksize: 4096,
          ino: 0, size: file ? found.size : 4096, blocks: Math.ceil((file ? found.size : 4096) / 512),
          atimeMs: 0, mtimeMs: 0, ctimeMs: 0, birthtimeMs: 0,
          atime: EPOCH, mtime: EPOCH, ctime: EPOCH, birthtime: EPOCH,
        });
        ObjectDefineProperty(this, "_file", { value: file, enumerable: false });
      }
      isFile() { return this._file; }
      isDirectory() { return !this._file; }
      isSymbolicLink() { return false; }
      isBlockDevice() { return false; }
      isCharacterDevice() { return false; }
      isFIFO() { return false; }
      isSocket() { return false; }
    }
    function statSync(file, options) {
      const path = toPath(file);
      const found = lookup(path);
      if (!found) {
        if (options?.throwIfNoEntry === false) return undefined;
        throw fsError("ENOENT", "stat", path);
      }
      return new Stats(found);
    }
    class Dirent {
      constructor(name, dir, path) {
        this.name = name;
        this.path = path;
        ObjectDefineProperty(this, "_dir", { value: dir, enumerable: false });
      }
      isFile() { return !this._dir; }
      isDirectory() { return this._dir; }
      isSymbolicLink() { return false; }
      isBlockDevice() { return false; }
      isCharacterDevice() { return false; }
      isFIFO() { return false; }
      isSocket() { return false; }
    }
    function readdirSync(file, options) {
      const path = toPath(file);
      const found = lookup(path);
      if (!found) throw fsError("ENOENT", "scandir", path);
      if (!found.dir) throw fsError("ENOTDIR", "scandir", path);
      let names;
      if (inTmp(path)) {
        const prefix = path + "/";
        const below = [...tmpFiles.keys(), ...tmpDirs].filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes("/"));
        names = below.map((p) => p.slice(prefix.length));
      } else {
        names = ops.op_edgehook_read_dir(path) ?? [];
        if (path === "/") names.push("tmp");
      }
      names.sort();
      if (options?.withFileTypes) return names.map((name) => new Dirent(name, !!lookup(`${path === "/" ? "" : path}/${name}`)?.dir, path));
      return encodingOf(options) === "buffer" ? names.map((n) => Buffer.from(n)) : names;
    }
    function writable(path, syscall) {
      if (!inTmp(path)) throw fsError(lookup(path) || lookup(parentOf(path)) ? "EROFS" : "ENOENT", syscall, path);
      if (!tmpDirs.has(parentOf(path))) throw fsError("ENOENT", syscall, path);
      if (tmpDirs.has(path)) throw fsError("EISDIR", syscall, path);
    }
    function store(path, bytes) {
      const before = tmpFiles.get(path)?.length ?? 0;
      if (tmpBytes - before + bytes.length > TMP_LIMIT) throw fsError("ENOSPC", "write", path);
      tmpBytes += bytes.length - before;
      tmpFiles.set(path, bytes);
    }
    function dataBytes(data, options) {
      if (typeof data === "string") return Buffer.from(data, encodingOf(options) ?? "utf8");
      if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
      throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "data" argument must be of type string or an instance of Buffer, TypedArray, or DataView. Received ${received(data)}`);
    }
    function writeFileSync(file, data, options) {
      const path = toPath(file);
      writable(path, "open");
      const bytes = dataBytes(data, options);
      const append = typeof options === "object" && options !== null && String(options.flag ?? "w").startsWith("a");
      if (append && tmpFiles.has(path)) {
        const old = tmpFiles.get(path);
        const joined = new Uint8Array(old.length + bytes.length);
        joined.set(old);
        joined.set(bytes, old.length);
        store(path, joined);
      } else store(path, new Uint8Array(bytes));
    }
    function appendFileSync(file, data, options) {
      const flagged = typeof options === "string" ? { encoding: options, flag: "a" } : { ...options, flag: "a" };
      writeFileSync(file, data, flagged);
    }
    function mkdirSync(file, options) {
      const path = toPath(file);
      const recursive = typeof options === "object" && options?.recursive;
      if (!inTmp(path)) {
        if (lookup(path)) {
          if (recursive) return undefined;
          throw fsError("EEXIST", "mkdir", path);
        }
        throw fsError(lookup(parentOf(path)) ? "EROFS" : "ENOENT", "mkdir", path);
      }
      if (lookup(path)) {
        if (recursive && tmpDirs.has(path)) return undefined;
        throw fsError("EEXIST", "mkdir", path);
      }
      if (!tmpDirs.has(parentOf(path))) {
        if (!recursive) throw fsError("ENOENT", "mkdir", path);
        if (tmpFiles.has(parentOf(path))) throw fsError("ENOTDIR", "mkdir", path);
        const first = mkdirSync(parentOf(path), { recursive: true });
        tmpDirs.add(path);
        return first ?? path;
      }
      tmpDirs.add(path);
      return recursive ? path : undefined;
    }
    function unlinkSync(file) {
      const path = toPath(file);
      if (!inTmp(path)) throw fsError(lookup(path) ? "EROFS" : "ENOENT", "unlink", path);
      if (tmpDirs.has(path)) throw Object.assign(fsError("EISDIR", "unlink", path), { errno: -21 });
      if (!tmpFiles.has(path)) throw fsError("ENOENT", "unlink", path);
      tmpBytes -= tmpFiles.get(path).length;
      tmpFiles.delete(path);
    }
    function rmSync(file, options) {
      const path = toPath(file);
      const found = lookup(path);
      if (!found) {
        if (options?.force) return;
        throw fsError("ENOENT", "lstat", path);
      }
      if (!inTmp(path) || path === "/tmp") throw fsError("EROFS", "rm", path);
      if (!found.dir) return unlinkSync(path);
      const prefix = path + "/";
      const inside = [...tmpFiles.keys(), ...tmpDirs].some((p) => p.startsWith(prefix));
      if (inside && !options?.recursive) {
        throw nodeError(Error, "ERR_FS_EISDIR", `Path is a directory: rm returned EISDIR (is a directory) ${path}`);
      }
      for (const p of [...tmpFiles.keys()]) if (p.startsWith(prefix)) unlinkSync(p);
      for (const d of [...tmpDirs]) if (d.startsWith(prefix)) tmpDirs.delete(d);
      tmpDirs.delete(path);
    }
    function rmdirSync(file) {
      const path = toPath(file);
      if (!inTmp(path) || path === "/tmp") throw fsError(lookup(path) ? "EROFS" : "ENOENT", "rmdir", path);
      if (!tmpDirs.has(path)) throw fsError(tmpFiles.has(path) ? "ENOTDIR" : "ENOENT", "rmdir", path);
      const prefix = path + "/";
      if ([...tmpFiles.keys(), ...tmpDirs].some((p) => p.startsWith(prefix))) throw fsError("ENOTEMPTY", "rmdir", path);
      tmpDirs.delete(path);
    }
    function renameSync(from, to) {
      const source = toPath(from, "oldPath");
      const target = toPath(to, "newPath");
      if (!inTmp(source) || !inTmp(target)) throw fsError(lookup(source) ? "EROFS" : "ENOENT", "rename", source, target);
      if (!tmpFiles.has(source)) throw fsError("ENOENT", "rename", source, target);
      writable(target, "rename");
      const bytes = tmpFiles.get(source);
      unlinkSync(source);
      store(target, bytes);
    }
    function copyFileSync(from, to) {
      const source = toPath(from, "src");
      const target = toPath(to, "dest");
      const found = lookup(source);
      if (!found) throw fsError("ENOENT", "copyfile", source, target);
      writable(target, "copyfile");
      store(target, new Uint8Array(bytesOf(source)));
    }
    function accessSync(file, mode = 0) {
      const path = toPath(file);
      if (!lookup(path)) throw fsError("ENOENT", "access", path);
      if (mode & 2 && !inTmp(path)) throw fsError("EROFS", "access", path);
    }
    function existsSync(file) {
      try {
        return lookup(toPath(file)) !== null;
      } catch {
        return false;
      }
    }
    function realpathSync(file) {
      const path = toPath(file);
      if (!lookup(path)) throw fsError("ENOENT", "lstat", path);
      return path;
    }
    realpathSync.native = realpathSync;
    const sync = {
      readFileSync, statSync, lstatSync: statSync, readdirSync, writeFileSync, appendFileSync, mkdirSync,
      unlinkSync, rmSync, rmdirSync, renameSync, copyFileSync, accessSync, realpathSync,
    };
    const fs = { ...sync, existsSync, Stats, Dirent, constants: { F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1, COPYFILE_EXCL: 1 } };
    fs.F_OK = 0;
    fs.R_OK = 4;
    fs.W_OK = 2;
    fs.X_OK = 1;
    const promises = {};
    for (const [name, run] of Object.entries(sync)) {
      const base = name.slice(0, -4);
      // Node's callback form: the last argument is the callback, called on a later turn.
      fs[base] = function (...args) {
        const callback = args.pop();
        if (typeof callback !== "function") {
          throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "cb" argument must be of type function. Received ${received(callback)}`);
        }
        let result, failure = null;
        try {
          result = run(...args);
        } catch (error) {
          failure = error;
        }
        setImmediate(() => (failure ? callback(failure) : callback(null, result)));
      };
      promises[base] = async (...args) => run(...args);
    }
    fs.exists = (path, callback) => setImmediate(() => callback(existsSync(path)));
    promises.constants = fs.constants;
    fs.promises = promises;
    return fs;
  }
  let fsLoaded;
  LAZY.fs = () => (fsLoaded ??= makeFs());
  LAZY["fs/promises"] = () => (fsLoaded ??= makeFs()).promises;

  // ---- zlib: whole buffers through Rust (src/js/zlib.rs) ----------------------------------
  // The sync, callback and promise-able forms as Node's; the stream forms are Transforms that
  // compress or inflate what they were given when it ends (not chunk by chunk).
  function makeZlib() {
    const constants = {
      Z_NO_FLUSH: 0, Z_PARTIAL_FLUSH: 1, Z_SYNC_FLUSH: 2, Z_FULL_FLUSH: 3, Z_FINISH: 4, Z_BLOCK: 5,
      Z_OK: 0, Z_STREAM_END: 1, Z_NEED_DICT: 2, Z_ERRNO: -1, Z_STREAM_ERROR: -2, Z_DATA_ERROR: -3,
      Z_MEM_ERROR: -4, Z_BUF_ERROR: -5, Z_VERSION_ERROR: -6, Z_NO_COMPRESSION: 0, Z_BEST_SPEED: 1,
      Z_BEST_COMPRESSION: 9, Z_DEFAULT_COMPRESSION: -1, Z_FILTERED: 1, Z_HUFFMAN_ONLY: 2, Z_RLE: 3,
      Z_FIXED: 4, Z_DEFAULT_STRATEGY: 0, ZLIB_VERNUM: 4865, DEFLATE: 1, INFLATE: 2, GZIP: 3,
      GUNZIP: 4, DEFLATERAW: 5, INFLATERAW: 6, UNZIP: 7, BROTLI_DECODE: 8, BROTLI_ENCODE: 9,
      Z_MIN_WINDOWBITS: 8, Z_MAX_WINDOWBITS: 15, Z_DEFAULT_WINDOWBITS: 15, Z_MIN_CHUNK: 64,
      Z_MAX_CHUNK: Infinity, Z_DEFAULT_CHUNK: 16384, Z_MIN_MEMLEVEL: 1, Z_MAX_MEMLEVEL: 9,
      Z_DEFAULT_MEMLEVEL: 8, Z_MIN_LEVEL: -1, Z_MAX_LEVEL: 9, Z_DEFAULT_LEVEL: -1,
      BROTLI_OPERATION_PROCESS: 0, BROTLI_OPERATION_FLUSH: 1, BROTLI_OPERATION_FINISH: 2,
      BROTLI_OPERATION_EMIT_METADATA: 3, BROTLI_PARAM_MODE: 0, BROTLI_MODE_GENERIC: 0,
      BROTLI_MODE_TEXT: 1, BROTLI_MODE_FONT: 2, BROTLI_DEFAULT_MODE: 0, BROTLI_PARAM_QUALITY: 1,
      BROTLI_MIN_QUALITY: 0, BROTLI_MAX_QUALITY: 11, BROTLI_DEFAULT_QUALITY: 11, BROTLI_PARAM_LGWIN: 2,
      BROTLI_MIN_WINDOW_BITS: 10, BROTLI_MAX_WINDOW_BITS: 24, BROTLI_DEFAULT_WINDOW: 22,
      BROTLI_PARAM_SIZE_HINT: 5,
    };
    const METHODS = {
      deflate: "Deflate", inflate: "Inflate", gzip: "Gzip", gunzip: "Gunzip", deflateRaw: "DeflateRaw",
      inflateRaw: "InflateRaw", unzip: "Unzip", brotliCompress: "BrotliCompress", brotliDecompress: "BrotliDecompress",
    };
    function bytesOf(buffer) {
      if (typeof buffer === "string") return Buffer.from(buffer);
      if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
      if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      throw nodeError(
        TypeError,
        "ERR_INVALID_ARG_TYPE",
        `The "buffer" argument must be of type string or an instance of Buffer, TypedArray, DataView, or ArrayBuffer. Received ${received(buffer)}`,
      );
    }
    function optionsOf(options = {}) {
      const params = options.params ?? {};
      const level = options.level;
      if (level !== undefined && (typeof level !== "number" || level < -1 || level > 9 || !Number.isInteger(level))) {
        throw nodeError(RangeError, "ERR_OUT_OF_RANGE", `The value of "options.level" is out of range. It must be >= -1 and <= 9. Received ${level}`);
      }
      return {
        level,
        maxOutputLength: options.maxOutputLength,
        quality: params[constants.BROTLI_PARAM_QUALITY],
        lgwin: params[constants.BROTLI_PARAM_LGWIN],
      };
    }
    function run(method, buffer, options) {
      const out = ops.op_edgehook_zlib(method, bytesOf(buffer), optionsOf(options));
      if (out instanceof Uint8Array) return Buffer.from(out.buffer, out.byteOffset, out.length);
      const error = out.code === "ERR_BUFFER_TOO_LARGE" ? new RangeError(out.message) : new Error(out.message);
      error.code = out.code;
      if (out.errno) error.errno = out.errno;
      throw error;
    }
    const zlib = { constants, codes: { Z_OK: 0, Z_STREAM_END: 1, Z_NEED_DICT: 2, Z_ERRNO: -1, Z_STREAM_ERROR: -2, Z_DATA_ERROR: -3, Z_MEM_ERROR: -4, Z_BUF_ERROR: -5, Z_VERSION_ERROR: -6 } };
    for (const [name, value] of Object.entries(constants)) if (name.startsWith("Z_")) zlib[name] = value;
    const { Transform } = builtinModule("stream");
    for (const [method, className] of Object.entries(METHODS)) {
      zlib[`${method}Sync`] = (buffer, options) => run(method, buffer, options);
      zlib[method] = (buffer, options, callback) => {
        if (typeof options === "function") [options, callback] = [{}, options];
        if (typeof callback !== "function") {
          throw nodeError(TypeError, "ERR_INVALID_ARG_TYPE", `The "callback" argument must be of type function. Received ${received(callback)}`);
        }
        let result, failure = null;
        try {
          result = run(method, buffer, options);
        } catch (error) {
          failure = error;
        }
        setImmediate(() => (failure ? callback(failure) : callback(null, result)));
      };
      class ZlibStream extends Transform {
        constructor(options = {}) {
          super(options);
          this._options = options;
          this._chunks = [];
          this.bytesWritten = 0;
        }
        _transform(chunk, encoding, done) {
          const bytes = typeof chunk === "string" ? Buffer.from(chunk, encoding) : chunk;
          this._chunks.push(bytes);
          this.bytesWritten += bytes.length;
          done();
        }
        _flush(done) {
          try {
            done(null, run(method, Buffer.concat(this._chunks), this._options));
          } catch (error) {
            done(error);
          }
        }
        close(callback) {
          if (callback) this.once("close", callback);
          this.destroy();
        }
      }
      ObjectDefineProperty(ZlibStream, "name", { value: className });
      zlib[className] = ZlibStream;
      zlib[`create${className}`] = (options) => new ZlibStream(options);
    }
    return zlib;
  }
  let zlibLoaded;
  LAZY.zlib = () => (zlibLoaded ??= makeZlib());

  // Node's `module`: the Module class with createRequire and the list of Node's modules.
  LAZY.module = () => {
    const createRequire = (filename) => {
      const text = filename instanceof URL ? filename.href : String(filename);
      const path = text.startsWith("file:") ? pathOfUrl(text) : text;
      if (!path.startsWith("/")) {
        throw nodeError(TypeError, "ERR_INVALID_ARG_VALUE", `The argument 'filename' must be a file URL object, file URL string, or absolute path string. Received ${received(filename)}`);
      }
      const module = new Module(path, undefined);
      return module.require;
    };
    const builtinModules = builtinNames();
    return Object.assign(Module, {
      createRequire,
      builtinModules,
      isBuiltin: (name) => builtinModule(name) !== undefined,
      Module,
      _cache: moduleCache,
    });
  };

  // ---- Atomics.wait ----------------------------------------------------------------------
  // An instance shares memory with no other thread, so nothing can ever notify its waits: a
  // wait ends at its timeout, and the engine cannot stop a script while it waits (termination
  // is checked between operations). A wait that could outlast the invocation's time left would
  // hold its JS thread, and every function served by that thread, past the deadline (an endless
  // one for ever), so it throws instead; shorter waits work as on Node.js (a sleep), and one
  // whose value differs answers "not-equal" at once. Outside an invocation no wait may block.
  const atomicsWait = Atomics.wait;
  const DateNow = Date.now;
  let waitDeadline = 0; // ms since the epoch, set by each invocation
  Atomics.wait = function wait(typedArray, index, value, timeout) {
    const ms = timeout === undefined ? Infinity : +timeout;
    if (ms <= 0 || ms <= waitDeadline - DateNow()) return atomicsWait(typedArray, index, value, ms);
    const now = atomicsWait(typedArray, index, value, 0);
    if (now === "not-equal") return now;
    throw new TypeError(`Atomics.wait for ${ms} ms would block past the function's timeout`);
  };

  // ---- Atomics.waitAsync, Atomics.notify -------------------------------------------------
  // Hand-written in place of the engine's: its waiters live in one registry for the whole
  // process, keyed by memory address, behind globals (`__v8xAtomics*`) that wake or cancel any
  // waiter by its sequential id, so one function could wake or hold another's waits. Only an
  // instance's own `notify` can wake its waits (it shares memory with no other thread): these
  // keep them in the instance. Arguments are checked as Node.js does. Installed by `bind`: the
  // engine installs its own in every context, a restored one included.
  const AtomicsLoad = Atomics.load;
  const asyncWaiters = new WeakMap(); // SharedArrayBuffer -> Map(byte index -> [waiter])
  // The byte a wait or notify is about, its arguments checked in the standard's order; null
  // for a typed array on memory nobody else can share (`notify` wakes nobody there).
  function waitableByte(view, index, mustShare) {
    if (!(view instanceof Int32Array || view instanceof BigInt64Array)) {
      throw new TypeError("Atomics.waitAsync and Atomics.notify take an Int32Array or a BigInt64Array");
    }
    const shared = view.buffer instanceof SharedArrayBuffer;
    if (mustShare && !shared) throw new TypeError(`${view} is not a shared typed array.`);
    AtomicsLoad(view, index); // a RangeError for an index out of range
    return shared ? view.byteOffset + Math.trunc(Number(index) || 0) * view.BYTES_PER_ELEMENT : null;
  }
  function waitAsync(view, index, value, timeout) {
    const at = waitableByte(view, index, true);
    const expected = view instanceof BigInt64Array ? BigInt.asIntN(64, value) : value | 0;
    const wanted = Number(timeout);
    const ms = Number.isNaN(wanted) ? Infinity : Math.max(wanted, 0);
    if (AtomicsLoad(view, index) !== expected) return { async: false, value: "not-equal" };
    if (ms === 0) return { async: false, value: "timed-out" };
    let cells = asyncWaiters.get(view.buffer);
    if (cells === undefined) asyncWaiters.set(view.buffer, (cells = new Map()));
    let queue = cells.get(at);
    if (queue === undefined) cells.set(at, (queue = []));
    const waiter = { resolve: undefined, timer: undefined };
    const promise = new Promise((resolve) => (waiter.resolve = resolve));
    queue.push(waiter);
    if (ms !== Infinity) {
      waiter.timer = setTimeout(() => {
        const position = queue.indexOf(waiter);
        if (position !== -1) queue.splice(position, 1);
        waiter.resolve("timed-out");
      }, ms);
    }
    return { async: true, value: promise };
  }
  function notify(view, index, count) {
    const at = waitableByte(view, index, false);
    const wanted = count === undefined ? Infinity : Math.max(Math.trunc(Number(count)) || 0, 0);
    const queue = at === null ? undefined : asyncWaiters.get(view.buffer)?.get(at);
    let woken = 0;
    while (queue !== undefined && queue.length > 0 && woken < wanted) {
      const waiter = queue.shift();
      if (waiter.timer !== undefined) clearTimer(waiter.timer);
      waiter.resolve("ok");
      woken++;
    }
    return woken;
  }

  // ---- globals ---------------------------------------------------------------------------
  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  define("console", console);
  define("setTimeout", setTimeout);
  define("clearTimeout", clearTimer);
  define("setInterval", setInterval);
  define("clearInterval", clearTimer);
  define("setImmediate", setImmediate);
  define("clearImmediate", clearTimer);
  define("Buffer", Buffer);
  define("TextEncoder", TextEncoder);
  define("TextDecoder", TextDecoder);
  define("atob", atob);
  define("btoa", btoa);
  define("URL", URL);
  define("URLSearchParams", URLSearchParams);
  define("global", globalThis);
  define("require", require);
  if (!WEB) define("crypto", { getRandomValues, randomUUID: crypto.randomUUID });

  // ---- the web platform ------------------------------------------------------------------
  // From Deno's extensions (src/js/web.rs). Each global is a getter that loads the script
  // defining it on first use, then becomes a plain value; assigning it first replaces it.
  function loadWeb(specifier) {
    const loaded = core.loadExtScript(specifier);
    const setUp = WEB_SET_UP[specifier];
    if (setUp !== undefined) {
      delete WEB_SET_UP[specifier];
      setUp(loaded);
    }
    return loaded;
  }
  // What a script needs once it is loaded, as Deno's runtime does at start.
  const WEB_SET_UP = {
    __proto__: null,
    // The instance's start as a wall-clock time (performance.now() counts from it).
    "ext:deno_web/15_performance.js": (loaded) => loaded.setTimeOrigin(),
    // JWK exports as Node.js 20 writes them: no `alg` for ECDSA, ECDH and X25519 keys (deno
    // writes ES256 and the like), `alg: "Ed25519"` for Ed25519 keys (deno writes none).
    "ext:deno_crypto/00_crypto.js": (loaded) => {
      const prototype = loaded.SubtleCrypto.prototype;
      const exportKey = prototype.exportKey;
      const NO_ALG = ["ECDSA", "ECDH", "X25519"];
      const wrapped = {
        async exportKey(format, key) {
          const exported = await FunctionCall.call(exportKey, this, format, key);
          if (format === "jwk" && exported !== null && typeof exported === "object") {
            const name = key?.algorithm?.name;
            if (NO_ALG.includes(name)) delete exported.alg;
            else if (name === "Ed25519") exported.alg = "Ed25519";
          }
          return exported;
        },
      }.exportKey;
      ObjectDefineProperty(wrapped, "length", { value: 2 });
      ObjectDefineProperty(prototype, "exportKey", { ...ObjectGetOwnPropertyDescriptor(prototype, "exportKey"), value: wrapped });
    },
  };
  function lazyGlobal(name, load) {
    const settle = (value) =>
      ObjectDefineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
    ObjectDefineProperty(globalThis, name, {
      get() {
        const value = load();
        settle(value);
        return value;
      },
      set: settle,
      configurable: true,
      enumerable: false,
    });
  }
  const WEB_GLOBALS = {
    // Node.js 20's event classes (it has no ErrorEvent, CloseEvent, ProgressEvent or
    // PromiseRejectionEvent, which deno_web also defines).
    "ext:deno_web/02_event.js": ["Event", "EventTarget", "CustomEvent", "MessageEvent"],
    "ext:deno_web/03_abort_signal.js": ["AbortController", "AbortSignal"],
    "ext:deno_web/08_text_encoding.js": ["TextEncoderStream", "TextDecoderStream"],
    "ext:deno_web/09_file.js": ["Blob", "File"],
    "ext:deno_web/06_streams.js": [
      "ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamBYOBReader", "ReadableStreamBYOBRequest",
      "ReadableByteStreamController", "ReadableStreamDefaultController", "WritableStream", "WritableStreamDefaultWriter",
      "WritableStreamDefaultController", "TransformStream", "TransformStreamDefaultController",
      "ByteLengthQueuingStrategy", "CountQueuingStrategy",
    ],
    "ext:deno_web/14_compression.js": ["CompressionStream", "DecompressionStream"],
    "ext:deno_web/01_dom_exception.js": ["DOMException"],
    "ext:deno_web/15_performance.js": ["performance", "Performance", "PerformanceEntry", "PerformanceMark", "PerformanceMeasure"],
    "ext:deno_fetch/20_headers.js": ["Headers"],
    "ext:deno_fetch/21_formdata.js": ["FormData"],
    "ext:deno_fetch/23_request.js": ["Request"],
    "ext:deno_fetch/23_response.js": ["Response"],
    "ext:deno_crypto/00_crypto.js": ["crypto", "Crypto", "CryptoKey", "SubtleCrypto"],
  };
  if (WEB) {
    for (const specifier of ObjectKeys(WEB_GLOBALS)) {
      for (const name of WEB_GLOBALS[specifier]) lazyGlobal(name, () => loadWeb(specifier)[name]);
    }
    lazyGlobal("fetch", () => outboundFetch(loadWeb("ext:deno_fetch/26_fetch.js").fetch));
    lazyGlobal("structuredClone", () => cloningErrors(loadWeb("ext:deno_web/02_structured_clone.js").structuredClone));
  }

  // ---- structuredClone of errors ----------------------------------------------------------
  // The engine's serializer, which deno_web's structuredClone uses, has no form for Error
  // objects (Node's keeps their kind, message, stack and cause). A value it refuses for that
  // reason is cloned here instead, with the engine's serializer for every part that is not an
  // error, and the same identities and cycles.
  const ERROR_KINDS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };
  const ObjectToString = FunctionCall.bind(Object.prototype.toString);
  const ObjectCreate = Object.create;
  const ObjectGetPrototypeOf = Object.getPrototypeOf;
  const MapPrototypeEntries = FunctionCall.bind(Map.prototype.entries);
  const SetPrototypeValues = FunctionCall.bind(Set.prototype.values);
  function cloningErrors(clone) {
    return function structuredClone(value, options = undefined) {
      try {
        return clone(value, options);
      } catch (error) {
        if (!String(error?.message).startsWith("unsupported object class: Error")) throw error;
      }
      const copies = new Map();
      const copy = (v) => {
        if (v === null || (typeof v !== "object" && typeof v !== "function")) return v;
        if (copies.has(v)) return copies.get(v);
        const tag = ObjectToString(v);
        if (tag === "[object Error]") {
          const kind = ERROR_KINDS[v.name] ?? Error;
          const made = ObjectCreate(kind.prototype);
          copies.set(v, made);
          const message = ObjectGetOwnPropertyDescriptor(v, "message");
          if (message && "value" in message) ObjectDefineProperty(made, "message", { value: String(message.value), writable: true, configurable: true, enumerable: false });
          // The engine keeps an error's stack behind an accessor; Node copies it as text.
          let stack;
          try {
            stack = v.stack;
          } catch {}
          if (typeof stack === "string") ObjectDefineProperty(made, "stack", { value: stack, writable: true, configurable: true, enumerable: false });
          const cause = ObjectGetOwnPropertyDescriptor(v, "cause");
          if (cause && "value" in cause) ObjectDefineProperty(made, "cause", { value: copy(cause.value), writable: true, configurable: true, enumerable: false });
          return made;
        }
        if (ArrayIsArray(v)) {
          const made = [];
          copies.set(v, made);
          made.length = v.length;
          for (const key of ObjectKeys(v)) made[key] = copy(v[key]);
          return made;
        }
        if (tag === "[object Map]") {
          const made = new Map();
          copies.set(v, made);
          for (const [key, entry] of MapPrototypeEntries(v)) made.set(copy(key), copy(entry));
          return made;
        }
        if (tag === "[object Set]") {
          const made = new Set();
          copies.set(v, made);
          for (const entry of SetPrototypeValues(v)) made.add(copy(entry));
          return made;
        }
        if (tag === "[object Object]" && ObjectGetPrototypeOf(v) === Object.prototype) {
          const made = {};
          copies.set(v, made);
          for (const key of ObjectKeys(v)) made[key] = copy(v[key]);
          return made;
        }
        // Anything else (dates, buffers, boxed values, what cannot be cloned) as the engine's
        // serializer has it.
        const made = clone(v);
        copies.set(v, made);
        return made;
      };
      return copy(value);
    };
  }

  // ---- outbound requests -----------------------------------------------------------------
  // deno_fetch sends them and Rust checks where each may go (js/egress.rs). This wrapper adds
  // the rest of the operator's settings: a request takes one of the function's slots
  // (`egress_concurrency`) until its response body is read; a body larger than
  // `egress_max_response` fails; each call is recorded for the metrics and the REPORT line;
  // and requests still running when their invocation ends are aborted (Lambda freezes the
  // sandbox): their promises then never settle, as in a frozen Lambda sandbox.
  let outboundAbort = null;
  let maxResponse = -1;
  const OUTBOUND_REFUSAL = /^outbound request to \S+ refused: /;
  // Whether `error` (or one of its causes) is the egress policy's refusal.
  function refusal(error) {
    try {
      for (let e = error, depth = 0; e !== null && typeof e === "object" && depth < 4; e = e.cause, depth++) {
        if (typeof e.message === "string" && OUTBOUND_REFUSAL.test(e.message)) return true;
      }
    } catch {}
    return false;
  }
  // Called by edgehook when an invocation that made requests ends.
  function abortOutbound() {
    const controller = outboundAbort;
    outboundAbort = null;
    try {
      controller?.abort();
    } catch {}
  }
  function outboundFetch(denoFetch) {
    const { toInnerResponse } = loadWeb("ext:deno_fetch/23_response.js");
    const { Request } = loadWeb("ext:deno_fetch/23_request.js");
    const { AbortController, AbortSignal } = loadWeb("ext:deno_web/03_abort_signal.js");
    const { TransformStream } = loadWeb("ext:deno_web/06_streams.js");
    const end = (id, code, release) => ops.op_edgehook_egress_end(id, code, release);
    const tooLarge = (host, cap) =>
      new TypeError(`the response from ${host} is larger than the function's egress_max_response (${cap} bytes)`);
    return function fetch(input, init = undefined) {
      const isRequest = input instanceof Request;
      let host = "";
      try {
        const url = new URL(isRequest ? input.url : String(input));
        if (url.protocol === "http:" || url.protocol === "https:") host = url.hostname;
      } catch {}
      // data: and blob: URLs, and what deno_fetch will refuse as no URL, go straight through.
      if (host === "") return denoFetch(input, init);
      if (outboundAbort === null) outboundAbort = new AbortController();
      const invocation = outboundAbort.signal;
      const own = init?.signal ?? (isRequest ? input.signal : undefined);
      const signal = own ? AbortSignal.any([own, invocation]) : invocation;
      return new Promise((resolve, reject) => {
        let id = 0;
        const fail = (error) => {
          if (invocation.aborted) return;
          if (id !== 0) end(id, refusal(error) ? -1 : 0, true);
          reject(error);
        };
        ops.op_edgehook_egress_begin(host).then((given) => {
          id = given;
          if (invocation.aborted) return;
          return denoFetch(input, { ...init, signal }).then((response) => {
            if (invocation.aborted) return;
            const status = response.status;
            const body = toInnerResponse(response).body;
            if (body === null) {
              end(id, status, true);
              return resolve(response);
            }
            const cap = maxResponse >= 0 ? maxResponse : (maxResponse = ops.op_edgehook_egress_max_response());
            if (Number(response.headers.get("content-length")) > cap) {
              body.stream.cancel().catch(() => {});
              return fail(tooLarge(host, cap));
            }
            end(id, status, false);
            // The body as the function reads it, counted (compressed bodies arrive decoded).
            let seen = 0;
            body.streamOrStatic = body.stream.pipeThrough(
              new TransformStream({
                transform(chunk, controller) {
                  seen += chunk.byteLength;
                  if (seen > cap) {
                    end(id, status, true);
                    controller.error(tooLarge(host, cap));
                  } else {
                    controller.enqueue(chunk);
                  }
                },
                flush() {
                  end(id, status, true);
                },
                cancel() {
                  end(id, status, true);
                },
              }),
            );
            resolve(response);
          });
        }).catch(fail);
      });
    };
  }
  // Node.js 21's (Node.js 20 has none; functions written for browsers read it).
  define("navigator", ObjectFreeze({ userAgent: "Node.js/20", hardwareConcurrency: 1, language: "en-US", languages: ObjectFreeze(["en-US"]) }));
  // How an ES module importing a CommonJS one reaches it (`commonjs_facade` in module.rs).
  ObjectDefineProperty(globalThis, Symbol.for("edgehook.require"), {
    value: (path) => loadModule(path, "cjs", undefined).exports,
    enumerable: false,
  });

  // ---- the invocation wrapper ------------------------------------------------------------
  function errorOf(value) {
    if (value instanceof Error) return value;
    if (typeof value === "string") {
      const error = new Error(value);
      error.name = "string";
      return error;
    }
    const error = new Error(inspect(value));
    error.name = "Error";
    return error;
  }

  // What Lambda's Node.js runtime reports for an error it cannot read (a proxy whose traps
  // throw, getters on `name`/`message`/`stack` that throw).
  const UNREADABLE_ERROR = {
    name: "handled",
    message: "callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack",
  };
  // Never throws: whatever the function threw, it is described or reported as unreadable.
  function errorJson(error) {
    let name, message, stack;
    try {
      const e = errorOf(error);
      name = String(e.name ?? "Error");
      message = String(e.message ?? "");
      stack = typeof e.stack === "string" ? e.stack : undefined;
    } catch {
      ({ name, message } = UNREADABLE_ERROR);
      stack = undefined;
    }
    return jsonStringify({ name, message, stack });
  }

  // What deno_core reports for an exception (see `bind`); never throws.
  function formatException(value) {
    try {
      if (value instanceof Error) return `Uncaught ${String(value.name)}: ${String(value.message)}`;
    } catch {
      return `Uncaught ${UNREADABLE_ERROR.name}: ${UNREADABLE_ERROR.message}`;
    }
    return `Uncaught ${inspect(value)}`;
  }

  // The message of an error thrown while a result was turned into JSON (a `toJSON` or a getter
  // of the function's); never throws.
  function thrownMessage(thrown) {
    try {
      const message = thrown !== null && typeof thrown === "object" ? thrown.message : undefined;
      return typeof message === "string" && message !== "" ? message : String(thrown);
    } catch {
      return "the result could not be read";
    }
  }

  // Most functions return the request or response they were given with few headers changed.
  // Headers still as given (the same array, as long as it was, its entries' keys and values
  // unchanged) are not turned into JSON again: edgehook lists them by name and takes them from
  // the event it built. `given` is this invocation's request (request events) or response
  // (response events), its header map, and a record of that map as the function got it: its
  // names and arrays (`Object.keys`/`Object.values`), their lengths, and every entry's key and
  // value in order. (Reading those strings from a second JSON text edgehook would write costs
  // more than this loop.) One record, its fields set by each invocation (`target` null where
  // the invocation lists no headers): a fresh object per invocation, four to seven properties
  // created one by one, cost about 1% of a small function's call.
  const given = {
    __proto__: null,
    target: null,
    headers: null,
    names: null,
    lists: null,
    lengths: null,
    strings: null,
    lazy: null,
  };
  // Whether the last result was the given object: a function that generates its responses
  // does not pay for the record (it costs about as much as it saves per header).
  let recordNext = true;
  function recordHeaders(target) {
    const headers = target.headers;
    const lists = ObjectValues(headers);
    const lengths = [];
    const strings = [];
    for (let i = 0, k = 0; i < lists.length; i++) {
      const list = lists[i];
      const n = list.length;
      lengths[i] = n;
      for (let j = 0; j < n; j++) {
        const entry = list[j];
        strings[k++] = entry.key;
        strings[k++] = entry.value;
      }
    }
    given.target = target;
    given.headers = headers;
    given.names = ObjectKeys(headers);
    given.lists = lists;
    given.lengths = lengths;
    given.strings = strings;
    given.lazy = null;
  }
  // `target` with no record of its headers (null: no headers listed at all).
  function unrecorded(target) {
    given.target = target;
    given.headers = given.names = given.lists = given.lengths = given.strings = given.lazy = null;
  }

  // A header map held back: edgehook hands over the event without the returned object's
  // headers (their JSON apart) when the function did not read them last time. The object gets
  // an accessor in their place. Read during the invocation, it hands out a proxy of an empty
  // map and becomes a plain property holding that proxy, so the function sees an ordinary
  // object: writing a header (an array) only goes into the map, reading one header (or asking
  // for it with `in`) parses that header alone into the map (edgehook's index of the map's
  // JSON says where it is), and anything else the function does with the map (listing,
  // deleting, defining, freezing) first parses all the held headers into it, in the event's
  // order and ahead of those written, as if the map had been whole from the start. A result
  // that is the object with its map not wholly parsed keeps every header as given but those in
  // the map: its JSON says so with "K*" and holds the headers written or read only, and
  // edgehook takes the others from the event. (Most functions write headers, read one or two,
  // or leave them alone.)
  const noHeaders = ObjectFreeze({});
  // Whether the invocation under way parsed a held-back map; edgehook then hands the next
  // events over whole for a while ("h" before the result's marker).
  let heldBackRead = false;
  // Whether it read held-back headers one at a time, or would have but the event came without
  // the map's index (then the map was parsed whole); edgehook then sends the index with the
  // function's next events for a while ("i").
  let indexWanted = false;
  function holdBack(target, text, index) {
    const held = {
      target,
      text,
      index,
      value: undefined,
      proxy: null,
      plain: false,
      read: false,
      writing: false,
      written: 0,
    };
    defineHeldBackAccessor(held);
    return held;
  }
  // The accessor's functions, and the proxy's handler, hold `held` only, and `held.target` and
  // `held.proxy` are let go when the invocation ends (`readMark`): a cycle through them would
  // wait for the engine's cycle collector instead of going with the event. A map first read
  // after that (from an event the function kept) is parsed then and stays behind the accessor,
  // which returns it on every read.
  function defineHeldBackAccessor(held) {
    const get = () => {
      if (held.proxy !== null) return held.proxy;
      if (held.writing) {
        held.written++;
        return noHeaders;
      }
      if (held.target === null) {
        held.value ??= {};
        parseHeldBack(held);
        return held.value;
      }
      held.value = {};
      held.proxy = new ProxyConstructor(held.value, new HeldBackHandler(held));
      held.plain = plainHeaders(held.target, held.proxy);
      return held.proxy;
    };
    const set = function (value) {
      const target = held.target;
      if (!assignedInPlace(this, target, "headers", value)) return;
      held.plain = true;
      held.read = true;
      held.text = null;
      if (given.lazy === held) unrecorded(target);
    };
    defineAccessor(held.target, "headers", get, set);
  }
  // An assignment through a held-back accessor (`headers`, or a held part's): on another object
  // (one inheriting from the owner), or on any object once the invocation is over (`owner`
  // let go), a plain property of its own, as assigning an inherited plain property makes
  // (false); on the owner, a plain property in the accessor's place (true), or a TypeError
  // where the function froze the owner first.
  function assignedInPlace(receiver, owner, key, value) {
    if (receiver !== owner) {
      definePlain(receiver, key, value);
      return false;
    }
    if (!plainProperty(owner, key, value)) {
      throw new TypeError(`Cannot assign to read only property '${key}' of object`);
    }
    return true;
  }
  // Makes `key` (`headers`) a plain property again; false where the function froze the object
  // first.
  function plainProperty(target, key, value) {
    try {
      definePlain(target, key, value);
      return true;
    } catch {
      return false;
    }
  }
  const plainHeaders = (target, value) => plainProperty(target, "headers", value);
  // Puts the held headers into the proxy's map in the event's order, ahead of those written
  // into it since; a header already read keeps its value (the same array), a written one that
  // the event had takes its place, as an assignment to the whole map would. `whole`: the
  // function asked for all of them (not one, for want of the index).
  function parseHeldBack(held, whole = true) {
    if (held.read) return;
    held.read = true;
    if (whole) heldBackRead = true;
    const map = held.value;
    const parsed = jsonParse(held.text);
    held.text = null;
    held.index = null;
    const own = ObjectKeys(map);
    const values = [];
    for (let i = 0; i < own.length; i++) {
      values[i] = map[own[i]];
      delete map[own[i]];
    }
    const names = ObjectKeys(parsed);
    for (let i = 0; i < names.length; i++) {
      definePlain(map, names[i], parsed[names[i]]);
    }
    for (let i = 0; i < own.length; i++) map[own[i]] = values[i];
  }
  // Parses the held header `key` alone into the proxy's map (unless the map has it already,
  // read or written, or the event has no such header).
  function readOneHeldBack(held, key) {
    const map = held.value;
    if (held.read || held.writing || typeof key !== "string" || ObjectHasOwn(map, key)) return;
    indexWanted = true;
    const index = held.index;
    if (index === undefined) {
      parseHeldBack(held, false);
      return;
    }
    const at = StringIndexOf(index, "," + key + ":");
    if (at === -1) return;
    const from = at + key.length + 2;
    const colon = StringIndexOf(index, ":", from);
    let end = StringIndexOf(index, ",", colon);
    if (end === -1) end = index.length;
    const value = jsonParse(StringSlice(held.text, +StringSlice(index, from, colon), +StringSlice(index, colon + 1, end)));
    definePlain(map, key, value);
  }
  // The proxy's traps; `this` is the handler, which holds the map's `held`. While the result is
  // written they leave the map unparsed, and count how often it is written out.
  function HeldBackHandler(held) {
    this.held = held;
  }
  const forward = (held) => {
    if (!held.writing) parseHeldBack(held);
  };
  HeldBackHandler.prototype = {
    __proto__: null,
    set(map, key, value, receiver) {
      const held = this.held;
      // A header written to the proxy itself (not through an object inheriting from it), under a
      // name nothing up the prototype chain has (where the whole map's assignment could differ).
      if (
        !held.read &&
        receiver === held.proxy &&
        typeof key === "string" &&
        ArrayIsArray(value) &&
        !(key in ObjectPrototype)
      ) {
        map[key] = value;
        return true;
      }
      forward(held);
      return ReflectSet(map, key, value, receiver);
    },
    get(map, key, receiver) {
      readOneHeldBack(this.held, key);
      return ReflectGet(map, key, receiver);
    },
    has(map, key) {
      readOneHeldBack(this.held, key);
      return ReflectHas(map, key);
    },
    ownKeys(map) {
      const held = this.held;
      if (held.writing) held.written++;
      else parseHeldBack(held);
      return ReflectOwnKeys(map);
    },
    getOwnPropertyDescriptor(map, key) {
      readOneHeldBack(this.held, key);
      return ReflectGetOwnPropertyDescriptor(map, key);
    },
    defineProperty(map, key, descriptor) {
      forward(this.held);
      return ReflectDefineProperty(map, key, descriptor);
    },
    deleteProperty(map, key) {
      forward(this.held);
      return ReflectDeleteProperty(map, key);
    },
    preventExtensions(map) {
      forward(this.held);
      return ReflectPreventExtensions(map);
    },
    setPrototypeOf(map, prototype) {
      forward(this.held);
      return ReflectSetPrototypeOf(map, prototype);
    },
  };
  // The event's part functions seldom read (the request in response events, whose result is the
  // response; the origin block in origin-request events) held back the same way: its owner gets
  // an accessor in its place that parses it when first read and becomes a plain property
  // holding it. An origin block never read is left out of the result (which keeps the event's
  // origin, as an unchanged one does). `heldPart` is the invocation's; its `owner` is let go
  // when the invocation ends (`readMark`), as a held map's target is.
  let heldPart = null;
  // Whether the invocation under way parsed its held-back part ("p" before the marker): the
  // next events come whole for a while.
  let partRead = false;
  // The object the result's JSON is being written from (`resultJson`).
  let writingResult;
  function holdPart(owner, key, text) {
    const part = { owner, key, text, value: undefined };
    const get = function () {
      if (part.text === null) return part.value;
      // The origin block of the result, never read: left out.
      if (this === part.owner && this === writingResult && part.key === "origin") return undefined;
      if (part.owner !== null) partRead = true;
      part.value = jsonParse(part.text);
      part.text = null;
      if (part.owner !== null) plainProperty(part.owner, part.key, part.value);
      return part.value;
    };
    const set = function (value) {
      if (!assignedInPlace(this, part.owner, part.key, value)) return;
      part.text = null;
      part.value = value;
    };
    defineAccessor(owner, key, get, set);
    return part;
  }

  // The JSON of the returned object whose header map is still held back: "K*" and the headers
  // written, when the map (the accessor, or the unparsed proxy in its place) is written out once;
  // otherwise the map is parsed and all of it is written.
  function heldBackJson(value, held) {
    const proxy = held.proxy;
    if (proxy !== null && value.headers !== proxy) return jsonStringify(value);
    held.writing = true;
    held.written = 0;
    // The proxy's own map stands in for it while the JSON is written (the same JSON): through
    // the proxy, every header written costs three interpreted traps. Only where `headers` is
    // a plain property that JSON.stringify is sure to write (once, counted here).
    const swapped = proxy !== null && swapInMap(value, proxy, held.value);
    let json;
    try {
      json = jsonStringify(value);
    } finally {
      held.writing = false;
      if (swapped) restoreProxy(value, proxy);
    }
    if (swapped) held.written++;
    if (held.written === 1) return "K*\n" + json;
    if (held.proxy === null) return json;
    parseHeldBack(held);
    return jsonStringify(value);
  }

  function swapInMap(value, proxy, map) {
    const own = ObjectGetOwnPropertyDescriptor(value, "headers");
    if (own === undefined || own.value !== proxy || !own.writable || !own.enumerable) return false;
    value.headers = map;
    return true;
  }
  function restoreProxy(value, proxy) {
    try {
      value.headers = proxy;
    } catch {
      // A `toJSON` of the function's froze the object while it was written: the map stays.
    }
  }

  // The JSON of `value` (the given request or response) without the headers it holds as
  // given, preceded by "K<their names, comma-separated>\n" when there are any. Those headers
  // are set to undefined (which JSON leaves out) while it is written, then put back.
  function keptHeadersJson(value) {
    const { headers, names, lists, lengths, strings } = given;
    const kept = [];
    let kk = 0;
    for (let i = 0, k = 0; i < names.length; i++) {
      const list = lists[i];
      const n = lengths[i];
      let same = headers[names[i]] === list && list.length === n;
      for (let j = 0; same && j < n; j++) {
        const entry = list[j];
        same = entry?.key === strings[k + 2 * j] && entry.value === strings[k + 2 * j + 1];
      }
      if (same) {
        kept[kk++] = names[i];
        kept[kk++] = list;
      }
      k += 2 * n;
    }
    if (kk === 0) return jsonStringify(value);
    let cleared = 0;
    try {
      // Fails only where the function made its header map read-only: then all of it is written.
      for (; cleared < kk; cleared += 2) headers[kept[cleared]] = undefined;
    } catch {
      for (let j = 0; j < cleared; j += 2) headers[kept[j]] = kept[j + 1];
      cleared = kk = 0;
    }
    let json;
    try {
      json = jsonStringify(value);
    } finally {
      for (let j = 0; j < cleared; j += 2) headers[kept[j]] = kept[j + 1];
    }
    if (kk === 0) return json;
    let listed = kept[0];
    for (let j = 2; j < kk; j += 2) listed += "," + kept[j];
    return "K" + listed + "\n" + json;
  }

  // A result's `body` string of at least this many characters travels after the JSON instead of
  // in it, past a NUL (which JSON text never holds raw): quoting it for JSON costs QuickJS some
  // 85 instructions per character, reading it out unquoted less than half of that.
  const RAW_BODY_MIN = 32;

  // Takes a long `body` string off `value` while its JSON is written; returns it (or undefined
  // where there is none, or it cannot be taken off: a read-only or accessor property).
  function takeBody(value) {
    if (value === null || typeof value !== "object") return undefined;
    const body = value.body;
    if (typeof body !== "string" || body.length < RAW_BODY_MIN) return undefined;
    try {
      value.body = undefined;
    } catch {
      return undefined;
    }
    if (value.body === undefined) return body;
    value.body = body;
    return undefined;
  }

  // Results travel to edgehook as marker strings: "N<result JSON>", "W<result JSON>" (a callback
  // answered while the context asks to wait for the event loop to empty), "E<message>" (the
  // result cannot be JSON) or "F<error JSON>" (the function failed). The JSON may be preceded by
  // the names of headers kept as given (`keptHeadersJson`) and followed by "\0" and the raw body
  // (`takeBody`).
  function resultJson(value, marker) {
    let json;
    try {
      let keep = false;
      let held = null;
      if (given.target !== null) {
        recordNext = value === given.target;
        if (given.lazy !== null) held = recordNext && !given.lazy.read ? given.lazy : null;
        else keep = recordNext && given.lists !== null && value.headers === given.headers;
      }
      // An object with its own idea of its JSON (`toJSON`) is written as it says, whole.
      const custom = value !== null && typeof value === "object" && typeof value.toJSON === "function";
      if (custom || (keep && typeof value.headers.toJSON === "function")) keep = false;
      if (custom) held = null;
      const body = custom ? undefined : takeBody(value);
      writingResult = value;
      try {
        if (held !== null) json = heldBackJson(value, held);
        else json = keep ? keptHeadersJson(value) : jsonStringify(value === undefined ? null : value);
      } finally {
        writingResult = undefined;
        if (body !== undefined) value.body = body;
      }
      if (body !== undefined) json = json + "\0" + body;
    } catch (e) {
      return readMark("E") + thrownMessage(e);
    }
    return (heldBackRead || indexWanted || given.lazy !== null || heldPart !== null ? readMark(marker) : marker) + (json ?? "null");
  }
  // The invocation's result is made: also lets go of a held-back map's target (see `holdBack`).
  function readMark(marker) {
    let mark = marker;
    if (heldPart !== null) {
      heldPart.owner = null;
      heldPart = null;
    }
    if (given.lazy !== null) {
      given.lazy.target = null;
      // A proxy behind an accessor the function froze in place stays for later reads.
      if (given.lazy.plain) given.lazy.proxy = null;
    }
    if (heldBackRead) mark = "h" + mark;
    else if (indexWanted) mark = "i" + mark;
    return partRead ? "p" + mark : mark;
  }
  // What Lambda's runtime does with an exception no code catches (one thrown in a microtask or
  // timer) and a rejection no code handles: the invocation under way fails with it
  // (`Runtime.UnhandledPromiseRejection` for a rejection). `invoking` runs from the handler's
  // call to its result; `pendingFail` fails an invocation waiting on the event loop.
  let invoking = false;
  let uncaught = null;
  let pendingFail = null;
  // The handler's own promise: its rejection is the invocation's failure, not an unhandled one.
  let invocationPromise = null;
  function noteUncaught(error) {
    if (pendingFail !== null) {
      const fail = pendingFail;
      pendingFail = null;
      fail(error);
    } else if (invoking) {
      uncaught ??= { error };
    } else {
      ops.op_edgehook_log(3, "Uncaught " + formatException(error).replace(/^Uncaught /, ""));
    }
  }
  function unhandledRejection(reason) {
    let message;
    try {
      message = String(reason);
    } catch {
      message = UNREADABLE_ERROR.message;
    }
    const error = new Error(message);
    error.name = "Runtime.UnhandledPromiseRejection";
    return error;
  }
  // Ends the invocation; an uncaught error met during it is its outcome. Rejections still
  // queued when the handler settles are not its concern: Node reports them after the turn in
  // which the result was given, as the event loop here does (logged, see `bind`).
  function endInvocation() {
    invoking = false;
    const found = uncaught;
    uncaught = null;
    return found;
  }
  const ignore = () => {};
  const failValue = (error) => {
    const found = endInvocation();
    // The handler's rejected promise was read, not handled: handling it takes it off the
    // engine's list of unhandled rejections.
    if (invocationPromise !== null) PromiseThen(invocationPromise, undefined, ignore);
    invocationPromise = null;
    return readMark("F") + errorJson(found !== null ? found.error : error);
  };
  // Callback-style invocations settle with a marked object, so that a handler's own result can
  // never be mistaken for a marker string.
  const kMarker = Symbol("edgehook.marker");
  const marked = (text) => ({ [kMarker]: text });
  function settleValue(value) {
    invocationPromise = null;
    const found = endInvocation();
    if (found !== null) return failValue(found.error);
    try {
      if (value !== null && typeof value === "object" && typeof value[kMarker] === "string") return value[kMarker];
    } catch (error) {
      return failValue(error); // a proxy whose traps throw
    }
    return resultJson(value, "N");
  }
  // A pending invocation: settles with its handler, or fails with an uncaught error first.
  function chain(promise) {
    if (uncaught !== null) return Promise.resolve(failValue(uncaught.error));
    return new Promise((resolve) => {
      let finished = false;
      const end = (outcome) => (value) => {
        if (finished) return;
        finished = true;
        pendingFail = null;
        resolve(outcome(value));
      };
      pendingFail = end(failValue);
      promise.then(end(settleValue), end(failValue));
    });
  }

  // Whether `handler` can reach its context object, its second argument; decided once per
  // handler from its source. One that cannot gets undefined in its place: building the context
  // (nine properties and a closure) is about 3% of a small function's call. It cannot
  // when its parameter list is one plain name and it is an arrow function (no `arguments` of
  // its own), or a function whose source never names `arguments` or `eval`. Anything else
  // (two parameters, defaults, rest, destructuring, comments in the list, bound or native
  // functions) gets its context.
  let contextChecked = null;
  let contextWanted = true;
  const FunctionToString = FunctionCall.bind(Function.prototype.toString);
  const RegExpExec = FunctionCall.bind(RegExp.prototype.exec);
  const ONE_NAME_ARROW = /^(?:async\s*)?(?:[A-Za-z_$][\w$]*|\(\s*[A-Za-z_$][\w$]*\s*\))\s*=>/;
  const ONE_NAME_FUNCTION = /^(?:async\s+)?function\s*\*?\s*[A-Za-z_$]?[\w$]*\s*\(\s*[A-Za-z_$][\w$]*\s*\)\s*\{/;
  const NAMES_ARGUMENTS = /\b(?:arguments|eval)\b/;
  function reachesContext(handler) {
    if (handler.length !== 1) return true;
    let source;
    try {
      source = FunctionToString(handler);
    } catch {
      return true;
    }
    if (RegExpExec(ONE_NAME_ARROW, source) !== null) return false;
    return RegExpExec(ONE_NAME_FUNCTION, source) === null || RegExpExec(NAMES_ARGUMENTS, source) !== null;
  }

  // The context object Lambda passes a handler beside the event.
  function lambdaContext(info, requestId, deadline) {
    return {
      functionName: info.functionName,
      functionVersion: info.functionVersion,
      invokedFunctionArn: info.invokedFunctionArn,
      memoryLimitInMB: info.memoryLimitInMB,
      awsRequestId: requestId,
      logGroupName: info.logGroupName,
      logStreamName: info.logStreamName,
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, Math.round(deadline - Date.now())),
    };
  }

  // Runs one event through `handler`. Returns a marker string, or a promise whose settled value
  // edgehook turns into one with `settleValue`/`failValue` (or `chain` while it is pending).
  // `headersJson`: the returned object's header map held back (see `holdBack`), its place in
  // `eventJson` taken by a 0; undefined when the event is whole. `headersIndex`: where each
  // header sits in it (`,name:start:end` per header). `partJson`: the event's seldom-read part
  // held back likewise (see `holdPart`).
  function invoke(handler, eventJson, info, requestId, deadline, listHeaders, headersJson, headersIndex, partJson) {
    invoking = true;
    uncaught = null;
    pendingFail = null;
    waitDeadline = deadline;
    heldBackRead = false;
    indexWanted = false;
    partRead = false;
    const event = jsonParse(eventJson);
    if (partJson !== undefined) {
      const cf = event.Records[0].cf;
      heldPart = cf.response ? holdPart(cf, "request", partJson) : holdPart(cf.request, "origin", partJson);
    }
    if (listHeaders) {
      const cf = event.Records[0].cf;
      const target = cf.response ?? cf.request;
      if (headersJson !== undefined) {
        unrecorded(target);
        given.lazy = holdBack(target, headersJson, headersIndex);
      } else if (recordNext) {
        recordHeaders(target);
      } else {
        unrecorded(target);
      }
    } else {
      unrecorded(null);
    }
    if (handler !== contextChecked) {
      contextChecked = handler;
      contextWanted = reachesContext(handler);
    }
    // undefined where the handler cannot reach it (`reachesContext`).
    const context = contextWanted ? lambdaContext(info, requestId, deadline) : undefined;
    if (handler.length < 3) {
      // async (event, context) or a plain function: its return value is the result.
      let returned;
      try {
        returned = handler(event, context);
      } catch (error) {
        return failValue(error);
      }
      try {
        if (returned !== null && typeof returned === "object" && typeof returned.then === "function") {
          invocationPromise = returned instanceof Promise ? returned : Promise.resolve(returned);
          return invocationPromise;
        }
      } catch (error) {
        return failValue(error); // a proxy whose traps throw
      }
      invoking = false;
      return resultJson(returned, "N");
    }
    // (event, context, callback): the callback settles the invocation, unless the handler
    // returns a value or a promise first.
    let settle;
    let done = false;
    const settled = new Promise((resolve) => {
      settle = resolve;
    });
    const finish = (value, viaCallback) =>
      marked(resultJson(value, viaCallback && context.callbackWaitsForEmptyEventLoop ? "W" : "N"));
    const fail = (error) => marked(failValue(error));
    const callback = (error, value) => {
      if (done) return;
      done = true;
      // `finish` reads the function's context, which it may have made throw.
      let outcome;
      try {
        outcome = error !== null && error !== undefined ? fail(error) : finish(value, true);
      } catch (thrown) {
        outcome = fail(thrown);
      }
      settle(outcome);
    };
    let returned;
    try {
      returned = handler(event, context, callback);
    } catch (error) {
      return done ? settled : failValue(error);
    }
    if (!done && returned !== null && typeof returned === "object" && typeof returned.then === "function") {
      Promise.resolve(returned).then(
        (value) => {
          if (!done) {
            done = true;
            settle(finish(value, false));
          }
        },
        (error) => {
          if (!done) {
            done = true;
            settle(fail(error));
          }
        },
      );
    } else if (!done && returned !== undefined) {
      done = true;
      settle(finish(returned, false));
    }
    return settled;
  }

  function setEnv(env) {
    const processObject = {
      // Libraries tell Node by `Object.prototype.toString.call(process)` (axios picks its
      // http adapter so).
      [Symbol.toStringTag]: "process",
      env: Object.assign(Object.create(null), env),
      // The Node.js release whose behaviour the runtime follows (its tests compare with it).
      version: "v20.20.2",
      versions: { node: "20.20.2" },
      platform: "linux",
      arch: "x64",
      memoryUsage: Object.assign(
        () => {
          const usage = ops.op_memory_usage();
          return { rss: usage.physicalTotal, heapTotal: usage.heapTotal, heapUsed: usage.heapUsed, external: usage.external, arrayBuffers: 0 };
        },
        { rss: () => ops.op_memory_usage().physicalTotal },
      ),
      argv: [],
      cwd: () => "/var/task",
      nextTick: (callback, ...args) => queueMicrotask(() => callback(...args)),
      hrtime: Object.assign(
        (previous) => {
          const now = Date.now();
          const time = [Math.floor(now / 1000), (now % 1000) * 1e6];
          return previous ? [time[0] - previous[0], time[1] - previous[1]] : time;
        },
        { bigint: () => BigInt(Date.now()) * 1000000n },
      ),
      exit: () => {
        throw new Error("process.exit is not available in edgehook functions");
      },
      on: () => processObject,
      emitWarning: (warning) => ops.op_edgehook_log(2, String(warning)),
      // Lambda sends what a function writes to stdout and stderr to its log, as console's.
      stdout: outputStream(1, 1),
      stderr: outputStream(2, 3),
    };
    define("process", processObject);
  }
  function outputStream(fd, level) {
    return {
      fd,
      isTTY: false,
      writable: true,
      write(chunk, encoding, callback) {
        const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString(typeof encoding === "string" ? encoding : "utf8");
        ops.op_edgehook_log(level, text.endsWith("\n") ? text.slice(0, -1) : text);
        const done = typeof encoding === "function" ? encoding : callback;
        if (typeof done === "function") queueMicrotask(() => done());
        return true;
      },
      end() {},
      on() {
        return this;
      },
      once() {
        return this;
      },
    };
  }

  // Globals of the engine's a function must not reach, removed when an instance starts (the
  // engine reads some while it restores the snapshot). docs/sandbox.md lists every global.
  const ENGINE_GLOBALS_REMOVED = [
    // Every intrinsic as the engine made it, for its snapshots: the native `Atomics.wait` that
    // the guard above wraps among them.
    "__v8x_snapshot_intrinsics",
    // A realm of its own, with unwrapped natives and the engine's globals (not in Node.js 20).
    "ShadowRealm",
    // Full garbage collections on demand (Node.js has it only with --expose-gc).
    "gc",
    // Queues a task outside the function's heap per call, unbounded; nothing else calls it.
    "__v8xPostForegroundTask",
    // The engine's Atomics.waitAsync shim and its process-wide waiter registry (replaced above).
    "__v8xAtomicsRegisterWaiter",
    "__v8xAtomicsNotifyWaiters",
    "__v8xAtomicsCancelWaiter",
    "__v8xAtomicsNumWaitersForTesting",
    "__v8xAtomicsNumUnresolvedAsyncPromisesForTesting",
    // Source-phase imports, for WebAssembly sources (not in Node.js 20).
    "__v8x_import_source",
    // Its memories would not count against the function's memory limit (see `engine.rs`).
    "WebAssembly",
  ];

  const internals = ObjectFreeze({ invoke, settleValue, failValue, chain, requireMain, setEnv, require, abortOutbound });

  // The DOMException names the Rust side of Deno's extensions gives its errors.
  const DOM_EXCEPTION_ERRORS = [
    "DataError", "IndexSizeError", "InvalidAccessError", "InvalidCharacterError", "InvalidStateError",
    "NotSupportedError", "OperationError", "QuotaExceededError", "SyntaxError", "TypeMismatchError",
  ];

  // Runs once per instance: keeps private references to deno_core's core and ops, then
  // removes every deno_core internal from reach. Returns what edgehook calls.
  function bind(instanceCore) {
    core = instanceCore;
    ops = instanceCore.ops;
    // deno_core turns an exception that reaches Rust (a module's top-level throw, say) into
    // text with this. Without it, it asks the engine, whose conversion of a value that cannot
    // be turned into a string (a proxy whose traps throw) fails, and deno_core then panics.
    ops.op_set_format_exception_callback(formatException);
    // Uncaught errors fail the invocation under way (see `noteUncaught`); a rejection found
    // after its invocation ended is logged and must not fail a later one.
    core.setUnhandledPromiseRejectionHandler((promise, reason) => {
      if (pendingFail !== null || invoking) noteUncaught(unhandledRejection(reason));
      else ops.op_edgehook_log(3, "Unhandled promise rejection: " + inspect(reason));
      return true;
    });
    // An exception thrown in a microtask or timer: as above while an invocation is under way;
    // after it ended (a timer left by a callback answering early), the event loop reports it.
    core.setReportExceptionCallback((error) => {
      if (pendingFail !== null || invoking) noteUncaught(error);
      else core.reportUnhandledException(error);
    });
    if (WEB) bindWeb();
    delete globalThis.Deno;
    delete globalThis.__bootstrap;
    for (const name of ENGINE_GLOBALS_REMOVED) delete globalThis[name];
    for (const [name, value] of [["waitAsync", waitAsync], ["notify", notify]]) {
      ObjectDefineProperty(Atomics, name, { value, writable: true, enumerable: false, configurable: true });
    }
    return internals;
  }
  // The web extensions' part of `bind`.
  function bindWeb() {
    // Errors of Deno's extensions' Rust side name a DOMException class; as in Deno's runtime,
    // each becomes a DOMException (deno_web's, loaded then if it is not yet).
    for (const name of DOM_EXCEPTION_ERRORS) {
      core.registerErrorBuilder(`DOMException${name}`, (message) => new (loadWeb("ext:deno_web/01_dom_exception.js").DOMException)(message, name));
    }
    // deno_fetch reads OpenTelemetry's state from deno_telemetry, which is not here: tracing off.
    ObjectAssign(globalThis.__bootstrap.internals, {
      __telemetry: {
        TRACING_ENABLED: false,
        PROPAGATORS: [],
        builtinTracer() {},
        ContextManager: { active() {} },
        DID_NOT_ENTER: {},
        enterSpan() {},
        exitSpan() {},
      },
      __telemetryUtil: { updateSpanFromClientResponse() {}, updateSpanFromError() {}, updateSpanFromRequest() {} },
    });
  }
  // Reached by edgehook through the global below, which edgehook deletes right after reading.
  define("__edgehookBind", bind);
})(globalThis);
