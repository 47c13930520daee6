import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, linkSync, lstatSync, mkdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ControlPathError,
  ControlReplyError,
  controlSocketPath,
  MAX_REQUEST_BYTES,
  MAX_SOCKET_PATH_BYTES,
  parseControlRequest,
  sendControl,
  serveControl,
  type ControlReply,
  type ControlRequest,
  type ControlServer,
} from '../../src/effects/controlSocket.js';
import { processGone } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const servers: ControlServer[] = [];
const rawServers: Server[] = [];
const rawSockets: Socket[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  for (const socket of rawSockets.splice(0)) socket.destroy();
  await Promise.all(rawServers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  const pids = children.map((child) => child.pid!);
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exit = once(child, 'exit');
      child.kill('SIGKILL');
      await exit;
    }
  }
  expect(pids.filter((pid) => !processGone(pid))).toEqual([]);
});

/** A server whose handler records each request and answers with what it did. */
async function serve(dir: string, options?: { idleTimeoutMs?: number }) {
  const seen: ControlRequest[] = [];
  const server = await serveControl(
    dir,
    (request) => {
      seen.push(request);
      return { ok: true, message: `did ${request.command}`, state: { seen: seen.length } };
    },
    options,
  );
  servers.push(server);
  return { server, seen };
}

async function serveWith(dir: string, handle: Parameters<typeof serveControl>[1], options?: { idleTimeoutMs?: number }) {
  const server = await serveControl(dir, handle, options);
  servers.push(server);
  return server;
}

/** Writes `bytes` as they are (no framing added) and collects all the server writes until the connection closes. */
function rawExchange(path: string, bytes: string | Buffer, options: { end?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let received = '';
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error('the server neither replied nor closed within 4 s'));
    }, 4_000);
    socket.on('connect', () => {
      if (bytes.length > 0) socket.write(bytes);
      if (options.end) socket.end();
    });
    socket.on('data', (chunk) => (received += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(guard);
      resolve(received);
    });
  });
}

/** The one reply line a raw exchange got. */
function onlyReply(received: string): ControlReply {
  expect(received.endsWith('\n')).toBe(true);
  const lines = received.slice(0, -1).split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as ControlReply;
}

/** A plain net server at the control path, standing in for a scheduler that misbehaves. */
async function rawServerAt(dir: string, onConnection: (socket: Socket) => void): Promise<void> {
  mkdirSync(join(dir, '.warden'), { recursive: true });
  const server = createServer((socket) => {
    rawSockets.push(socket);
    onConnection(socket);
  });
  rawServers.push(server);
  await new Promise<void>((resolve) => server.listen(controlSocketPath(dir), resolve));
}

