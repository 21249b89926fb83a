// client.mjs: drives lakehouse's /mcp with the official MCP TypeScript SDK (Client +
// StreamableHTTPClientTransport), for tests/e2e/test_mcp.py.
//
// Reads a plan as JSON on stdin:
//   {"url": "http://127.0.0.1:PORT/mcp", "key": "...", "protocolVersion"?: "...",
//    "steps": [{"op": "listTools"} | {"op": "ping"} | {"op": "listResources"} |
//              {"op": "readResource", "uri": "..."} |
//              {"op": "call", "name": "...", "arguments": {...}, "meta"?: {...}}],
//    "terminate"?: true}
// and prints one JSON document on stdout:
//   {"server": {name, version}, "protocolVersion", "sessionId", "instructions",
//    "steps": [{"ok": true, "value": ...} | {"ok": false, "error": "...", "code"?: n}],
//    "terminated"?: true}
// A step that throws (a JSON-RPC error, an HTTP error such as 429) is reported, not fatal,
// so a test can assert on each.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

async function runStep(client, step) {
  switch (step.op) {
    case 'ping':
      return client.ping();
    case 'listTools':
      return client.listTools();
    case 'listResources':
      return client.listResources();
    case 'readResource':
      return client.readResource({ uri: step.uri });
    case 'call': {
      const params = { name: step.name, arguments: step.arguments ?? {} };
      if (step.meta) params._meta = step.meta;
      return client.callTool(params);
    }
    default:
      throw new Error(`unknown op ${step.op}`);
  }
}

const plan = await readStdin();
const transport = new StreamableHTTPClientTransport(new URL(plan.url), {
  requestInit: { headers: { Authorization: `Bearer ${plan.key}` } },
});
const client = new Client({ name: 'lakehouse-e2e', version: '1.0.0' });
const out = { steps: [] };
try {
  await client.connect(transport);
} catch (e) {
  out.connectError = String(e?.message ?? e);
  out.connectCode = e?.code;
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}
out.server = client.getServerVersion();
out.instructions = client.getInstructions();
out.protocolVersion = transport.protocolVersion;
out.sessionId = transport.sessionId;
for (const step of plan.steps ?? []) {
  try {
    out.steps.push({ ok: true, value: await runStep(client, step) });
  } catch (e) {
    out.steps.push({ ok: false, error: String(e?.message ?? e), code: e?.code });
  }
}
if (plan.terminate) {
  await transport.terminateSession();
  out.terminated = true;
}
await client.close();
process.stdout.write(JSON.stringify(out) + '\n');
