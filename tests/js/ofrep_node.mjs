// Evaluates flags through @openfeature/server-sdk + @openfeature/ofrep-provider (npm),
// a client flagsync did not write. Input on stdin: {baseUrl, flags: [{key, type}], contexts};
// output on stdout: [[{key, value, variant, reason, errorCode}, ...] per context].
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));

await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl: input.baseUrl, headers: input.headers || {} }));
const client = OpenFeature.getClient();
const defaults = { boolean: false, string: '', integer: 0, float: 0, json: {} };
const method = {
  boolean: 'getBooleanDetails', string: 'getStringDetails', integer: 'getNumberDetails',
  float: 'getNumberDetails', json: 'getObjectDetails',
};
const results = [];
for (const context of input.contexts) {
  const row = [];
  for (const flag of input.flags) {
    const d = await client[method[flag.type]](flag.key, defaults[flag.type], context);
    row.push({ key: flag.key, value: d.value, variant: d.variant ?? null, reason: d.reason, errorCode: d.errorCode ?? null });
  }
  results.push(row);
}
process.stdout.write(JSON.stringify(results));
await OpenFeature.close();