/** Listens on the control path in a child process, then SIGKILLs it: a dead holder's leftover socket. */
async function leaveDeadSocket(dir: string): Promise<void> {
  const path = controlSocketPath(dir);
  mkdirSync(join(dir, '.warden'), { recursive: true });
  const script = "require('node:net').createServer().listen(process.argv[1], () => console.log('listening'))";
  const child = spawn(process.execPath, ['-e', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  expect(line).toBe('listening');
  const exit = once(child, 'exit');
  child.kill('SIGKILL');
  await exit;
  expect(processGone(child.pid!)).toBe(true);
  expect(lstatSync(path).isSocket()).toBe(true);
}

describe('parseControlRequest', () => {
  it.each([
    ['{"command":"pause"}', { command: 'pause' }],
    ['{"command":"pause","reason":"deploy"}', { command: 'pause', reason: 'deploy' }],
    ['{"command":"resume"}', { command: 'resume' }],
    [' {"command":"kick"} \r', { command: 'kick' }],
  ])('reads %j', (line, request) => {
    expect(parseControlRequest(line)).toEqual(request);
  });

  it.each([
    ['', /^empty request/],
    ['hello', /^request is not JSON: /],
    ['{"command":', /^request is not JSON: /],
    ['[]', /^bad request: \(root\): .*expected object/],
    ['null', /^bad request: /],
    ['{}', /^bad request: command: /],
    ['{"command":"explode"}', /^unknown command "explode" \(expected pause, resume, kick\)$/],
    ['{"command":7}', /^bad request: command: /],
    ['{"command":"kick","extra":1}', /^bad request: .*"extra"/],
    ['{"command":"pause","reason":3}', /^bad request: reason: .*expected string/],
  ])('refuses %j with a one-line message', (line, message) => {
    let thrown: unknown;
    try {
      parseControlRequest(line);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(Error);
    expect((thrown as Error).message).toMatch(message);
    expect((thrown as Error).message).not.toContain('\n');
  });
});

describe('round trip', () => {
  it('delivers each command to the handler and brings its reply back', async () => {
    const dir = tempDir();
    const { seen } = await serve(dir);
    expect(await sendControl(dir, { command: 'pause', reason: 'deploy at 10' })).toEqual({ ok: true, message: 'did pause', state: { seen: 1 } });
    expect(await sendControl(dir, { command: 'pause' })).toEqual({ ok: true, message: 'did pause', state: { seen: 2 } });
    expect(await sendControl(dir, { command: 'resume' })).toEqual({ ok: true, message: 'did resume', state: { seen: 3 } });
    expect(await sendControl(dir, { command: 'kick' })).toEqual({ ok: true, message: 'did kick', state: { seen: 4 } });
    expect(seen).toEqual([{ command: 'pause', reason: 'deploy at 10' }, { command: 'pause' }, { command: 'resume' }, { command: 'kick' }]);
  });

  it('passes an error reply from the handler through as it is', async () => {
    const dir = tempDir();
    await serveWith(dir, () => ({ ok: false, error: 'already paused' }));
    expect(await sendControl(dir, { command: 'pause' })).toEqual({ ok: false, error: 'already paused' });
  });

  it('answers a client that ends its side instead of sending a newline', async () => {
    const dir = tempDir();
    const { server } = await serve(dir);
    expect(onlyReply(await rawExchange(server.path, '{"command":"kick"}', { end: true }))).toMatchObject({ ok: true, message: 'did kick' });
  });

  it('serves many concurrent clients, good and bad, each its own answer', async () => {
    const dir = tempDir();
    let running = 0;
    let most = 0;
    const server = await serveWith(dir, async (request) => {
      most = Math.max(most, ++running);
      await new Promise((resolve) => setTimeout(resolve, 20));
      running--;
      return { ok: true, message: request.command === 'pause' ? `paused: ${request.reason}` : request.command };
    });
    const good = Array.from({ length: 100 }, (_, i) => sendControl(dir, { command: 'pause', reason: `r${i}` }));
    const bad = Array.from({ length: 20 }, () => rawExchange(server.path, 'junk\n'));
    const replies = await Promise.all(good);
    expect(replies).toEqual(Array.from({ length: 100 }, (_, i) => ({ ok: true, message: `paused: r${i}` })));
    for (const received of await Promise.all(bad)) expect(onlyReply(received)).toMatchObject({ ok: false });
    expect(most).toBeGreaterThan(1);
  });
});

describe('no scheduler', () => {
  it("is 'no-scheduler' when there is no .warden dir or no socket file", async () => {
    const dir = tempDir();
    expect(await sendControl(dir, { command: 'kick' })).toBe('no-scheduler');
    mkdirSync(join(dir, '.warden'));
    expect(await sendControl(dir, { command: 'kick' })).toBe('no-scheduler');
  });

  it("is 'no-scheduler' when the socket file is a leftover of a killed server", async () => {
    const dir = tempDir();
    await leaveDeadSocket(dir);
    expect(await sendControl(dir, { command: 'kick' })).toBe('no-scheduler');
  });
});

describe('starting the server', () => {
  it('creates .warden with mode 0700 and a socket with mode 0600', async () => {
    const dir = tempDir();
    const { server } = await serve(dir);
    expect(server.path).toBe(join(dir, '.warden', 'control.sock'));
    expect(statSync(join(dir, '.warden')).mode & 0o777).toBe(0o700);
    const stats = lstatSync(server.path);
    expect(stats.isSocket()).toBe(true);
    expect(stats.mode & 0o777).toBe(0o600);
  });

  it("replaces a dead holder's leftover socket and serves on it", async () => {
    const dir = tempDir();
    await leaveDeadSocket(dir);
    // A second name keeps the leftover's inode alive, so its number cannot be reused by the new socket.
    const path = controlSocketPath(dir);
    linkSync(path, `${path}.leftover`);
    const leftover = lstatSync(path).ino;
    const { server } = await serve(dir);
    expect(lstatSync(server.path).ino).not.toBe(leftover);
    expect(lstatSync(`${path}.leftover`).ino).toBe(leftover);
    expect(await sendControl(dir, { command: 'kick' })).toMatchObject({ ok: true, message: 'did kick' });
  });

  it.each([
    ['a regular file', (path: string) => writeFileSync(path, 'keep me'), /is a regular file, not a socket; refusing to replace it/],
    ['a symbolic link', (path: string) => symlinkSync('/nonexistent/target', path), /is a symbolic link, not a socket/],
    ['a directory', (path: string) => mkdirSync(path), /is a directory, not a socket/],
  ])('refuses %s at the socket path and leaves it intact', async (_kind, make, message) => {
    const dir = tempDir();
    const path = controlSocketPath(dir);
    mkdirSync(join(dir, '.warden'));
    make(path);
    const before = lstatSync(path);
    const failure = serveControl(dir, () => ({ ok: true, message: '' }));
    await expect(failure).rejects.toThrow(ControlPathError);
    await expect(failure).rejects.toThrow(`${path}: `);
    await expect(failure).rejects.toThrow(message);
    const after = lstatSync(path);
    expect([after.ino, after.mode]).toEqual([before.ino, before.mode]);
    if (after.isFile()) expect(readFileSync(path, 'utf8')).toBe('keep me');
  });

  it('accepts a socket path of exactly the limit and refuses one byte more, naming the path and the limit', async () => {
    const base = tempDir();
    const room = MAX_SOCKET_PATH_BYTES - controlSocketPath(join(base, '')).length - 1;
    const fits = join(base, 'a'.repeat(room));
    const tooLong = join(base, 'b'.repeat(room + 1));
    expect(Buffer.byteLength(controlSocketPath(fits))).toBe(MAX_SOCKET_PATH_BYTES);
    await serve(fits);
    expect(await sendControl(fits, { command: 'kick' })).toMatchObject({ ok: true });

    const path = controlSocketPath(tooLong);
    const failure = serveControl(tooLong, () => ({ ok: true, message: '' }));
    await expect(failure).rejects.toThrow(ControlPathError);
    await expect(failure).rejects.toThrow(`${path}: is 108 bytes long, over the 107-byte limit of Unix socket paths`);
    expect(existsSync(tooLong)).toBe(false);
    await expect(sendControl(tooLong, { command: 'kick' })).rejects.toThrow(`${path}: is 108 bytes long, over the 107-byte limit`);
  });
});

describe('bad clients', () => {
  it.each([
    ['not JSON', 'hello\n', /^request is not JSON: /],
    ['a torn object', '{"command":\n', /^request is not JSON: /],
    ['an array', '[1,2]\n', /^bad request: /],
    ['an empty line', '\n', /^empty request/],
    ['an unknown command', '{"command":"explode"}\n', /^unknown command "explode"/],
    ['an unknown key', '{"command":"kick","now":true}\n', /^bad request: .*"now"/],
  ])('answers %s with an error reply and goes on serving', async (_what, bytes, message) => {
    const dir = tempDir();
    const { server, seen } = await serve(dir);
    const reply = onlyReply(await rawExchange(server.path, bytes));
    expect(reply).toEqual({ ok: false, error: expect.stringMatching(message) });
    expect(seen).toEqual([]);
    expect(await sendControl(dir, { command: 'kick' })).toMatchObject({ ok: true, message: 'did kick' });
  });

  it('answers a line over 64 KiB with an error and closes the connection, but reads one of exactly 64 KiB', async () => {
    const dir = tempDir();
    const { server, seen } = await serve(dir);
    const huge = 'a'.repeat(MAX_REQUEST_BYTES + 4096); // no newline, and the client never ends
    expect(onlyReply(await rawExchange(server.path, huge))).toEqual({
      ok: false,
      error: `request line is over ${MAX_REQUEST_BYTES} bytes; closing the connection`,
    });
    const request = '{"command":"kick"}';
    const atLimit = request + ' '.repeat(MAX_REQUEST_BYTES - request.length);
    expect(onlyReply(await rawExchange(server.path, `${atLimit}\n`))).toMatchObject({ ok: true, message: 'did kick' });
    expect(onlyReply(await rawExchange(server.path, `${atLimit} \n`))).toMatchObject({ ok: false, error: expect.stringMatching(/over 65536 bytes/) });
    expect(seen).toEqual([{ command: 'kick' }]);
    expect(await sendControl(dir, { command: 'resume' })).toMatchObject({ ok: true, message: 'did resume' });
  });

  it('turns a handler that throws or rejects into an error reply and goes on serving', async () => {
    const dir = tempDir();
    await serveWith(dir, (request) => {
      if (request.command === 'pause') throw new Error('pause blew up\n  at somewhere');
      if (request.command === 'resume') return Promise.reject(new Error('resume was refused'));
      return { ok: true, message: 'kicked' };
    });
    expect(await sendControl(dir, { command: 'pause' })).toEqual({ ok: false, error: 'pause blew up at somewhere' });
    expect(await sendControl(dir, { command: 'resume' })).toEqual({ ok: false, error: 'resume was refused' });
    expect(await sendControl(dir, { command: 'kick' })).toEqual({ ok: true, message: 'kicked' });
  });

  it('turns a reply that cannot be encoded into an error reply', async () => {
    const dir = tempDir();
    await serveWith(dir, () => ({ ok: true, message: 'x', state: { big: 1n } }));
    expect(await sendControl(dir, { command: 'kick' })).toMatchObject({ ok: false, error: expect.stringMatching(/^the scheduler could not encode its reply: .*BigInt/) });
  });

  it.each([
    ['sends nothing', ''],
    ['sends half a line', '{"command":"ki'],
  ])('drops a client that %s after the idle timeout, with an error reply', async (_what, bytes) => {
    const dir = tempDir();
    const { server, seen } = await serve(dir, { idleTimeoutMs: 200 });
    const started = Date.now();
    const reply = onlyReply(await rawExchange(server.path, bytes));
    const took = Date.now() - started;
    expect(reply).toEqual({ ok: false, error: 'no request line within 200 ms; closing the connection' });
    expect(took).toBeGreaterThanOrEqual(150);
    expect(took).toBeLessThan(2_000);
    expect(seen).toEqual([]);
    expect(await sendControl(dir, { command: 'kick' })).toMatchObject({ ok: true });
  });
});

describe('closing', () => {
  it("removes the socket file; a later sendControl is 'no-scheduler'; closing twice is fine", async () => {
    const dir = tempDir();
    const { server } = await serve(dir);
    await server.close();
    expect(existsSync(server.path)).toBe(false);
    expect(await sendControl(dir, { command: 'kick' })).toBe('no-scheduler');
    await server.close();
  });

  it('ends open connections instead of waiting for them', async () => {
    const dir = tempDir();
    const { server } = await serve(dir, { idleTimeoutMs: 10_000 });
    const socket = createConnection(server.path);
    await once(socket, 'connect');
    const closed = once(socket, 'close');
    const started = Date.now();
    await server.close();
    await closed;
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("leaves alone a socket file that is no longer this server's", async () => {
    const dir = tempDir();
    const first = await serveWith(dir, () => ({ ok: true, message: 'first' }));
    await serveWith(dir, () => ({ ok: true, message: 'second' }));
    await first.close();
    expect(lstatSync(first.path).isSocket()).toBe(true);
    expect(await sendControl(dir, { command: 'kick' })).toEqual({ ok: true, message: 'second' });
  });

  it('leaves alone a regular file put at the path while it ran', async () => {
    const dir = tempDir();
    const { server } = await serve(dir);
    writeFileSync(`${server.path}.new`, 'not yours');
    renameSync(`${server.path}.new`, server.path);
    await server.close();
    expect(readFileSync(server.path, 'utf8')).toBe('not yours');
  });
});

describe('a scheduler that misbehaves', () => {
  it('rejects when it does not answer within the timeout', async () => {
    const dir = tempDir();
    await rawServerAt(dir, () => {});
    const started = Date.now();
    const failure = sendControl(dir, { command: 'kick' }, { timeoutMs: 200 });
    await expect(failure).rejects.toThrow(ControlReplyError);
    await expect(failure).rejects.toThrow(`the scheduler did not answer within 200 ms (control socket ${controlSocketPath(dir)})`);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it.each([
    ['not JSON', 'this is not json\n', /^the scheduler's reply is not JSON: this is not json/],
    ['JSON but not a reply', '{"ok":true}\n', /^the scheduler's reply is not a control reply: message: /],
    ['nothing at all', '', /^the scheduler closed the connection without replying/],
  ])('rejects a reply that is %s', async (_what, reply, message) => {
    const dir = tempDir();
    await rawServerAt(dir, (socket) => socket.once('data', () => socket.end(reply)));
    const failure = sendControl(dir, { command: 'kick' });
    await expect(failure).rejects.toThrow(ControlReplyError);
    await expect(failure).rejects.toThrow(message);
  });
});
