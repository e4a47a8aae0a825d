// SPDX-License-Identifier: MIT
// TypeScript declarations of the `hybrid` package (doc/node.md).

import { EventEmitter } from 'node:events';

/** A value as it crosses the bus or the store (doc/node.md "Values"). */
export type Value =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uri
  | Typed
  | RealValue
  | Value[]
  | Map<Value, Value>
  | { [key: string]: Value };

/** An error of libhybrid or of the bus. */
export class HybridError extends Error {
  /** @param status the bus status (default 500); code defaults to its HYB_E_* name */
  constructor(message: string, status?: number, code?: string);
  /** The bus status: 400, 401, 403, 404, 502, 504, ... */
  status: number;
  /** The symbolic name: 'HYB_E_BAD_REQUEST', 'HYB_E_FORBIDDEN', 'ENOENT', ... */
  code: string;
}

/** A uri value (not a str). */
export class Uri {
  constructor(value: string);
  value: string;
  toString(): string;
}

/** A typed value `type[value]`, type a uri text such as '/type/nat'. */
export class Typed {
  constructor(type: string, value: Value);
  type: string;
  value: Value;
}

/** What Real() returns: a number that is sent as a real even when integral. */
export interface RealValue {
  readonly value: number;
  valueOf(): number;
}
/** Forces a real: Real(2) is 2.0, a plain 2 is the int 2. */
export function Real(value: number): RealValue;

export interface ConnectOptions {
  /** The daemon's socket; default $HYBRID_BUS, else the default socket.  Or a remote
   *  broker's URL, ws://HOST:PORT/bus/ws or wss://HOST:PORT/bus/ws (a token is required). */
  socket?: string | null;
  /** The app name to claim (org.example.app). */
  app: string;
  /** The runner name; default p<pid> (p<pid>_<n> for later connections; p<pid>w<threadId> in a worker thread). */
  runner?: string;
  /** A security token (text) and its holder's private key (PEM or JWK text). */
  token?: string;
  key?: string;
  /** wss:// only: a PEM file of the CA certificates to trust (default $HYBRID_CA). */
  caFile?: string;
  /** wss:// only: the SHA-256 of the server's public key, base64 (a 'sha256//' prefix
   *  allowed) or 64 hex digits (default $HYBRID_PIN).  With caFile both must hold. */
  pin?: string;
}

