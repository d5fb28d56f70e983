// Makes an RSA key pair for the example: writes the public half as keys/jwks.json and prints a
// token signed by the private half, valid for an hour. `node examples/jwks-gate/make-keys.mjs`
import { generateKeyPairSync, createSign } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';

const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const kid = 'example-1';
const dir = new URL('./keys/', import.meta.url);
mkdirSync(dir, { recursive: true });
writeFileSync(new URL('jwks.json', dir), JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] }));
const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const unsigned = `${part({ alg: 'RS256', typ: 'JWT', kid })}.${part({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 })}`;
const signature = createSign('sha256').update(unsigned).sign(privateKey, 'base64url');
console.log(`${unsigned}.${signature}`);
