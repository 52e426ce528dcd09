// A real OpenID Connect provider for the single sign-on tests: oidc-provider (OpenID
// certified), with its development sign-in pages (any password; the login names the
// account). Started by tests/oidc/conftest.py:
//
//   node tests/oidc/provider.mjs '{"port": 41555, "clients": [...], "accounts": {...}}'
//
// `accounts` maps an account id (the login typed, which becomes `sub`) to its claims
// (email, email_verified, name, siret, ...). Consent is granted at once for the scopes
// asked, as an organisation's provider does for its own services. Prints "ready" once
// it listens.
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  clients: config.clients,
  pkce: { required: () => true, methods: ['S256'] },
  scopes: ['openid', 'email', 'profile'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'siret', 'usual_name', 'given_name'] },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  cookies: { keys: ['hypervision-test-cookie-key'] },
  ttl: { AuthorizationCode: 60, IdToken: 300, AccessToken: 300, Session: 3600, Interaction: 600, Grant: 3600 },
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile');
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'siret']);
    await grant.save();
    return grant;
  },
});
provider.proxy = false;
provider.listen(config.port, '127.0.0.1', () => console.log('ready'));
