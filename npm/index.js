// @plugboard/sdk: the public ES module over the WebAssembly client.
//
// Plugboard.create() loads the WebAssembly once, then every call goes to the
// client compiled from Rust (sdk-wasm/). Nothing here talks to the network
// itself; it checks arguments and keeps the public names stable.

import init, { Client } from './dist/plugboard_sdk.js';

let loading = null;

function load() {
  if (!loading) {
    loading = init({ module_or_path: new URL('./dist/plugboard_sdk_bg.wasm', import.meta.url) }).catch((cause) => {
      loading = null;
      throw plugboardError('network_error', 'could not load the Plugboard SDK', cause);
    });
  }
  return loading;
}

/** What every promise of the SDK rejects with: `code` is from the contract's one list. */
export class PlugboardError extends Error {
  constructor(code, message, options) {
    super(message, options && 'cause' in options ? { cause: options.cause } : undefined);
    this.name = 'PlugboardError';
    this.code = code;
    if (options?.providerCode !== undefined) this.providerCode = options.providerCode;
    if (options?.fields !== undefined) this.fields = options.fields;
    if (options?.upstreamStatus !== undefined) this.upstreamStatus = options.upstreamStatus;
    if (options?.upstreamBody !== undefined) this.upstreamBody = options.upstreamBody;
  }
}

/** True for a `PlugboardError`, also one from another copy of this package. */
export function isPlugboardError(value) {
  return value instanceof PlugboardError
    || (value instanceof Error && value.name === 'PlugboardError' && typeof value.code === 'string');
}

function plugboardError(code, message, cause) {
  return new PlugboardError(code, message, cause === undefined ? undefined : { cause });
}

// The WebAssembly raises plain Errors named PlugboardError; pages get the class.
function asPlugboardError(error) {
  if (error instanceof PlugboardError) return error;
  if (error instanceof Error && error.name === 'PlugboardError' && typeof error.code === 'string') {
    const options = {
      providerCode: error.providerCode,
      fields: error.fields,
      upstreamStatus: error.upstreamStatus,
      upstreamBody: error.upstreamBody,
    };
    if ('cause' in error) options.cause = error.cause;
    return new PlugboardError(error.code, error.message, options);
  }
  return plugboardError('internal', 'the Plugboard SDK failed unexpectedly', error);
}

function requireString(value, name) {
  if (typeof value !== 'string' || value.length === 0) {
    throw plugboardError('validation_failed', `${name} must be a non-empty string`);
  }
  return value;
}

function optionalString(value, name) {
  if (value === undefined || value === null) return undefined;
  return requireString(value, name);
}

function options(value, name) {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw plugboardError('validation_failed', `${name} must be an object`);
  }
  return value;
}

function inBrowserWindow() {
  return typeof window !== 'undefined' && typeof document !== 'undefined' && typeof window.open === 'function';
}

/** Plugboard's browser SDK for one end user's connect session. */
export class Plugboard extends EventTarget {
  #client;

  constructor(client) {
    super();
    if (!(client instanceof Client)) {
      throw plugboardError('validation_failed', 'use Plugboard.create({ serverUrl, sessionToken })');
    }
    this.#client = client;
  }

  static async create(config) {
    if (!inBrowserWindow()) {
      throw plugboardError(
        'unsupported_environment',
        'Plugboard.create needs a browser window (it opens popups); call it in the page, not in Node or during server-side rendering',
      );
    }
    const { serverUrl, sessionToken, fetchSessionToken } = options(config, 'the configuration');
    requireString(serverUrl, 'serverUrl');
    requireString(sessionToken, 'sessionToken');
    if (fetchSessionToken !== undefined && typeof fetchSessionToken !== 'function') {
      throw plugboardError('validation_failed', 'fetchSessionToken must be a function returning a promise of a session token');
    }
    await load();
    try {
      return new Plugboard(new Client(serverUrl, sessionToken, fetchSessionToken));
    } catch (error) {
      throw asPlugboardError(error);
    }
  }

  // Dispatches `name` with `detail` on success, `error` on failure, and settles as the call did.
  async #announce(name, call) {
    let result;
    try {
      result = await call();
    } catch (error) {
      const failure = asPlugboardError(error);
      this.dispatchEvent(new CustomEvent('error', { detail: failure }));
      throw failure;
    }
    this.dispatchEvent(new CustomEvent(name, { detail: result }));
    return result;
  }

  connectApp(appKey, opts) {
    let pending;
    try {
      requireString(appKey, 'appKey');
      const { connectedAccountId, params, signal } = options(opts, 'the options');
      optionalString(connectedAccountId, 'connectedAccountId');
      const checked = options(params, 'params');
      for (const [key, value] of Object.entries(checked)) {
        if (typeof value !== 'string') throw plugboardError('validation_failed', `params.${key} must be a string`);
      }
      if (signal !== undefined && signal !== null && !(signal instanceof AbortSignal)) {
        throw plugboardError('validation_failed', 'signal must be an AbortSignal');
      }
      // Synchronous up to window.open, so that the popup opens inside the caller's click.
      pending = this.#client.connectApp(appKey, connectedAccountId, checked, signal ?? undefined);
    } catch (error) {
      pending = Promise.reject(error);
    }
    return this.#announce('connected', () => pending);
  }

  getConnectedAccounts(appKey) {
    return this.#settle(() => this.#client.getConnectedAccounts(optionalString(appKey, 'appKey')));
  }

  async disconnectApp(appKey, opts) {
    await this.#announce('disconnected', () => {
      requireString(appKey, 'appKey');
      const { connectedAccountId } = options(opts, 'the options');
      return this.#client.disconnectApp(appKey, optionalString(connectedAccountId, 'connectedAccountId'));
    });
  }

  listApps() {
    return this.#settle(() => this.#client.listApps());
  }

  invokeFunction(name, input, opts) {
    return this.#settle(() => {
      requireString(name, 'name');
      if (!/^[a-z0-9][a-z0-9_.-]{0,63}$/.test(name)) {
        throw plugboardError('validation_failed', 'name must be a function name (a-z, 0-9, "_", "." and "-")');
      }
      const { connectedAccountId, page } = options(opts, 'the options');
      const request = { input: input === undefined ? {} : input };
      if (optionalString(connectedAccountId, 'connectedAccountId') !== undefined) request.connectedAccountId = connectedAccountId;
      if (optionalString(page, 'page') !== undefined) request.page = page;
      return this.#client.invokeFunction(name, request);
    });
  }

  async #settle(call) {
    try {
      return await call();
    } catch (error) {
      throw asPlugboardError(error);
    }
  }
}
