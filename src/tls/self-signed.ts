import { randomBytes, webcrypto, X509Certificate as NodeCertificate } from 'node:crypto';
import { isIP } from 'node:net';
import { mkdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';
import { writeWhole } from '../io/durable-file.ts';

type Crypto = webcrypto.Crypto;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** The files of the development certificate authority and the server certificate it signed. */
export interface SelfSignedFiles {
  caCert: string;
  cert: string;
  key: string;
  /** True when this start made a new server certificate (new host names, or none yet). */
  created: boolean;
}

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const signing = { name: 'ECDSA', hash: 'SHA-256' } as const;
const day = 86_400_000;
/** Browsers and Apple platforms refuse server certificates valid longer than this. */
const serverValidityDays = 397;
/** A certificate this close to expiry is replaced at start. */
const renewWithinDays = 30;

/** The names a development certificate covers when none are configured: this machine, by name and loopback address. */
export function defaultHosts(): string[] {
  return [...new Set(['localhost', '127.0.0.1', '::1', hostname().toLowerCase()])];
}

/**
 * A local certificate authority (made once, kept under `directory`, so
 * clients trust it once) and a server certificate it signs for `hosts`,
 * made again whenever the host names change or it nears expiry. Keys are
 * EC P-256, written with mode 0600.
 */
export async function ensureSelfSigned(directory: string, hosts: readonly string[]): Promise<SelfSignedFiles> {
  const x509 = await loadX509();
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const files = { caCert: join(directory, 'ca.crt'), caKey: join(directory, 'ca.key'), cert: join(directory, 'server.crt'), key: join(directory, 'server.key') };
  const crypto: Crypto = webcrypto;
  let ca = await readPair(x509, files.caCert, files.caKey, crypto);
  if (ca === undefined) {
    const keys = (await crypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as CryptoKeyPair;
    const certificate = await x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: serial(),
        name: `CN=Berth development CA (${hostname()}), O=Berth`,
        notBefore: new Date(Date.now() - day),
        notAfter: new Date(Date.now() + 10 * 365 * day),
        keys,
        signingAlgorithm: signing,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        ],
      },
      crypto,
    );
    await writeWhole(files.caKey, await pemOfKey(x509, keys.privateKey, crypto), 0o600);
    await writeWhole(files.caCert, certificate.toString('pem'), 0o644);
    ca = { certificate, privateKey: keys.privateKey };
  }
  if (await covers(files.cert, hosts)) return { caCert: files.caCert, cert: files.cert, key: files.key, created: false };

  const keys = (await crypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: `CN=${hosts[0] ?? 'localhost'}`,
      issuer: ca.certificate.subject,
      notBefore: new Date(Date.now() - day),
      notAfter: new Date(Date.now() + serverValidityDays * day),
      publicKey: keys.publicKey,
      signingKey: ca.privateKey,
      signingAlgorithm: signing,
      extensions: [
        new x509.SubjectAlternativeNameExtension(hosts.map((host) => ({ type: isIP(host) === 0 ? 'dns' : 'ip', value: host }))),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(ca.certificate, false, crypto),
      ],
    },
    crypto,
  );
  await writeWhole(files.key, await pemOfKey(x509, keys.privateKey, crypto), 0o600);
  // The whole chain, so clients that trust the CA can verify it from the handshake alone.
  await writeWhole(files.cert, `${certificate.toString('pem')}\n${ca.certificate.toString('pem')}\n`, 0o644);
  return { caCert: files.caCert, cert: files.cert, key: files.key, created: true };
}

/** How to make docker, podman/skopeo/buildah and containerd trust the CA, for the addresses clients use. */
export function trustInstructions(caCert: string, addresses: readonly string[]): string {
  const address = addresses[0] ?? 'localhost:5000';
  return [
    `Berth serves HTTPS with a certificate from its own development CA: ${caCert}`,
    `Clients must trust that CA once (replace ${address} with HOST:PORT as you name the registry; omit :443):`,
    `  docker:      sudo mkdir -p /etc/docker/certs.d/${address} && sudo cp ${caCert} /etc/docker/certs.d/${address}/ca.crt`,
    `  podman, skopeo, buildah:`,
    `               sudo mkdir -p /etc/containers/certs.d/${address} && sudo cp ${caCert} /etc/containers/certs.d/${address}/ca.crt`,
    `               (rootless: ~/.config/containers/certs.d/${address}/ca.crt; or --cert-dir DIR holding ca.crt)`,
    `  containerd:  /etc/containerd/certs.d/${address}/hosts.toml containing`,
    `                 server = "https://${address}"`,
    `                 [host."https://${address}"]`,
    `                   ca = "${caCert}"`,
    `               (containerd's CRI registry config_path must be /etc/containerd/certs.d; ctr: --hosts-dir /etc/containerd/certs.d)`,
    `  whole system (Debian, Ubuntu): sudo cp ${caCert} /usr/local/share/ca-certificates/berth-dev-ca.crt && sudo update-ca-certificates`,
    `               (restart docker or containerd afterwards)`,
  ].join('\n');
}

/**
 * @peculiar/x509 needs a Reflect metadata polyfill (its dependency
 * injection uses it); both load only when a certificate is made, so a
 * server without `tls.selfSigned` never carries them.
 */
async function loadX509(): Promise<typeof X509> {
  await import('reflect-metadata');
  return import('@peculiar/x509');
}

async function readPair(x509: typeof X509, certPath: string, keyPath: string, crypto: Crypto): Promise<{ certificate: X509.X509Certificate; privateKey: CryptoKey } | undefined> {
  let certPem: string;
  let keyPem: string;
  try {
    [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const privateKey = await crypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(keyPem), ecdsa, false, ['sign']);
  return { certificate: new x509.X509Certificate(certPem), privateKey };
}

/** Whether the server certificate at `path` exists, names every host and is not about to expire. */
async function covers(path: string, hosts: readonly string[]): Promise<boolean> {
  let certificate: NodeCertificate;
  try {
    certificate = new NodeCertificate(await readFile(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  if (new Date(certificate.validTo).getTime() - Date.now() < renewWithinDays * day) return false;
  return hosts.every((host) => (isIP(host) === 0 ? certificate.checkHost(host) !== undefined : certificate.checkIP(host) !== undefined));
}

async function pemOfKey(x509: typeof X509, key: CryptoKey, crypto: Crypto): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

function serial(): string {
  // Positive: the top bit clear.
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString('hex');
}
