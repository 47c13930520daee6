/**
 * The control channel: how `warden pause | resume | kick`, typed in another shell, reach the
 * scheduler that holds the project's lease. It is a Unix domain socket,
 * `<project>/.warden/control.sock`, speaking one JSON object per line each way: the client sends
 * a request line, the server answers with a reply line and ends the connection.
 *
 * Only the lease holder serves, and the lease admits one live process, so a socket file found
 * when a server starts is a leftover from a dead holder and is replaced. Anything else at that
 * name (a regular file, a symlink, a directory) is not ours and is refused, never deleted.
 *
 * The socket appears the way lock files do: the server binds a private temp name in `.warden/`,
 * makes it 0600, and `link()`s it to the public name, which fails rather than replaces if that
 * name was taken meanwhile. This is also what lets close() keep its promise to remove only its
 * own socket: libuv unlinks the *bound* path by name when a listening pipe closes — whoever's
 * file is there by then — and the bound path is the temp name, already gone. close() removes the
 * public name itself, and only while lstat still shows the inode this server linked there.
 *
 * The server assumes nothing of its clients: a line that is not a request, a line longer than
 * {@link MAX_REQUEST_BYTES}, a client that never finishes its line, a handler that throws — each
 * gets an `{ ok: false, error }` reply and the connection closed; none reaches the caller.
 *
 * Unix socket paths are limited to {@link MAX_SOCKET_PATH_BYTES} bytes (sun_path) and Node
 * silently truncates longer ones, so both ends check the length first and say so.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, lstatSync, mkdirSync, readdirSync, unlinkSync, type Stats } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { ControlPathError, ControlReplyError, UsageError } from '../errors.js';
import { setLongTimeout } from './longTimer.js';

// Its errors live with the others in errors.ts; re-exported for callers of this module.
export { ControlPathError, ControlReplyError } from '../errors.js';
import { describeIssue } from '../store/catalogue.js';

export type ControlRequest = { command: 'pause'; reason?: string } | { command: 'resume' } | { command: 'kick' };
export type ControlReply = { ok: true; message: string; state?: unknown } | { ok: false; error: string };

export interface ControlServer {
  /** The socket's public path (`<project>/.warden/control.sock`). */
  path: string;
  /** Stops listening, ends open connections, removes the socket file if it is still this server's. */
  close(): Promise<void>;
}

export interface ControlServerOptions {
  /** How long a client has to send its whole request line, and to go away after the reply. Default 5 s. */
  idleTimeoutMs?: number;
}

export interface SendControlOptions {
  /** How long to wait for the reply, connecting included. Default 5 s. */
  timeoutMs?: number;
}

export const DEFAULT_CONTROL_TIMEOUT_MS = 5_000;
/** The longest request line the server reads (the newline not counted). */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** The longest reply line the client reads: replies may carry queue state. */
export const MAX_REPLY_BYTES = 4 * 1024 * 1024;
/** sun_path holds 108 bytes on Linux, the last of them the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

const COMMANDS = ['pause', 'resume', 'kick'] as const;

const requestSchema = z.discriminatedUnion('command', [
  z.strictObject({ command: z.literal('pause'), reason: z.string().optional() }),
  z.strictObject({ command: z.literal('resume') }),
  z.strictObject({ command: z.literal('kick') }),
]);

const replySchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), message: z.string(), state: z.unknown().optional() }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);

/** The bound temp name: no longer than `control.sock`, so the public name's length check covers it. */
const TEMP_PREFIX = '.ctl-';
const TEMP_NAME = /^\.ctl-[0-9a-f]{6}$/;

export function controlSocketPath(projectDir: string): string {
  return join(projectDir, '.warden', 'control.sock');
}

/**
 * Reads one request line. Throws a {@link UsageError} with a one-line message on anything else.
 * @example parseControlRequest('{"command":"pause","reason":"deploy"}') // { command: 'pause', reason: 'deploy' }
 */
export function parseControlRequest(line: string): ControlRequest {
  if (line.trim() === '') throw new UsageError('empty request: expected a JSON object such as {"command":"kick"}');
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new UsageError(`request is not JSON: ${messageOf(error)}`);
  }
  const command = isRecord(value) ? value.command : undefined;
  if (typeof command === 'string' && !(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(`unknown command ${preview(JSON.stringify(command))} (expected ${COMMANDS.join(', ')})`);
  }
  const parsed = requestSchema.safeParse(value);
  if (!parsed.success) throw new UsageError(`bad request: ${oneLine(describeIssue(parsed.error.issues[0]))}`);
  return parsed.data;
}

/**
 * Starts listening on the project's control socket; `handle` answers each request.
 * @example const server = await serveControl(dir, (r) => ({ ok: true, message: `${r.command}: done` }))
 */
