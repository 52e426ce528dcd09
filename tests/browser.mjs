// What the browser tests' scripts share (tests/console/*.mjs, tests/superset/*.mjs):
// Debian's Chromium started so that no request can leave the machine, and the time-based
// codes (RFC 6238) a person's authenticator app would show. playwright-core is each test
// package's own (its node_modules), so the scripts pass their `chromium` in.
import { createHmac } from 'node:crypto';

// Chromium headless, every host name but 127.0.0.1 unresolvable, no background traffic.
export function launchChromium(chromium) {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
}

function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of text.replace(/[\s=]/g, '').toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

// The six-digit code of a base32 secret at a 30-second time step.
export function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return String(value).padStart(6, '0');
}

export const nowStep = () => Math.floor(Date.now() / 1000 / 30);
