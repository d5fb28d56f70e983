//! The web platform and outbound requests through the library API, against origins on
//! loopback.

use super::*;
use crate::config::{Egress as EgressConfig, EgressRules};
use crate::edge::sample::{sample, SampleOptions};
use crate::edge::{EventType, RequestOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pool(specs: Vec<FunctionSpec>) -> JsPool {
    let options = PoolOptions {
        threads: 1,
        queue: 16,
        max_wait: Duration::from_millis(500),
        snapshot: true,
        name_servers: Vec::new(),
        ..PoolOptions::default()
    };
    JsPool::start(specs, &options).expect("pool starts")
}

/// A function of `source` whose egress allows `rules`, named in refusals as `[functions.f]`'s.
fn function(source: &str, rules: &[String]) -> FunctionSpec {
    let mut spec = FunctionSpec::new("f", "index.mjs", source);
    let mut egress = EgressConfig::none("[functions.f] egress");
    egress.rules = EgressRules::parse(rules, "[functions.f] egress".into()).expect("valid rules");
    spec.egress = Arc::new(Egress::new(egress));
    spec
}

/// The body of the response the function generated.
async fn body_of(pool: &JsPool) -> String {
    let event = sample(EventType::ViewerRequest, &SampleOptions::default());
    match pool.invoke("f", &event).await {
        Ok(Outcome::Request(RequestOutcome::Respond(generated))) => {
            String::from_utf8(generated.body).expect("UTF-8 body")
        }
        other => panic!("a generated response was expected, got {other:?}"),
    }
}

/// What an origin on loopback received: the request's method, path, head and body.
struct Received {
    method: String,
    path: String,
    head: String,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.head
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name).then(|| value.trim().to_string())
            })
            .unwrap_or_default()
    }
}

/// An HTTP/1.1 origin on loopback answering each request with the response `answer` writes
/// for it (one request per connection); its port.
async fn loopback_origin(answer: impl Fn(&Received) -> String + Send + Sync + 'static) -> u16 {
    let answer = Arc::new(answer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                let head_end = loop {
                    if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_string();
                let mut received = Received {
                    method: String::new(),
                    path: String::new(),
                    head,
                    body: Vec::new(),
                };
                let length: usize = received.header("content-length").parse().unwrap_or(0);
                while request.len() < head_end + length {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let mut first = received.head.lines().next().unwrap_or_default().split(' ');
                received.method = first.next().unwrap_or_default().to_string();
                received.path = first.next().unwrap_or_default().to_string();
                received.body = request[head_end..head_end + length].to_vec();
                let _ = stream.write_all(answer(&received).as_bytes()).await;
            });
        }
    });
    port
}

/// An HTTP/1.1 origin on loopback answering every request with `body`, and its port.
async fn origin(body: &'static str) -> u16 {
    loopback_origin(move |_| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    })
    .await
}