export async function serveControl(
  projectDir: string,
  handle: (request: ControlRequest) => Promise<ControlReply> | ControlReply,
  options: ControlServerOptions = {},
): Promise<ControlServer> {
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
  const path = controlSocketPath(projectDir);
  assertSocketPathFits(path);
  prepareDir(dirname(path));
  removeLeftover(path);
  const connections = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    serveConnection(socket, handle, idleTimeoutMs).catch(() => socket.destroy());
  });
  const stamp = await publish(server, path);
  // Past listening, the only server errors are failed accepts (EMFILE …): the server keeps
  // listening, and a client that was not accepted times out on its side.
  server.on('error', () => {});
  let closing: Promise<void> | undefined;
  return { path, close: () => (closing ??= shutDown(server, connections, path, stamp)) };
}

/**
 * Sends one request to the project's scheduler and waits for its reply; `'no-scheduler'` when no
 * process listens (no socket file, or a leftover one nobody serves).
 * @example const reply = await sendControl(dir, { command: 'pause', reason: 'deploy' })
 */
export async function sendControl(
  projectDir: string,
  request: ControlRequest,
  options: SendControlOptions = {},
): Promise<ControlReply | 'no-scheduler'> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
  const path = controlSocketPath(projectDir);
  assertSocketPathFits(path);
  const answer = await exchange(path, `${JSON.stringify(request)}\n`, timeoutMs);
  return answer === 'no-scheduler' ? answer : parseReply(answer, path);
}

function assertSocketPathFits(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new ControlPathError(
      path,
      `is ${bytes} bytes long, over the ${MAX_SOCKET_PATH_BYTES}-byte limit of Unix socket paths (move the project to a shorter path)`,
    );
  }
}

/** Creates `.warden/` (0700) if missing; a symlink or file there is refused, not followed. */
function prepareDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!lstatSync(dir).isDirectory()) throw new ControlPathError(dir, 'is not a directory (a symbolic link is not followed)');
  for (const name of readdirSync(dir)) {
    // A temp socket left by a holder that died between binding and linking it.
    if (TEMP_NAME.test(name) && lstatOrNull(join(dir, name))?.isSocket()) unlinkQuietly(join(dir, name));
  }
}

/** A socket at the path is a dead holder's leftover and goes; anything else stays, and we refuse. */
function removeLeftover(path: string): void {
  const stats = lstatOrNull(path);
  if (!stats) return;
  if (!stats.isSocket()) throw new ControlPathError(path, `is ${kindOf(stats)}, not a socket; refusing to replace it`);
  unlinkQuietly(path);
}

/** Which file the public name was when this server linked it. */
interface SocketStamp {
  dev: number;
  ino: number;
}

/** Binds a private temp name, makes it 0600, links it to `path`; returns the socket's stamp. */
async function publish(server: Server, path: string): Promise<SocketStamp> {
  const temp = join(dirname(path), `${TEMP_PREFIX}${randomBytes(3).toString('hex')}`);
  await listen(server, temp);
  try {
    chmodSync(temp, 0o600);
    const { dev, ino } = lstatSync(temp);
    linkOrRefuse(temp, path);
    return { dev, ino };
  } catch (error) {
    await new Promise((resolve) => server.close(resolve));
    throw error;
  } finally {
    unlinkQuietly(temp);
  }
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function linkOrRefuse(temp: string, path: string): void {
  try {
    linkSync(temp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    throw new ControlPathError(path, 'appeared while the control server was starting; refusing to replace it');
  }
}

/**
 * Removes the public name first, while the listening socket still pins its inode: until then no
 * other file can have that inode, so an equal one means the file is still ours.
 */
async function shutDown(server: Server, connections: Set<Socket>, path: string, stamp: SocketStamp): Promise<void> {
  try {
    const now = lstatOrNull(path);
    if (now?.isSocket() && now.ino === stamp.ino && now.dev === stamp.dev) unlinkQuietly(path);
  } finally {
    const closed = new Promise((resolve) => server.close(resolve));
    for (const socket of connections) socket.destroy();
    await closed;
  }
}

/** One connection: read the request line, answer it, end. Never throws for what a client does. */
async function serveConnection(
  socket: Socket,
  handle: (request: ControlRequest) => Promise<ControlReply> | ControlReply,
  idleTimeoutMs: number,
): Promise<void> {
  // A client that vanishes mid-exchange changes nothing here; 'close' still follows.
  socket.on('error', () => {});
  const read = await readLine(socket, MAX_REQUEST_BYTES, idleTimeoutMs);
  if (read.kind === 'gone') return;
  const reply = await replyTo(read, handle, idleTimeoutMs);
  sendLastLine(socket, reply, idleTimeoutMs);
}

function replyTo(
  read: Exclude<LineRead, { kind: 'gone' }>,
  handle: (request: ControlRequest) => Promise<ControlReply> | ControlReply,
  idleTimeoutMs: number,
): Promise<ControlReply> | ControlReply {
  switch (read.kind) {
    case 'line':
    case 'ended':
      return answer(read.text, handle);
    case 'tooLong':
      return failure(`request line is over ${MAX_REQUEST_BYTES} bytes; closing the connection`);
    case 'timeout':
      return failure(`no request line within ${idleTimeoutMs} ms; closing the connection`);
  }
}

async function answer(
  line: string,
  handle: (request: ControlRequest) => Promise<ControlReply> | ControlReply,
): Promise<ControlReply> {
  let request: ControlRequest;
  try {
    request = parseControlRequest(line);
  } catch (error) {
    return failure(messageOf(error));
  }
  try {
    return await handle(request);
  } catch (error) {
    return failure(messageOf(error));
  }
}

/** Writes the reply and ends; what the client still sends is drained unread until it goes. */
function sendLastLine(socket: Socket, reply: ControlReply, lingerMs: number): void {
  if (socket.destroyed) return;
  socket.end(`${encodeReply(reply)}\n`);
  socket.on('data', () => {});
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  socket.once('close', () => clearTimeout(timer));
}

function encodeReply(reply: ControlReply): string {
  try {
    const text = JSON.stringify(reply) as string | undefined;
    if (text?.startsWith('{')) return text;
    return JSON.stringify(failure('the scheduler gave a reply that is not an object'));
  } catch (error) {
    return JSON.stringify(failure(`the scheduler could not encode its reply: ${messageOf(error)}`));
  }
}

/** Connects, writes `line`, and returns the reply text; `'no-scheduler'` when nothing listens. */
function exchange(path: string, line: string, timeoutMs: number): Promise<string | 'no-scheduler'> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const settle = (outcome: () => void) => {
      timer.clear();
      socket.destroy();
      outcome();
    };
    const timer = setLongTimeout(
      () => settle(() => reject(new ControlReplyError(path, `the scheduler did not answer within ${timeoutMs} ms`))),
      timeoutMs,
    );
    socket.on('connect', () => socket.write(line));
    socket.on('error', (error: NodeJS.ErrnoException) =>
      settle(() => (nobodyListens(error) ? resolve('no-scheduler') : reject(new ControlReplyError(path, `cannot reach the scheduler: ${messageOf(error)}`)))),
    );
    void readLine(socket, MAX_REPLY_BYTES).then((read) =>
      settle(() => {
        if ((read.kind === 'line' || read.kind === 'ended') && read.text.trim() !== '') resolve(read.text);
        else if (read.kind === 'tooLong') reject(new ControlReplyError(path, `the scheduler's reply is over ${MAX_REPLY_BYTES} bytes`));
        else reject(new ControlReplyError(path, 'the scheduler closed the connection without replying'));
      }),
    );
  });
}

