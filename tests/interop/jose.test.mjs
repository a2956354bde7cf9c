// lib/jose against an independent JOSE implementation, npm `jose` (pinned): tokens that
// `jose` signs with RS256, PS256, ES256 and EdDSA verify in airlock (and tampered, expired,
// wrong-audience, alg-confused ones do not); tokens airlock signs verify in `jose` against
// the JWKS airlock publishes. The C side runs through tests/unit/lib/jose_driver.c.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHmac } from 'node:crypto';
import * as jose from 'jose';

const DRIVER = process.env.AIRLOCK_JOSE_DRIVER;
const ISS = 'https://idp.example.test';
const AUD = 'airlock';
const ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'];

const dir = mkdtempSync(path.join(tmpdir(), 'jose-interop-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

// Runs the driver; returns { ok, out } (out: the payload object, or the error line).
function cVerify(jwks, token) {
  const file = path.join(dir, `jwks-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(jwks));
  try {
    const out = execFileSync(DRIVER, ['verify', file, ISS, AUD, token], { encoding: 'utf8' });
    return { ok: true, out: JSON.parse(out) };
  } catch (e) {
    assert.equal(e.status, 1, `driver crashed: ${e.stderr}`);
    return { ok: false, out: e.stdout.trim() };
  }
}

async function keyFor(alg, kid) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { privateKey, jwk };
}

function claims(extra = {}) {
  return new jose.SignJWT({ groups: ['auditors'], ...extra })
    .setIssuer(ISS).setAudience(AUD).setSubject('alice').setIssuedAt().setExpirationTime('5m');
}

for (const alg of ALGS) {
  test(`${alg}: a token signed by npm jose verifies in airlock; tampering does not`, async () => {
    const { privateKey, jwk } = await keyFor(alg, `k-${alg}`);
    const other = await keyFor(alg, 'other');
    const jwks = { keys: [other.jwk, jwk] };
    const token = await claims().setProtectedHeader({ alg, kid: jwk.kid }).sign(privateKey);

    const good = cVerify(jwks, token);
    assert.ok(good.ok, good.out);
    assert.equal(good.out.sub, 'alice');
    assert.deepEqual(good.out.groups, ['auditors']);

    // payload changed after signing
    const [h, p, s] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...good.out, groups: ['admins'] })).toString('base64url');
    const bad = cVerify(jwks, `${h}.${forged}.${s}`);
    assert.equal(bad.ok, false);
    assert.match(bad.out, /signature does not verify/);

    // signed by another key under this kid
    const impostor = await claims().setProtectedHeader({ alg, kid: jwk.kid }).sign(other.privateKey);
    assert.match(cVerify(jwks, impostor).out, /signature does not verify/);

    // unknown kid: the driver says NOTFOUND (the server refetches the JWKS on that)
    const unknown = await claims().setProtectedHeader({ alg, kid: 'rotated-away' }).sign(privateKey);
    assert.match(cVerify(jwks, unknown).out, /no .* key with kid "rotated-away"/);
  });
}

test('claims: expired, not yet valid, wrong issuer, wrong audience are refused', async () => {
  const { privateKey, jwk } = await keyFor('ES256', 'c');
  const jwks = { keys: [jwk] };
  const hdr = { alg: 'ES256', kid: 'c' };
  const now = Math.floor(Date.now() / 1000);
  const expired = await new jose.SignJWT({}).setIssuer(ISS).setAudience(AUD)
    .setExpirationTime(now - 600).setProtectedHeader(hdr).sign(privateKey);
  assert.match(cVerify(jwks, expired).out, /expired/);
  const future = await claims().setNotBefore(now + 600).setProtectedHeader(hdr).sign(privateKey);
  assert.match(cVerify(jwks, future).out, /not valid for another/);
  const wrongIss = await claims().setIssuer('https://evil.test').setProtectedHeader(hdr).sign(privateKey);
  assert.match(cVerify(jwks, wrongIss).out, /issuer/);
  const wrongAud = await claims().setAudience('someone-else').setProtectedHeader(hdr).sign(privateKey);
  assert.match(cVerify(jwks, wrongAud).out, /audience/);
  const noExp = await new jose.SignJWT({}).setIssuer(ISS).setAudience(AUD)
    .setProtectedHeader(hdr).sign(privateKey);
  assert.match(cVerify(jwks, noExp).out, /no "exp"/);
});

test('alg confusion: HS256 keyed with the RSA public key, and alg none, are refused', async () => {
  const { jwk } = await keyFor('RS256', 'r');
  const jwks = { keys: [jwk] };
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = enc({ iss: ISS, aud: AUD, sub: 'admin', exp: now + 300 });
  for (const secret of [JSON.stringify(jwk), jwk.n]) {
    const head = enc({ alg: 'HS256', kid: 'r' });
    const mac = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
    assert.match(cVerify(jwks, `${head}.${body}.${mac}`).out, /algorithm "HS256" is not accepted/);
  }
  const unsecured = new jose.UnsecuredJWT({ sub: 'admin' }).setIssuer(ISS).setAudience(AUD)
    .setExpirationTime('5m').encode();
  // `jose` writes alg none with an empty signature; with any signature it is refused too
  assert.equal(cVerify(jwks, unsecured).ok, false);
  assert.match(cVerify(jwks, `${unsecured}c2ln`).out, /algorithm "none" is not accepted/);
});

for (const alg of ALGS) {
  test(`${alg}: a token airlock signs verifies in npm jose against airlock's JWKS`, async () => {
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: ISS, aud: AUD, sub: 'agent_1', session_id: 'sesn_1', exp: now + 300 };
    const out = JSON.parse(execFileSync(DRIVER, ['sign', alg, `kid-${alg}`, JSON.stringify(payload)],
      { encoding: 'utf8' }));
    assert.equal(out.jwks.keys[0].kid, `kid-${alg}`);
    const { payload: got, protectedHeader } = await jose.jwtVerify(out.token,
      jose.createLocalJWKSet(out.jwks), { issuer: ISS, audience: AUD, algorithms: [alg] });
    assert.deepEqual(got, payload);
    assert.equal(protectedHeader.alg, alg);
    assert.equal(protectedHeader.kid, `kid-${alg}`);
    // and npm jose refuses it once a byte of the payload changes
    const [h, , s] = out.token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...payload, sub: 'agent_2' })).toString('base64url');
    await assert.rejects(jose.jwtVerify(`${h}.${forged}.${s}`, jose.createLocalJWKSet(out.jwks)),
      { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  });
}
