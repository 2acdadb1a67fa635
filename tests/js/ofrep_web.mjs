// A browser page using @openfeature/web-sdk + @openfeature/ofrep-web-provider (npm) the way
// a front end would: bulk evaluation, cached flags, changes pushed over the eventStreams SSE.
// Query: ?base=<server url>&user=<targeting key>&flags=<JSON [{key, type}]>
import { OpenFeature, ClientProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

const params = new URLSearchParams(location.search);
const flags = JSON.parse(params.get('flags'));
const status = document.getElementById('status');
const method = {
  boolean: 'getBooleanDetails', string: 'getStringDetails', integer: 'getNumberDetails',
  float: 'getNumberDetails', json: 'getObjectDetails',
};
const defaults = { boolean: false, string: '', integer: 0, float: 0, json: {} };
let changes = 0;

function render() {
  const client = OpenFeature.getClient();
  const out = {};
  for (const flag of flags) {
    const d = client[method[flag.type]](flag.key, defaults[flag.type]);
    out[flag.key] = { value: d.value, variant: d.variant ?? null, errorCode: d.errorCode ?? null };
  }
  document.getElementById('flags').textContent = JSON.stringify(out);
  status.textContent = `ready; changes: ${changes}`;
}

// No polling: a change can only arrive through the SSE event stream.
const provider = new OFREPWebProvider({ baseUrl: params.get('base'), pollInterval: 0 });
OpenFeature.addHandler(ClientProviderEvents.ConfigurationChanged, () => { changes += 1; render(); });
OpenFeature.addHandler(ClientProviderEvents.Error, (e) => { status.textContent = `error: ${e?.message}`; });
await OpenFeature.setContext({ targetingKey: params.get('user') });
await OpenFeature.setProviderAndWait(provider);
render();