function nobodyListens(error: NodeJS.ErrnoException): boolean {
  return error.code === 'ECONNREFUSED' || error.code === 'ENOENT';
}

function parseReply(text: string, path: string): ControlReply {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ControlReplyError(path, `the scheduler's reply is not JSON: ${preview(text)}`);
  }
  const parsed = replySchema.safeParse(value);
  if (!parsed.success) throw new ControlReplyError(path, `the scheduler's reply is not a control reply: ${describeIssue(parsed.error.issues[0])}`);
  return parsed.data as ControlReply;
}

/**
 * How reading one line ended: a whole `line`; the peer `ended` its side first (with what it sent);
 * over `maxBytes` without a newline; no newline within `timeoutMs`; or the connection is `gone`.
 */
type LineRead =
  | { kind: 'line'; text: string }
  | { kind: 'ended'; text: string }
  | { kind: 'tooLong' }
  | { kind: 'timeout' }
  | { kind: 'gone' };

/** Reads up to the first newline (not included) and pauses the socket; bytes after it are left unread. */
function readLine(socket: Socket, maxBytes: number, timeoutMs?: number): Promise<LineRead> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const text = () => Buffer.concat(chunks).toString('utf8');
    const finish = (result: LineRead) => {
      timer?.clear();
      socket.off('data', onData).off('end', onEnd).off('close', onClose);
      socket.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      const newline = chunk.indexOf(0x0a);
      const part = newline === -1 ? chunk : chunk.subarray(0, newline);
      size += part.length;
      if (size > maxBytes) return finish({ kind: 'tooLong' });
      chunks.push(part);
      if (newline !== -1) finish({ kind: 'line', text: text() });
    };
    const onEnd = () => finish({ kind: 'ended', text: text() });
    const onClose = () => finish({ kind: 'gone' });
    const timer = timeoutMs === undefined ? undefined : setLongTimeout(() => finish({ kind: 'timeout' }), timeoutMs);
    socket.on('data', onData).on('end', onEnd).on('close', onClose);
  });
}

function failure(error: string): ControlReply {
  return { ok: false, error: oneLine(error) };
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function kindOf(stats: Stats): string {
  if (stats.isFile()) return 'a regular file';
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isDirectory()) return 'a directory';
  return 'something other than a socket';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function messageOf(error: unknown): string {
  return oneLine(error instanceof Error ? error.message : String(error));
}

/** Whitespace runs (newlines included) collapsed, and capped: replies name a problem in one line. */
function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 1000 ? `${flat.slice(0, 1000)}…` : flat;
}

function preview(text: string): string {
  const flat = oneLine(text);
  return flat.length > 60 ? `${flat.slice(0, 60)}…` : flat;
}
