// A real OpenID Connect provider for the end-to-end tests: panva's certified
// `oidc-provider` (npm), served over HTTPS on loopback with a certificate the test
// makes. Authorization code flow with PKCE required, one confidential client, and
// accounts whose `groups` claim the appliance maps to roles and teams.
//
// node oidc-provider.mjs PORT CERT KEY CLIENT_ID CLIENT_SECRET REDIRECT_URI
// prints "issuer https://127.0.0.1:PORT" once it listens.
import fs from 'node:fs';
import https from 'node:https';
import Provider from 'oidc-provider';

const [port, certFile, keyFile, clientId, clientSecret, redirectUri] = process.argv.slice(2);

// Who can sign in, with what groups. The login form here is oidc-provider's own
// development interaction (it asks for a login name); passwords are the provider's
// business, not the appliance's.
const accounts = {
  olga: { name: 'Olga Auditor', email: 'olga@example.org', groups: ['roomscribe-auditors', 'cardiology'] },
  otto: { name: 'Otto Outsider', email: 'otto@example.org', groups: ['canteen'] },
};

const issuer = `https://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email'],
    groups: ['groups'],
  },
  // The appliance reads the claims from the ID token.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['roomscribe-test-only-cookie-key'] },
  async findAccount(ctx, sub) {
    const a = accounts[sub];
    if (!a) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, preferred_username: sub, name: a.name, email: a.email, groups: a.groups };
      },
    };
  },
});
provider.proxy = false;

const server = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) },
  provider.callback());
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`issuer ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