export interface CallOptions {
  /** Milliseconds the broker waits for the answer (default 30000); then 504. */
  timeout?: number;
  /** Aborting it ends the call (the callee is told) and rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** The JSON type of an argument, for argument policies. */
export type ArgType =
  | 'any' | 'str' | 'string' | 'int' | 'integer' | 'number' | 'real' | 'float'
  | 'bool' | 'boolean' | 'object' | 'dict' | 'rec' | 'array' | 'list' | 'lst' | 'null'
  | StringConstructor | NumberConstructor | BigIntConstructor | BooleanConstructor
  | ObjectConstructor | ArrayConstructor | null;

/** key: type (required), key: 'type?' (optional), or key: {type, required}. */
export type ArgPolicy = {
  [key: string]: ArgType | `${string}?` | { type?: ArgType; required?: boolean };
};

export type ProcedureSpec = ArgPolicy | { args?: ArgPolicy; forHost?: string; forApp?: string };

export interface RequestInfo {
  /** The calling endpoint. */
  caller: string;
  method: string;
  /** How the caller reached the bus. */
  transport: 'unix' | 'ws' | 'wss' | 'http' | 'https' | 'coap' | 'cluster';
  /** The `sub` of the security token the caller authenticated with; null without one. */
  principal: string | null;
  bus: Bus;
  /** Aborted (reason: a HybridError 504) when the broker cancels the call: its deadline
   *  passed or its caller ended it. */
  readonly signal: AbortSignal;
}

export interface BusEvent {
  source: string;
  bubble: string;
  data: Value | Buffer;
}

export interface StoreMessage {
  furi: string;
  /** null for a delete */
  value: Value;
  /** false for a transient write */
  retain: boolean;
}

export interface Subscription<T> extends EventEmitter, AsyncIterable<T> {
  close(): void;
}
export interface EventSubscription extends Subscription<BusEvent> {
  on(event: 'event', listener: (ev: BusEvent) => void): this;
  on(event: 'close', listener: () => void): this;
}
export interface StoreWatch extends Subscription<StoreMessage> {
  on(event: 'message', listener: (msg: StoreMessage) => void): this;
  on(event: 'close', listener: () => void): this;
}

export class Bus extends EventEmitter {
  /** '@localhost/<app>/<runner>' */
  name: string;
  call(endpoint: string, method: string, params?: Value, options?: CallOptions): Promise<Value>;
  procedure(name: string, spec: ProcedureSpec,
            fn: (params: any, info: RequestInfo) => Value | void | Promise<Value | void>): () => boolean;
  unregister(name: string): boolean;
  /** cluster: true sends its fires to the other hosts of the daemon's cluster too. */
  registerEvent(bubble: string, options?: { forHost?: string; forApp?: string; cluster?: boolean }): void;
  unregisterEvent(bubble: string): boolean;
  fire(bubble: string, data?: Value): void;
  subscribe(endpointGlob: string, bubbleGlob: string): EventSubscription;
  close(): void;
  on(event: 'close', listener: () => void): this;
  on(event: 'error', listener: (err: HybridError) => void): this;
}

export interface StoreOptions {
  /** An embedded database file: the store is this process's. */
  db?: string | null;
  /** Else this daemon's store ($HYBRID_BUS, else the default daemon, else the default db). */
  socket?: string | null;
  /** The app name a daemon is connected to as (default 'org.hybridos.node'). */
  app?: string;
  runner?: string;
  token?: string;
  key?: string;
  caFile?: string;
  pin?: string;
  /**
   * The MQTT broker that serves the cluster scope //... on the embedded store:
   * mqtt://HOST[:PORT] or mqtts://HOST[:PORT], optionally ?prefix=...&qos=...
   * (default $HYBRID_CLUSTER).  Not used when a daemon serves the host store: the daemon
   * serves //... (when it has a cluster: section).  Without either, //... operations reject
   * with HYB_E_SCOPE.
   */
  cluster?: string | null;
}

export class Store extends EventEmitter {
  /** 1 the db named, 2 the daemon named, 3 the default daemon, 4 the default database */
  source: number;
  /** Which store this is, in words. */
  where: string;
  put(furi: string, value: Value, options?: { transient?: boolean }): Promise<void>;
  get(furi: string): Promise<Value>;
  delete(furi: string): Promise<void>;
  watch(pattern: string, options?: { replay?: boolean }): StoreWatch;
  close(): void;
}

export function connect(options: ConnectOptions): Promise<Bus>;
export function store(options?: StoreOptions): Promise<Store>;

export const mmadt: {
  run(source: string): Value[];
};

export interface KeyPair {
  privateKey: string;
  publicKey: string;
  kid: string;
}
export type Capability = string | { resource: string; actions: string | string[] };
export interface TokenResult {
  sub: string;
  iss: string;
  jti: string;
  exp: number;
  holder: string;
  blocks: number;
  cap: { resource: string; actions: string[] }[];
}

export const token: {
  keygen(): KeyPair;
  issue(issuerKey: string, options: {
    iss: string; sub: string; aud: string | string[]; holder: string;
    caps: Capability[] | { [resource: string]: string | string[] };
    ttl?: number; dlg?: number; epo?: number; now?: number;
  }): string;
  attenuate(token: string, holderKey: string, options: {
    holder: string; caps?: Capability[] | { [resource: string]: string | string[] };
    aud?: string | string[]; ttl?: number; now?: number;
  }): string;
  verify(token: string, options: {
    issuers: { [issuer: string]: string }; audience: string; now?: number; maxLifetime?: number;
  }): TokenResult;
  inspect(token: string): { verified: false; blocks: { header: any; claims: any }[] };
};

/** The JSON mapping itself: a value as JSON text, JSON text as a value. */
export function toJSON(value: Value): string;
export function fromJSON(text: string): Value;
export const version: string;
export const napiVersion: number;
