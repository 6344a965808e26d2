// An erasured client in Node with @grpc/grpc-js and @grpc/proto-loader. It submits an erasure
// for a sandbox demo subject, watches it to STATE_COMPLETED (dropping the stream part way on
// purpose and resuming where it left off), and sends a malformed Submit to show how the field
// violations and the ErrorInfo reason are read from the error's details.
//
//   npm ci && node erasure_client.js [ADDR]      (ADDR defaults to ERASURED_ADDR or 127.0.0.1:50051)
//
// It exits non-zero if anything it checks does not hold.
'use strict';

const crypto = require('node:crypto');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const repo = path.resolve(__dirname, '..', '..');
// The three include dirs: erasured's own protos, the protovalidate rules they import, and the
// google/rpc definitions of the error details.
const includeDirs = [
  path.join(repo, 'proto'),
  path.join(repo, 'third_party', 'protovalidate'),
  path.join(repo, 'third_party', 'googleapis'),
];

// keepCase: true keeps the field names of the .proto files (request_id, account_id, ...).
// Without it proto-loader renames every field to camelCase, and a request written with the
// .proto's snake_case keys loses them silently: protobufjs drops keys it does not know, and the
// server sees empty fields. With keepCase the reverse holds: write snake_case keys, not camelCase.
// longs: String keeps int64 revisions exact; enums: String gives 'STATE_COMPLETED', not 8;
// defaults: true fills unset fields, so an absent field reads as '' or 0 rather than undefined.
const loaderOptions = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs };

const ACCOUNT = '1234';
const SUBJECT = { customer_id: 'DEMO-CUST-1' }; // the Python and Go examples erase other subjects
const DEADLINE_MS = 3 * 60 * 1000;

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

// loadService returns the ErasureService client constructor.
function loadService() {
  const def = protoLoader.loadSync('erasure/v1/service.proto', loaderOptions);
  return grpc.loadPackageDefinition(def).erasure.v1.ErasureService;
}

// loadErrorTypes reads google.rpc.Status and the standard error details with protobufjs (which
// proto-loader is built on): proto-loader makes service clients, not message decoders.
function loadErrorTypes() {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const dir of includeDirs) {
      const p = path.join(dir, target);
      if (require('node:fs').existsSync(p)) return p;
    }
    return target; // google/protobuf/*.proto: protobufjs has them built in
  };
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  return root;
}

// errorDetails decodes the google.rpc.Status that grpc sends in the grpc-status-details-bin
// trailer, and returns its details by message name ('google.rpc.BadRequest', ...).
function errorDetails(err, rpcTypes) {
  const raw = err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  if (!raw) return {};
  const status = rpcTypes.lookupType('google.rpc.Status').decode(raw);
  const details = {};
  for (const any of status.details) {
    const name = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    details[name] = rpcTypes.lookupType(name).decode(any.value);
  }
  return details;
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + 30000 }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

// watch streams the erasure's changes from startRevision and hands each event to onEvent, until
// onEvent returns 'stop' (the stream is then cancelled: a deliberate disconnect) or 'done', or
// throws (a failed check).
function watch(client, name, startRevision, onEvent) {
  return new Promise((resolve, reject) => {
    const call = client.Watch({ name, start_revision: String(startRevision) });
    let finished = false;
    const finish = (how) => {
      if (finished) return;
      finished = true;
      call.cancel();
      resolve(how);
    };
    call.on('data', (res) => {
      if (finished) return;
      if (res.events.length === 0) {
        console.log(`  heartbeat: everything up to revision ${res.progress_revision} was sent`);
      }
      for (const ev of res.events) {
        let how;
        try {
          how = onEvent(ev);
        } catch (err) {
          // A failed check: end the call and fail the watch (a throw here would escape the promise).
          finished = true;
          call.cancel();
          return reject(err);
        }
        if (how) return finish(how); // the rest of this batch comes again after a resume
      }
    });
    call.on('error', (err) => {
      if (finished && err.code === grpc.status.CANCELLED) return; // our own cancel
      finished = true;
      reject(err);
    });
    call.on('end', () => finish('ended'));
  });
}