/// What a function that fetches each URL of `urls` reports: the body, or the error.
fn fetching(urls: &[String]) -> String {
    format!(
        r#"export const handler = async () => {{
            const lines = [];
            for (const url of {urls:?}) {{
                try {{
                    const response = await fetch(url);
                    lines.push(`${{response.status}} ${{await response.text()}}`);
                }} catch (e) {{
                    lines.push(`${{e.name}}: ${{e.message}}${{e.cause ? ' / ' + e.cause.message : ''}}`);
                }}
            }}
            return {{ status: '200', body: lines.join('\n') }};
        }};"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_platform_is_there() {
    let source = r#"export const handler = async () => {
        const lines = [];
        const headers = new Headers({ 'X-B': '2', a: '1', 'set-cookie': 'x=1' });
        headers.append('Set-Cookie', 'y=2');
        lines.push([...headers].map(([k, v]) => `${k}=${v}`).join(','));
        lines.push(JSON.stringify(await new Response('{"a":1}').json()));
        const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode('abc'));
        lines.push(Buffer.from(digest).toString('hex').slice(0, 16));
        const cyclic = { list: [1, new Map([[1, 'one']])] };
        cyclic.self = cyclic;
        const copy = structuredClone(cyclic);
        lines.push(`${copy.self === copy && copy !== cyclic} ${copy.list[1].get(1)}`);
        const stream = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('str')); c.enqueue(new TextEncoder().encode('eam')); c.close(); } });
        lines.push(await new Response(stream).text());
        const controller = new AbortController();
        controller.abort();
        lines.push(`${controller.signal.aborted} ${controller.signal.reason.name}`);
        lines.push(await new Blob(['b', 'lob']).text());
        const form = new FormData();
        form.append('k', 'v');
        lines.push(`${form.get('k')} ${new Request('https://example.com/x', { method: 'POST', body: 'q' }).method}`);
        lines.push(`${typeof performance.now()} ${navigator.userAgent}`);
        return { status: '200', body: lines.join('\n') };
    };"#;
    let pool = pool(vec![function(source, &[])]);
    assert_eq!(
        body_of(&pool).await,
        "a=1,set-cookie=x=1,set-cookie=y=2,x-b=2\n{\"a\":1}\nba7816bf8f01cfea\ntrue one\nstream\ntrue AbortError\nblob\nv POST\nnumber Node.js/20"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_reaches_what_egress_allows_and_nothing_else() {
    let allowed = origin("hello from the origin").await;
    let other = origin("must not be reached").await;
    let urls = [
        format!("http://127.0.0.1:{allowed}/"),
        format!("http://127.0.0.1:{other}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ];
    let pool = pool(vec![function(&fetching(&urls), &[format!("127.0.0.1:{allowed}")])]);
    let body = body_of(&pool).await;
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "200 hello from the origin");
    assert_eq!(
        lines[1],
        format!("TypeError: outbound request to 127.0.0.1:{other} refused: [functions.f] egress does not allow it (an internal address must be listed as itself)")
    );
    assert!(
        lines[2].starts_with("TypeError: outbound request to 169.254.169.254:80 refused"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_resolving_to_an_internal_address_needs_the_address_allowed() {
    let port = origin("internal service").await;
    let url = format!("http://localhost:{port}/");
    // The name alone: it resolves to 127.0.0.1, which is not listed.
    let by_name = pool(vec![function(
        &fetching(std::slice::from_ref(&url)),
        &[format!("localhost:{port}")],
    )]);
    let refused = body_of(&by_name).await;
    assert!(
        refused.starts_with("TypeError: fetch failed")
            && refused.contains("outbound request to localhost refused: it resolves to 127.0.0.1")
            && refused.contains("[functions.f] egress does not list 127.0.0.1 itself"),
        "{refused}"
    );
    // The name and the address.
    let both = pool(vec![function(
        &fetching(&[url]),
        &[format!("localhost:{port}"), format!("127.0.0.1:{port}")],
    )]);
    assert_eq!(body_of(&both).await, "200 internal service");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_egress_every_request_is_refused() {
    let pool = pool(vec![function(&fetching(&["https://example.com/".to_string()]), &[])]);
    assert_eq!(
        body_of(&pool).await,
        "TypeError: outbound request to example.com:443 refused: [functions.f] egress does not allow it (functions have no egress unless it is configured)"
    );
}

/// Headers, Request and Response bodies, structuredClone, Blob, FormData, streams, events and
/// abort signals give what Node.js 20 gives.
#[tokio::test(flavor = "multi_thread")]
async fn the_web_platform_behaves_as_on_node() {
    let probe = r#"
async function probe() {
  const out = {};
  const failure = async (f) => { try { await f(); return 'no error'; } catch (e) { return e.name; } };
  const h = new Headers([['B', '2'], ['a', '1'], ['Set-Cookie', 'x=1'], ['set-cookie', 'y=2'], ['C', '  spaced  '], ['b', '3']]);
  h.append('Accept', 'text/html');
  out.headers = {
    entries: [...h], keys: [...h.keys()], get: [h.get('b'), h.get('set-cookie'), h.get('c'), h.get('missing')],
    setCookie: h.getSetCookie(), has: [h.has('A'), h.has('nope')],
    badName: await failure(() => new Headers({ 'bad name': 'x' })),
    badValue: await failure(() => new Headers({ a: 'x\ny' })),
    fromObject: [...new Headers({ Z: '1', y: '2' })],
  };
  h.delete('B');
  h.set('a', 'one');
  out.headers.after = [...h];
  const response = new Response('{"a":[1,2]}', { status: 201, statusText: 'Made', headers: { 'Content-Type': 'application/json' } });
  const copy = response.clone();
  out.response = {
    status: [response.status, response.statusText, response.ok, response.type, response.url, response.redirected],
    json: await response.json(),
    used: response.bodyUsed,
    again: await failure(() => response.text()),
    bytes: [...new Uint8Array(await copy.arrayBuffer())].slice(0, 4),
    blob: await (async () => { const b = await new Response('abc', { headers: { 'content-type': 'Text/Plain' } }).blob(); return [b.size, b.type, await b.text()]; })(),
    form: [...(await new Response('a=1&b=%20two&a=3', { headers: { 'content-type': 'application/x-www-form-urlencoded' } }).formData())],
    staticJson: [Response.json({ x: 1 }).headers.get('content-type'), await Response.json({ x: 1 }).text()],
    redirect: [Response.redirect('https://example.com/next', 302).status, Response.redirect('https://example.com/next').headers.get('location')],
    error: [Response.error().type, Response.error().status],
    nullBody: await failure(() => new Response('x', { status: 204 })),
    defaultType: new Response('text').headers.get('content-type'),
    stream: await new Response(new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('a')); c.enqueue(new TextEncoder().encode('b')); c.close(); } })).text(),
  };
  const request = new Request('HTTPS://Example.COM:443/a/../b?q=1#frag', { method: 'post', body: 'payload', headers: { 'X-One': '1' } });
  out.request = {
    fields: [request.method, request.url, request.headers.get('x-one'), request.headers.get('content-type'), request.redirect, request.credentials, request.mode],
    body: await request.clone().text(),
    patch: new Request('https://example.com', { method: 'patch' }).method,
    getBody: await failure(() => new Request('https://example.com', { method: 'GET', body: 'x' })),
    badMethod: await failure(() => new Request('https://example.com', { method: 'CONNECT' })),
  };
  const cyclic = { name: 'root', when: new Date(0), pattern: /a+/gi, list: [1, 'two', { three: 3n }], map: new Map([['k', { v: 1 }]]), set: new Set([1, 2]), bytes: new Uint8Array([1, 2, 3]), nested: { deep: { deeper: [null, undefined, NaN, -0] } } };
  cyclic.self = cyclic;
  cyclic.list.push(cyclic.map);
  const clone = structuredClone(cyclic);
  out.clone = {
    shape: [clone !== cyclic, clone.self === clone, clone.list[3] === clone.map, clone.map.get('k').v, [...clone.set], clone.when.getTime(), String(clone.pattern), [...clone.bytes], typeof clone.list[2].three],
    nested: Object.is(clone.nested.deep.deeper[3], -0) && Number.isNaN(clone.nested.deep.deeper[2]) && clone.nested.deep.deeper[1] === undefined,
    fn: await failure(() => structuredClone({ f() {} })),
    symbol: await failure(() => structuredClone(Symbol('s'))),
    error: (() => { const e = structuredClone(new RangeError('bad')); return [e.constructor.name, e.message]; })(),
  };
  const blob = new Blob(['hello ', new Uint8Array([119, 111]), 'rld'], { type: 'TEXT/Plain' });
  const file = new File(['x'], 'name.txt', { lastModified: 5 });
  const form = new FormData();
  form.append('b', '1');
  form.append('a', new Blob(['data']), 'f.bin');
  form.append('b', '2');
  out.blob = {
    blob: [blob.size, blob.type, await blob.text(), await blob.slice(2, 7).text(), await blob.slice(-3).text()],
    file: [file.name, file.size, file.lastModified, file.type, file instanceof Blob],
    form: [[...form.keys()], form.getAll('b'), form.get('a').name, form.get('a') instanceof File, form.has('c')],
  };
  const encoded = new ReadableStream({ start(c) { c.enqueue('héllo '); c.enqueue('wörld'); c.close(); } })
    .pipeThrough(new TextEncoderStream()).pipeThrough(new TextDecoderStream());
  let text = '';
  for await (const chunk of encoded) text += chunk;
  const upper = new TransformStream({ transform(chunk, c) { c.enqueue(chunk.toUpperCase()); } });
  const writer = upper.writable.getWriter();
  writer.write('ab'); writer.write('cd'); writer.close();
  const parts = [];
  const reader = upper.readable.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
  out.streams = { text, parts };
  const target = new EventTarget();
  const seen = [];
  target.addEventListener('ping', (e) => seen.push(['first', e.type, e.detail ?? null, e.cancelable]));
  target.addEventListener('ping', (e) => { seen.push('second'); e.preventDefault(); }, { once: true });
  const dispatched = [target.dispatchEvent(new CustomEvent('ping', { detail: 7, cancelable: true })), target.dispatchEvent(new Event('ping'))];
  out.events = { seen, dispatched };
  const controller = new AbortController();
  const reasons = [];
  controller.signal.addEventListener('abort', () => reasons.push('event'));
  controller.abort();
  const timeout = AbortSignal.timeout(10);
  await new Promise((resolve) => setTimeout(resolve, 50));
  out.abort = {
    plain: [controller.signal.aborted, controller.signal.reason.name, reasons],
    reason: new AbortController().signal.reason,
    custom: (() => { const c = new AbortController(); c.abort('why'); return c.signal.reason; })(),
    timeout: [timeout.aborted, timeout.reason.name],
    any: AbortSignal.any([controller.signal]).aborted,
    throws: await failure(() => controller.signal.throwIfAborted()),
  };
  out.misc = [typeof performance.now(), performance.timeOrigin > 0, typeof crypto.randomUUID(), crypto.getRandomValues(new Uint8Array(4)).length, await failure(() => crypto.getRandomValues(new Uint8Array(70000)))];
  return out;
}"#;
    let (node, here) = super::tests::in_node_and_here(probe).await;
    assert_eq!(here, node, "edgehook:\n{here:#}\nNode:\n{node:#}");
}

/// crypto.subtle: keys Node made are imported here in every format and give back the same
/// exports; Node's signatures verify here and Node's ciphertexts decrypt here; edgehook's
/// signatures verify in Node and its ciphertexts decrypt there.
#[tokio::test(flavor = "multi_thread")]
async fn crypto_subtle_interoperates_with_node() {
    const ALGORITHMS: &str = r#"
const ALGORITHMS = {
  rsa: { import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5' } },
  pss: { import: { name: 'RSA-PSS', hash: 'SHA-256' }, sign: { name: 'RSA-PSS', saltLength: 32 } },
  p256: { import: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  p384: { import: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } },
  ed25519: { import: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
};
const DATA = new TextEncoder().encode('header.payload');
const b64 = (buffer) => Buffer.from(buffer).toString('base64');
const bytes = (text) => new Uint8Array(Buffer.from(text, 'base64'));
"#;
    let made = super::tests::node_script(&format!(
        r#"{ALGORITHMS}
(async () => {{
  const {{ subtle }} = globalThis.crypto;
  const keys = {{}};
  for (const [name, a] of Object.entries(ALGORITHMS)) {{
    const generate = name === 'rsa' || name === 'pss' ? {{ ...a.import, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }} : a.import;
    const pair = await subtle.generateKey(generate, true, ['sign', 'verify']);
    keys[name] = {{
      spki: b64(await subtle.exportKey('spki', pair.publicKey)),
      pkcs8: b64(await subtle.exportKey('pkcs8', pair.privateKey)),
      jwk: await subtle.exportKey('jwk', pair.publicKey),
      privateJwk: await subtle.exportKey('jwk', pair.privateKey),
      signature: b64(await subtle.sign(a.sign, pair.privateKey, DATA)),
    }};
  }}
  const hmac = await subtle.generateKey({{ name: 'HMAC', hash: 'SHA-256' }}, true, ['sign', 'verify']);
  keys.hmac = {{ raw: b64(await subtle.exportKey('raw', hmac)), signature: b64(await subtle.sign('HMAC', hmac, DATA)) }};
  for (const name of ['AES-GCM', 'AES-CBC']) {{
    const key = await subtle.generateKey({{ name, length: 256 }}, true, ['encrypt', 'decrypt']);
    const iv = globalThis.crypto.getRandomValues(new Uint8Array(name === 'AES-GCM' ? 12 : 16));
    keys[name] = {{ raw: b64(await subtle.exportKey('raw', key)), jwk: await subtle.exportKey('jwk', key), iv: b64(iv), ciphertext: b64(await subtle.encrypt({{ name, iv }}, key, DATA)) }};
  }}
  console.log(JSON.stringify(keys));
}})();"#
    ));
    let probe = format!(
        r#"{ALGORITHMS}
const KEYS = {made};
async function probe() {{
  const {{ subtle }} = globalThis.crypto;
  const webcrypto = require('crypto').webcrypto;
  const out = {{ ours: {{}}, sameObject: webcrypto.subtle === subtle }};
  for (const [name, a] of Object.entries(ALGORITHMS)) {{
    const k = KEYS[name];
    const publicKey = await subtle.importKey('spki', bytes(k.spki), a.import, true, ['verify']);
    const fromJwk = await subtle.importKey('jwk', k.jwk, a.import, true, ['verify']);
    const privateKey = await subtle.importKey('pkcs8', bytes(k.pkcs8), a.import, true, ['sign']);
    const privateFromJwk = await subtle.importKey('jwk', k.privateJwk, a.import, true, ['sign']);
    out[name] = {{
      key: [publicKey.type, publicKey.extractable, publicKey.algorithm.name, publicKey.usages, privateKey.type],
      verifiesNode: await subtle.verify(a.sign, publicKey, bytes(k.signature), DATA),
      verifiesByJwk: await subtle.verify(a.sign, fromJwk, bytes(k.signature), DATA),
      tampered: await subtle.verify(a.sign, publicKey, bytes(k.signature), new TextEncoder().encode('other')),
      spki: b64(await subtle.exportKey('spki', fromJwk)) === k.spki,
      jwk: await subtle.exportKey('jwk', publicKey),
      pkcs8: b64(await subtle.exportKey('pkcs8', privateFromJwk)) === k.pkcs8,
    }};
    out.ours[name] = b64(await subtle.sign(a.sign, privateKey, DATA));
  }}
  const hmac = await subtle.importKey('raw', bytes(KEYS.hmac.raw), {{ name: 'HMAC', hash: 'SHA-256' }}, true, ['sign', 'verify']);
  out.hmac = [b64(await subtle.sign('HMAC', hmac, DATA)) === KEYS.hmac.signature, await subtle.verify('HMAC', hmac, bytes(KEYS.hmac.signature), DATA), (await subtle.exportKey('jwk', hmac)).alg];
  for (const name of ['AES-GCM', 'AES-CBC']) {{
    const k = KEYS[name];
    const key = await subtle.importKey('raw', bytes(k.raw), name, true, ['encrypt', 'decrypt']);
    const fromJwk = await subtle.importKey('jwk', k.jwk, name, true, ['encrypt', 'decrypt']);
    const iv = bytes(k.iv);
    out[name] = {{
      decrypted: new TextDecoder().decode(await subtle.decrypt({{ name, iv }}, fromJwk, bytes(k.ciphertext))),
      sameCiphertext: b64(await subtle.encrypt({{ name, iv }}, key, DATA)) === k.ciphertext,
      jwk: await subtle.exportKey('jwk', key),
    }};
    out.ours[name] = b64(await subtle.encrypt({{ name, iv }}, key, new TextEncoder().encode('from edgehook')));
  }}
  out.digests = await Promise.all(['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512'].map(async (h) => b64(await subtle.digest(h, DATA))));
  try {{ await subtle.digest('MD5', DATA); out.md5 = 'no error'; }} catch (e) {{ out.md5 = e.name; }}
  try {{ await subtle.importKey('raw', new Uint8Array(3), 'AES-GCM', true, ['encrypt']); out.badLength = 'no error'; }} catch (e) {{ out.badLength = e.name; }}
  return out;
}}"#
    );
    let (mut node, mut here) = super::tests::in_node_and_here(&probe).await;
    let ours = here["ours"].take();
    node["ours"].take();
    assert_eq!(here, node, "edgehook:\n{here:#}\nNode:\n{node:#}");
    assert_eq!(here["p256"]["verifiesNode"], true, "{here:#}");
    let checked = super::tests::node_script(&format!(
        r#"{ALGORITHMS}
const KEYS = {made};
const OURS = {ours};
(async () => {{
  const {{ subtle }} = globalThis.crypto;
  const results = [];
  for (const [name, a] of Object.entries(ALGORITHMS)) {{
    const key = await subtle.importKey('spki', bytes(KEYS[name].spki), a.import, false, ['verify']);
    results.push(await subtle.verify(a.sign, key, bytes(OURS[name]), DATA));
  }}
  for (const name of ['AES-GCM', 'AES-CBC']) {{
    const key = await subtle.importKey('raw', bytes(KEYS[name].raw), name, false, ['decrypt']);
    results.push(new TextDecoder().decode(await subtle.decrypt({{ name, iv: bytes(KEYS[name].iv) }}, key, bytes(OURS[name]))) === 'from edgehook');
  }}
  console.log(JSON.stringify(results));
}})();"#
    ));
    assert_eq!(
        checked.trim(),
        "[true,true,true,true,true,true,true]",
        "Node checks edgehook's signatures and ciphertexts"
    );
}

/// http and https make their requests through fetch, with the function's egress: a GET read
/// as a stream of `data` events, a POST whose body is written in parts, the response's status,
/// headers and cookies as Node gives them, and Node's error codes for a refused destination
/// and a closed port.
#[tokio::test(flavor = "multi_thread")]
async fn http_requests_go_out_through_fetch() {
    let port = echo_origin().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let source = format!(
        r#"import http from 'node:http';
export const handler = async () => {{
  const lines = [];
  const get = (url) => new Promise((resolve) => {{
    const request = http.get(url, (response) => {{
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve(`${{response.statusCode}} ${{response.statusMessage}} ${{response.headers['content-type']}} ${{JSON.stringify(response.headers['set-cookie'])}} ${{body}}`));
    }});
    request.on('error', (e) => resolve(`error ${{e.code}}`));
  }});
  lines.push(await get('http://127.0.0.1:{port}/hello?x=1'));
  lines.push(await new Promise((resolve) => {{
    const request = http.request({{ hostname: '127.0.0.1', port: {port}, path: '/post', method: 'POST', headers: {{ 'Content-Type': 'text/plain', 'X-Part': 'yes' }} }}, (response) => {{
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve(`${{response.statusCode}} ${{Buffer.concat(chunks)}}`));
    }});
    request.on('socket', (socket) => lines.push(`socket ${{typeof socket.setKeepAlive}}`));
    request.write('one ');
    request.write(Buffer.from('two '));
    request.end('three');
  }}));
  lines.push(await get('http://127.0.0.1:{closed}/'));
  lines.push(await get('http://127.0.0.2:{port}/'));
  return {{ status: '200', body: lines.join('\n') }};
}};"#
    );
    let pool = pool(vec![function(
        &source,
        &[format!("127.0.0.1:{port}"), format!("127.0.0.1:{closed}")],
    )]);
    let body = body_of(&pool).await;
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines,
        [
            "200 OK text/plain [\"a=1\",\"b=2\"] GET /hello?x=1  ",
            "socket function",
            "201 POST /post text/plain one two three",
            "error ECONNREFUSED",
            "error ERR_EDGEHOOK_EGRESS_REFUSED",
        ],
        "{body}"
    );
}

/// An HTTP/1.1 origin on loopback that answers with what it received: method, path, the
/// request's content type and body (201 for a POST), and two cookies.
async fn echo_origin() -> u16 {
    loopback_origin(|received| {
        let body = format!(
            "{} {} {} {}",
            received.method,
            received.path,
            received.header("content-type"),
            String::from_utf8_lossy(&received.body)
        );
        let status = if received.method == "POST" { "201 Created" } else { "200 OK" };
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\nset-cookie: a=1\r\nset-cookie: b=2\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    })
    .await
}
