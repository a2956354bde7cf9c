// A throwaway CA and a tunnel edge certificate for localhost, made with the openssl
// command line in dir: dir/ca.pem, dir/edge.pem, dir/edge.key (the tunnel tests' fixture).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export function makeEdgeCert(dir, caName = 'interop CA') {
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-days', '1', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', `/CN=${caName}`);
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'edge.key', '-out', 'edge.csr', '-subj', '/CN=localhost');
  writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\n');
  openssl('x509', '-req', '-in', 'edge.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-CAcreateserial', '-out', 'edge.pem', '-days', '1', '-extfile', 'ext.cnf');
  return {
    ca: path.join(dir, 'ca.pem'),
    cert: path.join(dir, 'edge.pem'),
    key: path.join(dir, 'edge.key'),
  };
}
