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

// A customer CA for inner TLS (the reference's rules: critical CA:TRUE, keyCertSign, SKI)
// and a gateway certificate for *.<domain> signed by it, made in dir: <name>-ca.pem
// (uploaded to /v1/tunnels/{id}/certificates), <name>-gw.pem and <name>-gw.key (the
// gateway's tls.cert_file and tls.key_file).
// gwKey: the gateway key's openssl -newkey arguments (default ECDSA P-256).
export function makeInnerCert(dir, domain, name = 'inner',
  gwKey = ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']) {
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  writeFileSync(path.join(dir, 'min.cnf'), '[req]\ndistinguished_name=dn\n[dn]\n');
  openssl('req', '-x509', '-config', 'min.cnf', '-newkey', 'ec', '-pkeyopt',
    'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-keyout', `${name}-ca.key`,
    '-out', `${name}-ca.pem`, '-subj', `/CN=${name} customer CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash');
  openssl('req', '-config', 'min.cnf', '-newkey', ...gwKey,
    '-nodes', '-keyout', `${name}-gw.key`, '-out', `${name}-gw.csr`, '-subj', `/CN=*.${domain}`);
  writeFileSync(path.join(dir, `${name}-gw.cnf`), [
    `subjectAltName=DNS:*.${domain}`,
    'extendedKeyUsage=serverAuth',
    'authorityKeyIdentifier=keyid',
    '',
  ].join('\n'));
  openssl('x509', '-req', '-in', `${name}-gw.csr`, '-CA', `${name}-ca.pem`, '-CAkey',
    `${name}-ca.key`, '-CAcreateserial', '-out', `${name}-gw.pem`, '-days', '1',
    '-extfile', `${name}-gw.cnf`);
  return {
    ca: path.join(dir, `${name}-ca.pem`),
    cert: path.join(dir, `${name}-gw.pem`),
    key: path.join(dir, `${name}-gw.key`),
  };
}