// changedSince polls Status until the erasure's revision (that of its latest change) passes rev,
// and returns it.
async function changedSince(client, name, rev) {
  for (;;) {
    const r = BigInt((await unary(client, 'Status', { name })).erasure.revision);
    if (r > rev) return r;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function submitAndWatch(client) {
  const requestId = crypto.randomUUID();
  // snake_case keys, as in the .proto: they arrive because of keepCase (see loaderOptions).
  const submitted = await unary(client, 'Submit', {
    request_id: requestId,
    account_id: ACCOUNT,
    subject: SUBJECT,
    external_ref: 'NODE-EXAMPLE',
  });
  const erasure = submitted.erasure;
  console.log(`Submit: ${erasure.name} ${erasure.state} (request_id ${requestId}, revision ${erasure.revision}` +
    `${submitted.deduplicated ? ', joined an open erasure of the same subject' : ''})`);
  check(erasure.name.startsWith('erasures/'), 'Submit returns the erasure name');
  check(erasure.account_id === ACCOUNT, 'the snake_case account_id reached the server');
  check(erasure.external_ref === 'NODE-EXAMPLE' || submitted.deduplicated, 'the snake_case external_ref reached the server');

  // Start from the Submit's own revision, so that the first states are seen even if they passed
  // before the Watch began. The first event is then the change the Submit made: it created the
  // erasure, so its previous_state is STATE_UNSPECIFIED (when the Submit joined an open erasure,
  // it is the state before that erasure's latest change). Every later event's previous_state is
  // the state of the event before it, across the resume too: a lost change breaks that chain.
  const seen = [];
  let last = BigInt(erasure.revision) - 1n;
  let prev = null;
  const onEvent = (ev) => {
    const rev = BigInt(ev.revision);
    const e = ev.erasure;
    check(rev > last, `revision ${rev} follows ${last} (strictly increasing, none repeated)`);
    if (prev === null) {
      check(ev.revision === erasure.revision, `the first event is the Submit's change at revision ${erasure.revision}, not ${rev}`);
      check(e.state === erasure.state, `the first event shows the Submit's state ${erasure.state}, not ${e.state}`);
      check(submitted.deduplicated || ev.previous_state === 'STATE_UNSPECIFIED',
        `the change that created the erasure has previous_state STATE_UNSPECIFIED, not ${ev.previous_state}`);
    } else {
      check(ev.previous_state === prev.erasure.state,
        `revision ${rev} has previous_state ${ev.previous_state}, but the change before it (revision ${prev.revision}) left ${prev.erasure.state}: a change was lost`);
    }
    last = rev;
    prev = ev;
    seen.push(rev);
    console.log(`  revision ${rev}: ${ev.previous_state} -> ${e.state}${e.blocked_on !== 'BLOCKED_ON_UNSPECIFIED' ? ` (${e.blocked_on})` : ''}`);
    if (e.state === 'STATE_COMPLETED') return 'done';
    check(!['STATE_FAILED', 'STATE_CANCELLED', 'STATE_REJECTED'].includes(e.state), `the erasure ends COMPLETED, not ${e.state}`);
    return undefined;
  };

  console.log(`Watch ${erasure.name} from revision ${last + 1n}; it is dropped on purpose after two changes`);
  let how = await watch(client, erasure.name, last + 1n, (ev) => onEvent(ev) || (seen.length === 2 ? 'stop' : undefined));
  let resumes = 0;
  while (how !== 'done') {
    check(resumes < 5, 'completion within 5 resumes');
    resumes++;
    let resume = onEvent;
    if (how === 'stop') {
      // Wait until the erasure changed while no one watched: the resumed watch must then replay
      // that history, starting at or before the revision Status reports.
      const changed = await changedSince(client, erasure.name, last);
      console.log(`  disconnected on purpose; Status shows revision ${changed} > ${last}, so the resume must replay it`);
      let first = true;
      resume = (ev) => {
        check(!first || BigInt(ev.revision) <= changed,
          `the resumed watch starts at revision ${ev.revision}, after ${changed} (which Status reported): history was lost`);
        first = false;
        return onEvent(ev);
      };
    } else {
      console.log(`  disconnected (${how})`);
    }
    console.log(`  resuming with start_revision = last seen + 1 = ${last + 1n}`);
    how = await watch(client, erasure.name, last + 1n, resume);
  }
  check(resumes >= 1, 'the watch was resumed at least once');
  check(new Set(seen.map(String)).size === seen.length, 'no revision was seen twice');
  console.log(`Watch: STATE_COMPLETED after ${seen.length} changes and ${resumes} resume(s), revisions ${seen.join(', ')}`);

  const final = (await unary(client, 'Status', { name: erasure.name })).erasure;
  check(final.state === 'STATE_COMPLETED', 'Status agrees: STATE_COMPLETED');
  check(final.receipt !== null, 'a COMPLETED erasure carries its signed receipt');
  console.log(`Status: ${final.state}, receipt signed by ${final.receipt.key_id || '(key id not shown)'}`);
}

async function malformedSubmit(client, rpcTypes) {
  console.log('Submit with a bad request_id, account_id and e-mail:');
  try {
    await unary(client, 'Submit', { request_id: 'nope', account_id: '12-34', subject: { email: 'not-an-email' } });
  } catch (err) {
    check(err.code === grpc.status.INVALID_ARGUMENT, `INVALID_ARGUMENT, not ${grpc.status[err.code]}`);
    const details = errorDetails(err, rpcTypes);
    const info = details['google.rpc.ErrorInfo'];
    const bad = details['google.rpc.BadRequest'];
    check(info && bad, 'the error carries an ErrorInfo and a BadRequest');
    console.log(`  ${grpc.status[err.code]}, ErrorInfo reason ${info.reason} (domain ${info.domain})`);
    for (const v of bad.field_violations) console.log(`  field ${v.field}: ${v.description} [${v.reason}]`);
    check(info.reason === 'INVALID_REQUEST', 'ErrorInfo reason INVALID_REQUEST');
    const fields = bad.field_violations.map((v) => v.field).sort();
    for (const want of ['account_id', 'request_id', 'subject.email']) {
      check(fields.includes(want), `a field violation for ${want} (got ${fields.join(', ')})`);
    }
    return;
  }
  throw new Error('check failed: a malformed Submit was accepted');
}

async function main() {
  const addr = process.argv[2] || process.env.ERASURED_ADDR || '127.0.0.1:50051';
  const ErasureService = loadService();
  const rpcTypes = loadErrorTypes();
  const client = new ErasureService(addr, grpc.credentials.createInsecure()); // the sandbox: loopback, no TLS
  await new Promise((resolve, reject) =>
    client.waitForReady(Date.now() + 10000, (err) => (err ? reject(err) : resolve())));
  const timer = setTimeout(() => {
    console.error(`FAIL: not done within ${DEADLINE_MS / 1000}s`);
    process.exit(1);
  }, DEADLINE_MS);
  await malformedSubmit(client, rpcTypes);
  await submitAndWatch(client);
  clearTimeout(timer);
  client.close();
  console.log('node example: all checks passed');
}

main().catch((err) => {
  console.error(`FAIL: ${err.message}`);
  process.exit(1);
});
